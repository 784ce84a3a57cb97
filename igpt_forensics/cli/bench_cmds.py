"""``bench`` (detectors x datasets x perturbations -> metrics + report.html) and ``demo`` (the
main job on the embedded default)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ..bench import MAX_BOOTSTRAP, Study, run_benchmark
from ..errors import InputError
from ..perturb import parse_grid
from ..report import summary
from .common import DoneBar, console, err_console, progress_bar, user_errors


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def print_table(doc: dict, title: str) -> None:
    """The image-level rows (fakes of every kind), then region and cross-dataset tables.

    Compact enough for an 80-column terminal: thresholds are the detectors' own, calibrated on
    real images (acc and FPR at that threshold), and the AUC interval is a bootstrap 95% CI.
    """
    names = {r["dataset"] for r in doc["image"]}
    table = Table(title=title + (f" - dataset {next(iter(names))}" if len(names) == 1 else ""),
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    cols = ["detector"] + (["dataset"] if len(names) > 1 else []) + [
        "perturb", "real", "AUC [95% CI]", "AP", "TPR@1%", "acc", "FPR"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("detector", "dataset") else "right",
                         no_wrap=True)
    for r in doc["image"]:
        if r["fakes"] != "all":
            continue
        ci = f"{r['auc']:.3f}" + (f" [{r['auc_lo']:.2f}-{r['auc_hi']:.2f}]" if "auc_lo" in r
                                  else "")  # no interval with --bootstrap 0
        table.add_row(r["detector"], *([r["dataset"]] if len(names) > 1 else []),
                      r["perturbation"], "qreal" if r["real_form"] == "qreal" else "photo",
                      ci, _num(r["ap"]), _num(r["tpr_at_1fpr"]), _num(r.get("accuracy")),
                      _num(r.get("fpr_at_threshold")))
    console.print(table)
    if doc["region"]:
        t2 = Table(title="region level: maps of partial fakes vs their true masks",
                   box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        cols = ["detector"] + (["dataset"] if len(names) > 1 else []) + [
            "perturb", "fakes", "pixel AUC", "F1", "IoU"]
        for col in cols:
            t2.add_column(col, no_wrap=True)
        for r in doc["region"]:
            t2.add_row(r["detector"], *([r["dataset"]] if len(names) > 1 else []),
                       r["perturbation"], r["fakes"], _num(r["pixel_auc"]), _num(r["f1"]),
                       _num(r["iou"]))
        console.print(t2)
    if len(names) > 1 and doc["cross"]:
        t3 = Table(title="cross-dataset: trained or thresholded on A (its val split), tested "
                   "on B", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for col in ("detector", "A", "B", "AUC", "acc@thr", "FPR@thr"):
            t3.add_column(col, no_wrap=True)
        for r in doc["cross"]:
            t3.add_row(r["detector"], r["train"], r["test"], _num(r["auc"]),
                       _num(r["accuracy"]), _num(r["fpr_at_threshold"]))
        console.print(t3)
    if doc.get("leave_one_out"):
        held = list(dict.fromkeys(r["held_out"] for r in doc["leave_one_out"]))
        t4 = Table(title="leave-one-generator-out: AUC on each dataset by detectors that "
                   "never saw its generator (quantized reals)", box=box.SIMPLE_HEAD,
                   pad_edge=False, collapse_padding=True)
        for col in ("detector", *held, "mean"):
            t4.add_column(col, no_wrap=True)
        for name, mean in doc["leave_one_out_mean_auc"].items():
            auc = {r["held_out"]: r["auc"] for r in doc["leave_one_out"]
                   if r["detector"] == name}
            t4.add_row(name, *(_num(auc.get(h)) for h in held), _num(mean))
        console.print(t4)
    for line in summary(doc)["warnings"]:  # what report.html says first, said here too
        err_console.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True)


def make_datasets(study: Study) -> None:
    """Make (or finish) every dataset the study gives a recipe for; a complete one is kept."""
    from igpt_forensics.generators.dataset import prepare_dataset

    for name, recipe in study.generate.items():
        settings = dict(recipe)
        job = prepare_dataset(study.datasets[name], settings.pop("n"), **settings)
        with progress_bar("images") as bar:
            job.run(DoneBar(bar, f"dataset {name}"))
        if not job.generated_items:
            continue  # it was complete already
        rate = job.generated_items / max(job.seconds, 1e-9)
        err_console.print(f"dataset {name}: {job.generated_items} items made in "
                          f"{job.seconds:.0f} s ({rate:.2f} fakes/s)")


def _run(study: Study, model: Path | None, title: str) -> dict:
    from igpt_forensics.detectors.base import open_detector
    from igpt_forensics.detectors.trained import split_trainer

    make_datasets(study)
    opened = {}
    for name, spec in study.detectors.items():
        with err_console.status(f"loading detector {name}"):
            opened[name] = open_detector(spec, model=model)
    factories = {kind: split_trainer(kind) for kind in study.train}
    with err_console.status("benchmarking") as status:
        if err_console.is_terminal:
            def show(s: str) -> None:
                status.update(f"benchmarking: {s}")
        else:  # a spinner shows nothing in a log: one plain line per step instead
            def show(s: str) -> None:
                err_console.print(f"benchmarking: {s}", markup=False, highlight=False)
        doc = run_benchmark(study, opened, factories, progress=show)
    print_table(doc, title)
    console.print(f"wrote {Path(study.out) / 'metrics.json'}, metrics.csv and "
                  f"{Path(study.out) / 'report.html'}")
    return doc


@user_errors
def bench(
    dataset: Annotated[list[Path] | None, typer.Option(
        help="Dataset folder made by `generate`, an outside 0_real/ 1_fake/ folder or a "
        "CSV/JSONL list (repeat for several).")] = None,
    detector: Annotated[list[str] | None, typer.Option(
        help="A shipped detector (cnn, likelihood), a saved detector folder, or module:Class "
        "(repeat).")] = None,
    train: Annotated[list[str] | None, typer.Option(
        help="Detector kind to train per dataset (features, cnn, fusion; baselines rowcol, "
        "laplacian, colors): tested in distribution and in the cross-dataset matrix (repeat).")
    ] = None,
    perturb: Annotated[str, typer.Option(
        help="Comma-separated perturbations, each one of: none, jpegQ (quality 1-100), "
        "resizeF (factor in (0, 4]), blurS (Gaussian sigma), noiseS (noise sigma), cropN "
        "(center crop side); e.g. none,jpeg90,jpeg75,jpeg50,resize0.5,blur1,noise2,crop24.")
                       ] = "none",
    config: Annotated[Path | None, typer.Option(help="A study TOML file (see docs/results.md; "
                                                "studies/default.toml is one).")
                      ] = None,
    model: Annotated[Path | None, typer.Option(help="Scoring model for likelihood.")] = None,
    split: Annotated[str, typer.Option(help="Split to score.")] = "test",
    max_items: Annotated[int | None, typer.Option(help="Items per split at most.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for AUC intervals.")
                         ] = 200,
    seed: Annotated[int, typer.Option(help="Seed of perturbations and bootstrap.")] = 0,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("report"),
    leave_one_out: Annotated[bool, typer.Option(
        "--leave-one-out", help="Also test each dataset with detectors trained (or "
        "thresholded) on all the other datasets only.")] = False,
    datasets_only: Annotated[bool, typer.Option(
        "--datasets-only", help="With --config: make (or finish) the study's datasets, then "
        "stop (e.g. to train a detector on them).")] = False,
) -> None:
    """Benchmark detectors on labeled datasets: metrics.json, metrics.csv, report.html."""
    if datasets_only and config is None:
        raise InputError("--datasets-only needs a --config study file (its recipes)")
    if config is not None:
        study = Study.from_toml(config)
        if datasets_only:
            make_datasets(study)
            console.print(f"datasets ready: {', '.join(study.datasets.values())}")
            return
    else:
        if not dataset:
            raise InputError("name at least one --dataset (or a --config study file)")
        if not 0 <= bootstrap <= MAX_BOOTSTRAP:
            raise InputError(f"--bootstrap must be in 0..{MAX_BOOTSTRAP:,}, got {bootstrap}")
        names = _unique_names([d.name for d in dataset])
        specs = list(detector or [])
        det_names = _unique_names([Path(s).name if Path(s).is_dir() else s for s in specs])
        study = Study(datasets={n: str(d) for n, d in zip(names, dataset)},
                      detectors=dict(zip(det_names, specs)),
                      train=list(train or []), perturbations=parse_grid(perturb),
                      split=split, max_items=max_items, seed=seed, bootstrap=bootstrap,
                      out=str(out), leave_one_out=leave_one_out)
    _run(study, model, "image level (fakes of every mask kind)")


def _unique_names(names: list[str]) -> list[str]:
    """Names as they are, or each with its place appended when two are the same (two folders
    both called cnn/, in different places), so that neither overwrites the other."""
    return names if len(set(names)) == len(names) else [f"{n}-{i}" for i, n in enumerate(names)]


@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the dataset and the report.")] = Path(
        "runs/demo"),
    n: Annotated[int, typer.Option("--n", help="Items (real + quantized real + fake each).")
                 ] = 200,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """The main job on the embedded default: make a labeled dataset from the builtin photos
    with the bundled generator, benchmark the shipped detectors (likelihood, the cnn trained
    on a pool of 11 generators and the fusion of six cnns and one for maps), a quickly
    trained features detector and three single-feature baselines, print the table and write
    report.html."""
    t0 = time.perf_counter()
    recipe = {"n": n, "masks": "top-half,box,full", "seed": seed, "data": "builtin"}
    study = Study(datasets={"default": str(out / "dataset")}, generate={"default": recipe},
                  detectors={"likelihood": "likelihood", "cnn (shipped)": "cnn",
                             "fusion (shipped)": "fusion"},
                  train=["features", "rowcol", "laplacian", "colors"],
                  perturbations=["none", "jpeg75"], bootstrap=200, seed=seed,
                  out=str(out / "report"))
    _run(study, None, "demo: bundled generator vs detectors (test photos)")
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s")


def register(app: typer.Typer) -> None:
    app.command()(bench)
    app.command()(demo)

