"""``verify``: provenance stamps and the keyed watermark of images (key + palette, no model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..credentials import Report as C2paReport
from ..credentials import read_trust
from ..data import find_images
from ..errors import InputError
from ..palette import Palette
from ..verify import Verifier
from ..watermark import key_fingerprint, read_key
from .common import (
    JsonOpt,
    console,
    counted,
    emit_json,
    fail,
    progress_bar,
    report_skipped,
    user_errors,
    warn,
)

STATUS_STYLE = {"intact": "green", "tampered": "bold red", "resized": "yellow",
                "missing": "dim", "invalid": "red"}


def _palette(palette: Path | None, model: Path | None) -> Palette:
    from igpt_forensics.generators.checkpoint import generator_palette

    if palette is not None and model is not None:
        raise InputError("give --palette or --model, not both")
    if palette is not None:
        return Palette.load(palette)
    return generator_palette(model)


def _c2pa_cell(c: dict) -> str:
    style = {"valid": "green", "invalid": "bold red"}.get(c["status"], "dim")
    return f"[{style}]{c['status']}{' (trusted)' if c['trusted'] else ''}[/]"


def _verdict(row: dict) -> str:
    w, m = row["watermark"], row["metadata"]
    if w is None:  # no key: what the stamp says the image is (a claim, not a proof)
        if m["status"] == "missing":
            return "no stamp"
        return f"stamped: {m['kind'] or 'unknown kind'}" + (
            "" if m["status"] == "intact" else f" ({m['status']})")
    if not w["detected"]:
        return "not found"
    if w["found_by"] == "region":
        t, left, h, wd = w["regions"]["best"]["box"]
        return f"[bold]watermarked[/] (region {h}x{wd} at {t},{left})"
    if w["found_by"] == "shifted":
        dy, dx = w["shifted"]["best"].get("offset", [0, 0])
        return f"[bold]watermarked[/] (shifted by {dy},{dx})"
    return f"[bold]watermarked[/] ({w['found_by']})"


@user_errors
def verify(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    watermark_key_file: Annotated[Path | None, typer.Option(
        "--watermark-key-file", help="The secret key the images were generated with. "
        "Without it only the provenance stamps are checked.")] = None,
    palette: Annotated[Path | None, typer.Option(
        help="Palette JSON the generator used. Default: the palette of --model.")] = None,
    model: Annotated[Path | None, typer.Option(
        help="Checkpoint folder whose palette to use (its weights are not read). "
        "Default: the bundled generator.")] = None,
    watermark_gamma: Annotated[float | None, typer.Option(
        "--watermark-gamma", help="Green fraction. Default: what the file's stamp records, "
        "else 0.25.")] = None,
    c2pa_trust: Annotated[Path | None, typer.Option(
        "--c2pa-trust", help="PEM file of trusted C2PA root certificates: a manifest signed "
        "under one of them is reported trusted.")] = None,
    json_out: JsonOpt = None,
) -> None:
    """Check each image's provenance stamp (intact, tampered, resized, missing), its C2PA
    manifest (valid, invalid, absent) and test it for the keyed watermark: per image, per
    region, and under shifted positions (a crop).

    A test flags an image when its p-value is below 3.2e-5 (z > 4 for one test; the region
    and shift searches use Bonferroni thresholds over their many windows and offsets).
    """
    key = read_key(watermark_key_file, warn) if watermark_key_file is not None else None
    trust = read_trust(c2pa_trust) if c2pa_trust is not None else None
    verifier = Verifier(_palette(palette, model), key, watermark_gamma, c2pa_trust=trust)
    files, bad = find_images(images)
    rows = []
    with progress_bar("images") as bar:
        task = bar.add_task("verify", total=len(files))
        for f in files:
            try:
                rows.append(verifier.file(f).to_dict())
            except InputError as e:
                bad.append(str(e))
            bar.advance(task)
    if not emit_json(json_out, {"palette_sha256": verifier.palette.sha256,
                                "key_sha256": None if key is None else key_fingerprint(key),
                                "rows": rows, "skipped": bad}):
        table = Table(title="verify" + ("" if key else " (no key: stamps only)"))
        for col, just in (("file", "left"), ("stamp", "left"), ("C2PA", "left"),
                          ("z image", "right"),
                          ("best region", "right"), ("shifted", "right"),
                          ("verdict", "left")):
            table.add_column(col, justify=just)
        for r in rows:
            m, w = r["metadata"], r["watermark"]
            status = f"[{STATUS_STYLE[m['status']]}]{m['status']}[/]"
            if w is None:
                cells = ["-", "-", "-"]
            else:
                reg, sh = w["regions"]["best"], w["shifted"]["best"]
                cells = [f"{w['image']['z']:.1f}",
                         "-" if reg is None else f"{reg['z']:.1f} ({reg['box'][2]}px)",
                         "-" if sh is None else f"{sh['z']:.1f}"]
            table.add_row(escape(r["path"]), status, _c2pa_cell(r["c2pa"]), *cells,
                          _verdict(r))
        console.print(table)
        for r in rows:
            if r["c2pa"]["status"] in ("valid", "invalid"):
                console.print(f"{escape(r['path'])}: {escape(C2paReport(**r['c2pa']).line())}",
                              soft_wrap=True)
            for note in r["notes"]:
                console.print(f"[yellow]note:[/] {escape(r['path'])}: {escape(note)}",
                              soft_wrap=True)
        if rows and key is not None:
            found = sum(r["watermark"]["detected"] for r in rows)
            w = rows[0]["watermark"]
            console.print(f"{found} of {counted(len(rows), 'image')} watermarked. Thresholds "
                          f"(first image's size): image z > {w['z_threshold']}, best region z > "
                          f"{w['regions']['z_threshold']} ({w['regions']['tests']} windows, "
                          f"Bonferroni), shifted z > {w['shifted']['z_threshold']} "
                          f"({w['shifted']['tests']} tests)", soft_wrap=True)
        report_skipped(bad)
    if not rows:
        raise fail("no readable images to verify")


def register(app: typer.Typer) -> None:
    app.command()(verify)
