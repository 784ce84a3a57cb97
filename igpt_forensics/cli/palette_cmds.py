"""``palette fit``: iGPT's k-means color palette from a data source."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..data import ImageSource, sample_patches
from ..palette import Palette
from .common import DataOpt, console, data_spec, report_skipped, user_errors

app = typer.Typer(help="Fit color palettes (k-means over photo pixels).", no_args_is_help=True)

@app.command("fit")
@user_errors
def fit(
    data: DataOpt = None,
    colors: Annotated[int, typer.Option(help="Palette size, 2 to 512.")] = 512,
    size: Annotated[int, typer.Option(help="Patch size the pixels are drawn from.")] = 32,
    n: Annotated[int, typer.Option("--n", help="Training patches to draw pixels from.")] = 4000,
    seed: Annotated[int, typer.Option(help="Seed for patches and k-means.")] = 0,
    out: Annotated[Path, typer.Option(help="Where to write the palette JSON.")] = Path(
        "palette.json"),
) -> None:
    """Fit a k-means palette on training patches; print the round-trip PSNR on held-out ones."""
    t0 = time.perf_counter()
    source = ImageSource(data_spec(data))
    train, _ = sample_patches(source, n, size, seed, split="train")
    palette = Palette.fit(train, colors, seed=seed)
    heldout, _ = sample_patches(source, max(n // 4, 1), size, seed + 1, split="heldout")
    palette.save(out)
    table = Table(title=f"palette {out}")
    for col in ("colors", "PSNR train (dB)", "PSNR held-out (dB)", "sha256", "seconds"):
        table.add_column(col)
    table.add_row(str(palette.n_colors), f"{palette.psnr(train):.2f}",
                  f"{palette.psnr(heldout):.2f}", palette.sha256[:16],
                  f"{time.perf_counter() - t0:.1f}")
    console.print(table)
    report_skipped(source.report.bad)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="palette")
