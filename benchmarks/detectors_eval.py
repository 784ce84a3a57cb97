"""The trained detectors (cnn, features, fusion) in distribution and across generators.

    python benchmarks/detectors_eval.py --dataset DS --shift NAME=DS2 [--shift ...] \\
        --model GEN --json detectors.json

Datasets are folders written by ``igpt-forensics generate``. ``--dataset`` (made with
generator ``--model``) trains every detector on its train split, stops early and calibrates
thresholds on its val split, and is evaluated on its test split (held-out photos). Each
``--shift NAME=DS2`` is a dataset of fakes from another checkpoint and/or other sampling
settings, never trained on; its test split (held-out photos) is evaluated as is.

Reported for each detector and each evaluation set, with scikit-learn's metrics
(``igpt_forensics.metrics.image_metrics``): AUC, AP, TPR at 1% FPR, and the TPR / FPR at the
threshold calibrated on validation reals (which AP and AUC hide):

- ``all``: real (as photographed) and quantized-real images vs fakes;
- ``qreal``: quantized-real vs fake only, both through a generator palette, so the palette cue
  cannot win (for a shift set, qreal went through *that* generator's palette);
- ``real``: real as photographed vs fake;
- for the cnn, fusion and likelihood maps: pixel AUC, F1 and IoU of their masks on the box and
  top-half fakes.

Baselines in every table: the zero-shot ``likelihood`` detector (fitted on the train split's
real images and the scoring model's own samples; ``--likelihood`` uses one calibrated
elsewhere, e.g. the shipped calibration of the bundled generator), and trivial single features (row- vs
column-difference energy, Laplacian energy, colors per pixel, fraction on the palette), each
oriented on the train split and evaluated as a score. Training times are wall-clock seconds on
this machine (``--threads``; the CPU count and load average are recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from igpt_forensics.detectors.base import open_detector  # noqa: E402
from igpt_forensics.detectors.cnn import CNNDetector  # noqa: E402
from igpt_forensics.detectors.features import FeaturesDetector  # noqa: E402
from igpt_forensics.detectors.fusion import FusionDetector  # noqa: E402
from igpt_forensics.detectors.likelihood import LikelihoodDetector  # noqa: E402
from igpt_forensics.detectors.trained import SplitData, load_arrays  # noqa: E402

from igpt_forensics.bench import split_report  # noqa: E402
from igpt_forensics.metrics import image_metrics  # noqa: E402

BASELINE_FEATURES = ("log_row_col_energy", "log_laplacian_energy", "colors_per_pixel",
                     "palette_frac")
KINDS = ("likelihood", "features", "cnn", "fusion")


def _subset(data: SplitData, forms: tuple[str, ...]) -> SplitData:
    keep = np.array([f in forms for f in data.real_forms])
    return SplitData(data.real[keep], data.fake, data.fake_masks,
                     [f for f, k in zip(data.real_forms, keep) if k], data.fake_kinds,
                     [i for i, k in zip(data.real_ids, keep) if k], data.fake_ids)


def _compact(m: dict) -> dict:
    keys = ("n_real", "n_fake", "auc", "ap", "tpr_at_1fpr", "tpr_at_threshold",
            "fpr_at_threshold", "pixel_auc", "f1", "iou", "n_images")
    return {k: round(float(v), 4) for k, v in m.items() if k in keys}


def evaluate(det, sets: dict[str, SplitData], pixels: bool) -> dict:
    out = {}
    for name, data in sets.items():
        ev = split_report(det, data.as_split(name), localize=pixels)
        row = {"all": _compact(ev["all"])}
        for form in ("qreal", "real"):
            if f"{form}_vs_fake" in ev:
                row[form] = _compact(ev[f"{form}_vs_fake"])
        for kind in ("box", "top-half"):
            if f"pixels_{kind}" in ev:
                row[f"pixels_{kind}"] = _compact(ev[f"pixels_{kind}"])
        out[name] = row
    return out


def baselines(features_det: FeaturesDetector, train: SplitData, sets: dict[str, SplitData],
              ) -> dict:
    """Single hand features as scores, oriented (sign) on the training split."""
    names = features_det.feature_names
    cols = [names.index(f) for f in BASELINE_FEATURES]
    xt = features_det.features(np.concatenate([train.real, train.fake]))[:, cols]
    yt = np.r_[np.zeros(len(train.real)), np.ones(len(train.fake))]
    sign = np.array([1.0 if image_metrics(yt, xt[:, j], bootstrap=0)["auc"] >= 0.5 else -1.0
                     for j in range(len(cols))])
    out: dict[str, dict] = {f: {} for f in BASELINE_FEATURES}
    for name, data in sets.items():
        x = features_det.features(np.concatenate([data.real, data.fake]))[:, cols] * sign
        y = np.r_[np.zeros(len(data.real)), np.ones(len(data.fake))]
        q = np.r_[np.array([f == "qreal" for f in data.real_forms]), np.ones(len(data.fake),
                                                                             bool)]
        for j, f in enumerate(BASELINE_FEATURES):
            out[f][name] = {"all": _compact(image_metrics(y, x[:, j], bootstrap=0)),
                            "qreal": _compact(image_metrics(y[q], x[q, j], bootstrap=0))}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, help="Training dataset (generate's folder).")
    ap.add_argument("--shift", action="append", default=[],
                    help="NAME=DATASET of fakes from another generator / sampling (repeat).")
    ap.add_argument("--model", required=True,
                    help="Scoring checkpoint for the likelihood detector and features (the "
                    "generator of --dataset, as a defender who knows it would use).")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--max-items", type=int, default=None, help="Items per split, at most.")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--arch", default="resnet10t")
    ap.add_argument("--lik-samples", type=int, default=256)
    ap.add_argument("--likelihood", default=None,
                    help="Use this calibrated likelihood detector (a saved folder, or "
                    "'likelihood' for the shipped calibration) instead of fitting one.")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--keep", type=Path, default=None, help="Save the detectors here.")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    kinds = [k for k in args.kinds.split(",") if k]
    t_start = time.perf_counter()
    info = {"cpu_count": os.cpu_count(), "threads": args.threads,
            "load_before": os.getloadavg(), "args": {k: str(v) for k, v in vars(args).items()}}

    train = load_arrays(args.dataset, "train", max_items=args.max_items)
    val = load_arrays(args.dataset, "val", max_items=args.max_items)
    sets = {"in_distribution": load_arrays(args.dataset, "test", max_items=args.max_items)}
    for spec in args.shift:
        name, _, folder = spec.partition("=")
        sets[name] = load_arrays(folder, "test", max_items=args.max_items)
    counts = {"train": [len(train.real), len(train.fake)], "val": [len(val.real), len(val.fake)],
              **{k: [len(v.real), len(v.fake)] for k, v in sets.items()}}
    print("images (real+qreal, fake):", counts, flush=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="detectors-eval-"))
    results: dict = {"info": info, "counts": counts, "detectors": {}, "train_seconds": {}}
    saved = {}
    dets = {}

    def record(kind, det, seconds, pixels):
        results["train_seconds"][kind] = round(seconds, 1)
        results["detectors"][kind] = evaluate(det, sets, pixels)
        saved[kind] = str(det.save(work / kind))
        dets[kind] = det
        print(f"{kind}: trained in {seconds:.0f} s;",
              {n: r["all"]["auc"] for n, r in results["detectors"][kind].items()}, flush=True)

    vargs = {"val": (val.real, val.fake, val.fake_masks)}
    if "likelihood" in kinds or "fusion" in kinds:
        t = time.perf_counter()
        if args.likelihood:  # calibrated elsewhere: no training time to report
            lik = open_detector(args.likelihood)
            info["likelihood"] = f"pre-calibrated: {args.likelihood}"
        else:
            lik = LikelihoodDetector(model=args.model, n_samples=args.lik_samples,
                                     device="cpu" if args.device == "auto" else args.device)
            lik.fit(train.real)
        record("likelihood", lik, 0.0 if args.likelihood else time.perf_counter() - t,
               pixels=True)
    if "features" in kinds or "fusion" in kinds:
        t = time.perf_counter()
        det = FeaturesDetector(likelihood_model=args.model).fit(
            train.real, train.fake, train.fake_masks, **vargs)
        record("features", det, time.perf_counter() - t, pixels=False)
        results["feature_importances"] = dict(det.feature_importances()[:12])
        results["classifier"] = det.classifier_
        results["baselines"] = baselines(det, train, sets)
    if "cnn" in kinds or "fusion" in kinds:
        t = time.perf_counter()
        det = CNNDetector(arch=args.arch, epochs=args.epochs, device=args.device).fit(
            train.real, train.fake, train.fake_masks, **vargs)
        record("cnn", det, time.perf_counter() - t, pixels=True)
        results["cnn_history"] = det.fit_info_["history"]
    if "fusion" in kinds:
        t = time.perf_counter()
        det = FusionDetector(members=[saved["likelihood"], saved["cnn"], saved["features"]])
        det.fit(val.real, val.fake)
        record("fusion", det, time.perf_counter() - t, pixels=True)
        results["fusion_members"] = det.fit_info_["members"]
    info["load_after"] = os.getloadavg()
    info["seconds"] = round(time.perf_counter() - t_start, 1)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    _print(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    return results


def _print(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 150))
    sets = list(results["counts"])[2:]
    table = Table(title="image level (score: higher = more likely synthetic); TPR / FPR at "
                  "the threshold calibrated on validation reals to 1% FPR")
    for col in ("detector", "set", "train s", "AUC", "AP", "TPR@1%", "qreal AUC", "qreal AP",
                "qreal TPR@1%", "TPR@thr", "FPR@thr"):
        table.add_column(col, justify="left" if col in ("detector", "set") else "right")

    def cells(rows, s):
        a, q = rows[s]["all"], rows[s]["qreal"]
        thr = (f"{a['tpr_at_threshold']:.2f}", f"{a['fpr_at_threshold']:.2f}") \
            if "tpr_at_threshold" in a else ("-", "-")
        return (f"{a['auc']:.3f}", f"{a['ap']:.3f}", f"{a['tpr_at_1fpr']:.2f}",
                f"{q['auc']:.3f}", f"{q['ap']:.3f}", f"{q['tpr_at_1fpr']:.2f}", *thr)

    for kind, rows in results["detectors"].items():
        for s in sets:
            table.add_row(kind, s, str(results["train_seconds"][kind]), *cells(rows, s))
        table.add_section()
    for f, rows in results.get("baselines", {}).items():
        for s in sets:
            table.add_row(f"[dim]{f}[/]", s, "-", *cells(rows, s))
    console.print(table)
    pix = Table(title="maps on partial fakes")
    for col in ("detector", "set", "mask", "pixel AUC", "F1", "IoU"):
        pix.add_column(col, justify="left" if col in ("detector", "set", "mask") else "right")
    for kind, rows in results["detectors"].items():
        for s in sets:
            for k in ("box", "top-half"):
                m = rows[s].get(f"pixels_{k}")
                if m:
                    pix.add_row(kind, s, k, f"{m['pixel_auc']:.3f}", f"{m['f1']:.3f}",
                                f"{m['iou']:.3f}")
    console.print(pix)


if __name__ == "__main__":
    main()

