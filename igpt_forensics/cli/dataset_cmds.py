"""``generate`` and ``dataset merge | export | stats``: labeled synthetic datasets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from igpt_forensics.generators.config import COMPLETION_SAMPLING

from .. import provenance as pv
from ..distributed import launch
from ..watermark import DEFAULT_DELTA, DEFAULT_GAMMA, read_key
from .common import (
    C2paCertOpt,
    C2paKeyOpt,
    DataOpt,
    DoneBar,
    JsonOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
    WatermarkDeltaOpt,
    WatermarkGammaOpt,
    WatermarkKeyOpt,
    c2pa_credentials,
    console,
    counted,
    data_spec,
    emit_json,
    progress_bar,
    report_skipped,
    user_errors,
    warn,
)

app = typer.Typer(help="Merge, export and count generated datasets.", no_args_is_help=True)


def _counts_table(title: str, counts: dict) -> Table:
    table = Table(title=title)
    for col in ("split", "label", "form", "mask kind", "images"):
        table.add_column(col, justify="right" if col == "images" else "left")
    for r in counts["rows"]:
        table.add_row(r["split"], r["label"], r["form"], r["mask_kind"] or "-",
                      f"{r['images']:,}")
    table.add_section()
    table.add_row("all", "", "", "", f"{counts['images']:,}", style="bold")
    return table


@user_errors
def generate(
    out: Annotated[Path, typer.Option("--out", help="Dataset folder (new, or one to resume).")],
    n: Annotated[int, typer.Option("--n", "--items", help="Items: each is one source patch "
                                   "written as real, quantized real and fake (3 images). "
                                   "Under torchrun spell it --items (torchrun reads --n as "
                                   "its own --nnodes).")] = 1000,
    data: DataOpt = None,
    model: Annotated[Path | None, typer.Option(
        help="Generator: a checkpoint folder, or pixel-default / vq-default (the bundled "
        "ones). Default: pixel-default.")] = None,
    masks: Annotated[str, typer.Option(help="Mask kinds, cycled over items: top-half, box, "
                                       "full, box:T,L,H,W, file:PATH; recon (VQ family: a "
                                       "real image encoded and decoded).")
                     ] = "top-half,box,full",
    size: Annotated[int | None, typer.Option(
        help="Image side; must equal the generator's. Default: the generator's.")] = None,
    temperature: TemperatureOpt = COMPLETION_SAMPLING["temperature"],
    top_k: TopKOpt = COMPLETION_SAMPLING["top_k"],
    top_p: TopPOpt = COMPLETION_SAMPLING["top_p"],
    seed: Annotated[int, typer.Option(help="Dataset seed: every patch, mask and pixel "
                                      "derives from it and the item number.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images sampled together (no effect on "
                                            "the bytes written).")] = 64,
    shard: Annotated[str, typer.Option(help="INDEX/COUNT: write only items with "
                                       "item % COUNT == INDEX (join with 'dataset merge').")
                     ] = "0/1",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, mps.")] = "auto",
    watermark_key_file: WatermarkKeyOpt = None,
    watermark_gamma: WatermarkGammaOpt = DEFAULT_GAMMA,
    watermark_delta: WatermarkDeltaOpt = DEFAULT_DELTA,
    c2pa_cert: C2paCertOpt = None,
    c2pa_key: C2paKeyOpt = None,
    json_out: JsonOpt = None,
) -> None:
    """Write a labeled dataset of real, quantized real and generated images with a manifest.

    Every image PNG carries its manifest record in a text chunk (see `verify`). Running the same
    command again after a crash continues where it stopped. Under torchrun (torchrun
    --nproc_per_node N -m igpt_forensics generate ...) each process writes its share and the
    first merges them into the dataset one process makes.
    """
    from igpt_forensics.generators.dataset import prepare_dataset

    key = read_key(watermark_key_file, warn) if watermark_key_file is not None else None
    settings = dict(model=model, data=data_spec(data), masks=masks, size=size,
                    temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                    batch_size=batch_size, shard=shard, device=device, watermark_key=key,
                    watermark_gamma=watermark_gamma, watermark_delta=watermark_delta,
                    c2pa=c2pa_credentials(c2pa_cert, c2pa_key))
    quiet = json_out is not None and str(json_out) == "-"
    where = launch()
    if where.distributed:
        return _generate_distributed(out, n, where, settings, json_out, quiet)
    job = prepare_dataset(out, n, **settings)
    if not quiet:
        state = "resuming" if job.resumable else "writing"
        g = job.info["generator"]
        console.print(f"{state} {out}: {len(job.items):,} items x 3 images of "
                      f"{job.size}x{job.size}; {g['family']} generator {g['preset']} "
                      f"{g['sha256'][:12]} on "
                      f"{job.device}", soft_wrap=True)
        if job.watermark is not None:
            w = job.watermark
            console.print(f"watermark: key {w.fingerprint[:12]}, gamma {w.gamma}, delta "
                          f"{w.delta}", soft_wrap=True)
        if job.c2pa is not None:
            console.print(f"C2PA: each fake signed by certificate {job.c2pa.fingerprint[:12]} "
                          f"({job.c2pa.alg})", soft_wrap=True)
    with progress_bar("images") as bar:
        info = job.run(DoneBar(bar, "generate"))
    if not emit_json(json_out, {"dataset": str(out), "settings": info["settings"],
                                "counts": info["counts"],
                                "generated_items": job.generated_items,
                                "seconds": round(job.seconds, 3)}):
        console.print(_counts_table(f"dataset {out}", info["counts"]))
        rate = job.generated_items / job.seconds if job.seconds > 0 else 0.0
        console.print(f"generated {job.generated_items:,} items in {job.seconds:.1f} s "
                      f"({rate:,.1f} fakes/s, {3 * rate:,.1f} images/s)")
    report_skipped(info["skipped"])


def _generate_distributed(out: Path, n: int, where, settings: dict, json_out, quiet: bool
                          ) -> None:
    from igpt_forensics.generators.dataset import generate_distributed

    if where.rank == 0 and not quiet:
        console.print(f"torchrun: {where.world} processes write {out}, each its share (in "
                      f"{out}.shards/), then this one merges them", soft_wrap=True)
    t0 = time.perf_counter()
    if where.rank == 0:
        with progress_bar("images") as bar:
            info = generate_distributed(out, n, where, DoneBar(bar, "generate (rank 0)"),
                                        **settings)
    else:
        info = generate_distributed(out, n, where, **settings)
    if info is None:  # not rank 0: its share is in the dataset
        return
    seconds = time.perf_counter() - t0
    if not emit_json(json_out, {"dataset": str(out), "settings": info["settings"],
                                "counts": info["counts"], "processes": where.world,
                                "seconds": round(seconds, 3)}):
        console.print(_counts_table(f"dataset {out}", info["counts"]))
        console.print(f"{where.world} processes in {seconds:.1f} s")
    report_skipped(info["skipped"])


@app.command("merge")
@user_errors
def merge(
    shards: Annotated[list[Path], typer.Argument(help="Shard folders (written with --shard).")],
    out: Annotated[Path, typer.Option("--out", help="New folder for the merged dataset.")],
) -> None:
    """Join shards into the dataset one run would have made (every file's hash checked)."""
    with progress_bar("images") as bar:
        task = bar.add_task("merge", total=None)
        info = pv.merge_datasets(shards, out, progress=lambda k: bar.advance(task, k))
    title = f"merged {counted(len(shards), 'shard')} into {out}"
    console.print(_counts_table(title, info["counts"]))


@app.command("export")
@user_errors
def export(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder.")],
    out: Annotated[Path, typer.Argument(help="New folder for the export.")],
    layout: Annotated[str, typer.Option(help="folders: OUT/<split>/0_real and 1_fake "
                                        "(CNNDetection style).")] = "folders",
    real: Annotated[str, typer.Option(help="Real images to export: both, real (as "
                                      "photographed) or qreal (through the palette).")
                    ] = "both",
    json_out: JsonOpt = None,
) -> None:
    """Write the dataset in a layout other detection repositories read."""
    if layout not in pv.EXPORT_LAYOUTS:
        raise ValueError(f"--layout must be one of {', '.join(pv.EXPORT_LAYOUTS)}, "
                         f"got '{layout}'")
    with progress_bar("images") as bar:
        task = bar.add_task("export", total=None)
        counts = pv.export_folders(dataset, out, real=real,
                                   progress=lambda k: bar.advance(task, k))
    if emit_json(json_out, counts):
        return
    table = Table(title=f"exported {dataset} to {out} ({layout})")
    for col in ("split", "0_real", "1_fake"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, c in counts.items():
        table.add_row(split, f"{c.get('0_real', 0):,}", f"{c.get('1_fake', 0):,}")
    console.print(table)


@app.command("stats")
@user_errors
def stats(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder.")],
    json_out: JsonOpt = None,
) -> None:
    """Count images per split, label, form and mask kind (from the manifest)."""
    s = pv.dataset_stats(dataset)
    if emit_json(json_out, s):
        return
    shard = "" if s["shard"] == [0, 1] else f", shard {s['shard'][0]}/{s['shard'][1]}"
    state = "complete" if s["complete"] else "[yellow]incomplete[/]"
    console.print(_counts_table(f"{dataset}: n={s['n']:,}{shard}, {state}", s))
    kinds = ", ".join(f"{k} {v:,}" for k, v in s["fakes_by_mask_kind"].items())
    console.print(f"fakes by mask kind: {kinds or '-'}")


def register(root: typer.Typer) -> None:
    root.command("generate")(generate)
    root.add_typer(app, name="dataset")
