"""``bench`` (detectors x datasets x perturbations -> metrics + report.html) and ``demo`` (the
main job on the embedded default)."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..bench import Split, Study, run_benchmark
from ..errors import InputError
from ..perturb import parse_grid
from .common import console, err_console, progress_bar, user_errors


def open_bench_detector(spec: str, model: Path | None = None) -> Any:
    """A registered name, a saved detector folder, or an outside detector ``module:Class``
    (a class honouring the detector contract, built with no arguments and already fitted)."""
    from detectors.base import open_detector

    if ":" in spec and not Path(spec).exists():
        module, _, cls_name = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except (ImportError, AttributeError) as e:
            raise InputError(f"--detector {spec}: cannot import ({e})") from None
        det = cls()
        for need in ("score", "threshold_"):
            if not hasattr(det, need):
                raise InputError(f"--detector {spec}: has no '{need}' (see the detector "
                                 "contract in detectors/base.py)")
        return det
    return open_detector(spec, model=model)


def trainer(kind: str):
    """A factory for the cross protocol: a fresh ``kind`` detector fitted on a train split
    (fakes with their masks) and thresholded on the validation split."""
    from detectors.base import create_detector

    create_detector(kind)  # fail early on an unknown kind

    def fit(train: Split, val: Split):
        det = create_detector(kind)
        reals = train.real + train.qreal
        return det.fit(reals, train.fake, fake_masks=train.masks,
                       val=(val.real + val.qreal, val.fake))

    return fit


def print_table(doc: dict, title: str) -> None:
    table = Table(title=title)
    for col in ("detector", "dataset", "perturbation", "real", "AUC [95% CI]", "AP",
                "TPR@1%FPR", "acc@thr", "FPR@thr"):
        table.add_column(col, justify="right" if col not in ("detector", "dataset") else "left")
    for r in doc["image"]:
        if r["fakes"] != "all":
            continue
        table.add_row(r["detector"], r["dataset"], r["perturbation"],
                      "quantized" if r["real_form"] == "qreal" else "photo",
                      f"{r['auc']:.3f} [{r['auc_lo']:.2f}, {r['auc_hi']:.2f}]",
                      f"{r['ap']:.3f}", f"{r['tpr_at_1fpr']:.3f}",
                      f"{r['accuracy']:.3f}" if r.get("accuracy") is not None else "-",
                      f"{r['fpr_at_threshold']:.3f}" if r.get("fpr_at_threshold") is not None
                      else "-")
    console.print(table)
    if doc["region"]:
        t2 = Table(title="region level (partial fakes)")
        for col in ("detector", "dataset", "perturbation", "fakes", "pixel AUC", "F1", "IoU"):
            t2.add_column(col)
        for r in doc["region"]:
            t2.add_row(r["detector"], r["dataset"], r["perturbation"], r["fakes"],
                       "-" if r["pixel_auc"] is None else f"{r['pixel_auc']:.3f}",
                       f"{r['f1']:.3f}", f"{r['iou']:.3f}")
        console.print(t2)
    if doc["cross"]:
        t3 = Table(title="cross-dataset: trained/thresholded on A, tested on B")
        for col in ("detector", "A", "B", "AUC", "acc@thr", "FPR@thr"):
            t3.add_column(col)
        for r in doc["cross"]:
            t3.add_row(r["detector"], r["train"], r["test"], f"{r['auc']:.3f}",
                       f"{r['accuracy']:.3f}", f"{r['fpr_at_threshold']:.3f}")
        console.print(t3)


def _run(study: Study, model: Path | None, title: str) -> dict:
    opened = {}
    for name, spec in study.detectors.items():
        with err_console.status(f"loading detector {name}"):
            opened[name] = open_bench_detector(spec, model)
    factories = {kind: trainer(kind) for kind in study.train}
    with err_console.status("benchmarking") as status:
        doc = run_benchmark(study, opened, factories,
                            progress=lambda s: status.update(f"benchmarking: {s}"))
    print_table(doc, title)
    console.print(f"wrote {Path(study.out) / 'metrics.json'}, metrics.csv and "
                  f"{Path(study.out) / 'report.html'}")
    return doc


@user_errors
def bench(
    dataset: Annotated[list[Path] | None, typer.Option(
        help="Dataset folder made by `generate` (repeat for several).")] = None,
    detector: Annotated[list[str] | None, typer.Option(
        help="likelihood, a saved detector folder, or module:Class (repeat).")] = None,
    train: Annotated[list[str] | None, typer.Option(
        help="Detector kind to train per dataset for the cross-dataset matrix (repeat).")
    ] = None,
    perturb: Annotated[str, typer.Option(help="Comma-separated: none, jpeg90, jpeg75, "
                                         "jpeg50, resize0.5, blur1, noise2, crop24.")
                       ] = "none",
    config: Annotated[Path | None, typer.Option(help="A study TOML file (see README).")
                      ] = None,
    model: Annotated[Path | None, typer.Option(help="Scoring model for likelihood.")] = None,
    split: Annotated[str, typer.Option(help="Split to score.")] = "test",
    max_items: Annotated[int | None, typer.Option(help="Items per split at most.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for AUC intervals.")
                         ] = 200,
    seed: Annotated[int, typer.Option(help="Seed of perturbations and bootstrap.")] = 0,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("report"),
) -> None:
    """Benchmark detectors on labeled datasets: metrics.json, metrics.csv, report.html."""
    if config is not None:
        study = Study.from_toml(config)
    else:
        if not dataset:
            raise InputError("name at least one --dataset (or a --config study file)")
        names = [d.name for d in dataset]
        if len(set(names)) != len(names):
            names = [f"{d.name}-{i}" for i, d in enumerate(dataset)]
        study = Study(datasets={n: str(d) for n, d in zip(names, dataset)},
                      detectors={(Path(s).name if Path(s).is_dir() else s): s
                                 for s in (detector or [])},
                      train=list(train or []), perturbations=parse_grid(perturb),
                      split=split, max_items=max_items, seed=seed, bootstrap=bootstrap,
                      out=str(out))
    _run(study, model, "image level (fakes of every mask kind)")


@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the dataset and the report.")] = Path(
        "demo"),
    n: Annotated[int, typer.Option("--n", help="Items (real + quantized real + fake each).")
                 ] = 150,
    model: Annotated[Path | None, typer.Option(help="Generator (default: bundled).")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """The main job on the embedded default: make a labeled dataset from the builtin photos
    with the bundled generator, benchmark the likelihood detector and a quickly trained
    features detector, print the table and write report.html."""
    from generators.dataset import generate_dataset

    t0 = time.perf_counter()
    ds = out / "dataset"
    with progress_bar("images") as bar:
        task = bar.add_task("generating", total=n)
        generate_dataset(ds, n, model=model, data="builtin", masks="top-half,box,full",
                         seed=seed, progress=lambda done, total: bar.update(
                             task, completed=done, total=total))
    study = Study(datasets={"default": str(ds)}, detectors={"likelihood": "likelihood"},
                  train=["features"], perturbations=["none", "jpeg75"], bootstrap=200,
                  seed=seed, out=str(out / "report"))
    _run(study, None, "demo: bundled generator vs detectors (test photos)")
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s")


def register(app: typer.Typer) -> None:
    app.command()(bench)
    app.command()(demo)

