"""``data show``: look at the patches a model will train on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..data import ImageSource, sample_patches
from ..viz import image_grid, save_png
from .common import DataOpt, console, counted, data_spec, report_skipped, user_errors

app = typer.Typer(help="Inspect data sources.", no_args_is_help=True)


@app.command("show")
@user_errors
def show(
    data: DataOpt = None,
    size: Annotated[int, typer.Option(min=2, max=1024, help="Patch size.")] = 32,
    n: Annotated[int, typer.Option("--n", min=1, max=4096, help="Number of patches.")] = 64,
    split: Annotated[str, typer.Option(
        help="Photos to cut patches from: train, val, test, heldout (val + test), all, or "
        "several joined by commas (train,val).")
                     ] = "train",
    seed: Annotated[int, typer.Option(help="Patch seed.")] = 0,
    scale: Annotated[int, typer.Option(min=1, max=64, help="Upscale factor of the grid.")] = 3,
    out: Annotated[Path, typer.Option(help="Grid PNG to write.")] = Path("patches.png"),
) -> None:
    """Write a grid of random patches (and list the photos of each split)."""
    source = ImageSource(data_spec(data))
    patches, crops = sample_patches(source, n, size, seed, split=split)
    save_png(image_grid(patches, scale=scale), out)
    used = {c.photo_id for c in crops}
    console.print(f"wrote {out}: {counted(n, 'patch')} of {size}x{size} from "
                  f"{counted(len(used), 'photo')} of split '{split}'")
    table = Table(title=f"photos of {source.spec} by split (* = in this grid)")
    for col in ("split", "photos", "ids"):
        table.add_column(col, justify="right" if col == "photos" else "left")
    for name in ("train", "val", "test"):
        ids = source.photo_ids(name)
        shown = ", ".join(f"{p}{'*' if p in used else ''}" for p in ids[:8])
        table.add_row(name, str(len(ids)), shown + (" ..." if len(ids) > 8 else ""))
    console.print(table)
    report_skipped(source.report.bad)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="data")
