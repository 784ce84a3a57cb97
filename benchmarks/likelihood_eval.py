"""Evaluate the zero-shot likelihood detector: image-level and region-level, white-box and
cross-model, each statistic alone and combined, tiling against resizing, and speed.

    .venv/bin/python benchmarks/likelihood_eval.py                     # bundled default model
    .venv/bin/python benchmarks/likelihood_eval.py --model M --cross OTHER --n 32 --out m.json

The scoring model is ``--model`` (default: the bundled default generator) with its detector
(``--detector DIR``; default: the shipped calibration for the default model, else one fitted
here with ``LikelihoodDetector.calibrated``). Fakes are drawn with ``PixelGPT.sample`` from
the scoring model itself (white-box) and from ``--cross`` checkpoints (cross-model): full
images and top-half completions at temperature 1 and 0.9, top-k 40 and top-p 0.9, and box
completions at temperature 1. Real test images are patches of the test photos (never the
val photo the calibration uses), passed through the scoring model's palette
(quantized real vs fake: both classes are palette colors, so no detector can win on the
container; the raw-real numbers are reported beside them). Every score: higher = more likely
synthetic.

Each statistic alone uses a fixed orientation stated in its name (e.g. ``-|z|``: small |z| =
synthetic), never one picked on the test set. Trivial pixel baselines (row vs column
difference energy, Laplacian energy, color count) are reported two-sided (their better
orientation), which flatters them. ``TPR@1%FPR`` is read off the test ROC (an oracle
threshold); ``TPR@thr`` / ``FPR@thr`` use the threshold calibrated on real images only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere in a checkout

from igpt_forensics.detectors.base import load_detector  # noqa: E402
from igpt_forensics.detectors.likelihood import (  # noqa: E402
    DEFAULT_CALIBRATION,
    LikelihoodDetector,
    parse_sampling,
)
from igpt_forensics.generators.checkpoint import load_checkpoint  # noqa: E402

from igpt_forensics.data import load_patches  # noqa: E402
from igpt_forensics.masks import make_mask  # noqa: E402

SETTINGS = {"T1": "temperature=1", "T0.9": "temperature=0.9", "k40": "top_k=40",
            "p0.9": "top_p=0.9"}
# statistic -> orientation (+1: higher = synthetic); fixed before looking at any test data
STATISTICS = {"-z": ("z", -1), "-|z|": ("abs_z", -1), "-gap": ("gap_mean", -1),
              "-nll": ("nll_mean", -1), "-surprise_frac": ("surprise_frac", -1),
              "-z4_std": ("z4_std", -1), "+z": ("z", +1)}


# -- metrics ----------------------------------------------------------------------------------

def image_metrics(real: np.ndarray, fake: np.ndarray, threshold: float | None = None) -> dict:
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    s = np.r_[real, fake]
    fpr, tpr, _ = roc_curve(y, s)
    out = {"auc": roc_auc_score(y, s), "ap": average_precision_score(y, s),
           "tpr@1%fpr": float(np.interp(0.01, fpr, tpr))}
    if threshold is not None:
        out["tpr@thr"] = float(np.mean(fake > threshold))
        out["fpr@thr"] = float(np.mean(real > threshold))
    return {k: round(float(v), 4) for k, v in out.items()}


def two_sided_auc(real: np.ndarray, fake: np.ndarray) -> float:
    auc = roc_auc_score(np.r_[np.zeros(len(real)), np.ones(len(fake))], np.r_[real, fake])
    return round(float(max(auc, 1 - auc)), 4)


def baselines(images: np.ndarray) -> dict[str, np.ndarray]:
    """Trivial single-feature pixel statistics (the field's sanity baselines)."""
    x = images.astype(np.float64).mean(-1)
    row = np.mean(np.diff(x, axis=2) ** 2, axis=(1, 2)) + 1e-6  # along rows (left-right)
    col = np.mean(np.diff(x, axis=1) ** 2, axis=(1, 2)) + 1e-6  # across rows
    lap = (4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2]
           - x[:, 1:-1, 2:])
    colors = np.array([len(np.unique(im.reshape(-1, 3), axis=0)) for im in images])
    return {"row/col diff energy": np.log(col / row), "laplacian energy": (lap**2).mean((1, 2)),
            "color count": colors.astype(np.float64)}


def mean_iou(masks: np.ndarray, truth: np.ndarray) -> float:
    inter = (masks & truth).sum((1, 2))
    union = (masks | truth).sum((1, 2))
    return float(np.where(union > 0, inter / np.maximum(union, 1), 1.0).mean())


def region_metrics(maps: np.ndarray, masks: np.ndarray, truth: np.ndarray) -> dict:
    """Pixel AUC; mean IoU of the calibrated masks, of map > 0.5, and of the best single
    threshold on this set (an oracle, as TruFor's best-threshold F1)."""
    given, synth = maps[~truth], maps[truth]
    best = max(mean_iou(maps > t, truth) for t in np.linspace(0.05, 0.95, 19))
    return {"pixel_auc": round(float(roc_auc_score(truth.ravel(), maps.ravel())), 4),
            "iou": round(mean_iou(masks, truth), 4),
            "iou@0.5": round(mean_iou(maps > 0.5, truth), 4),
            "iou@best": round(best, 4),
            "map_synth": round(float(synth.mean()), 4),
            "map_given": round(float(given.mean()), 4),
            "mask_frac": round(float(masks.mean()), 4)}


# -- fakes ------------------------------------------------------------------------------------

def draw(path: str | None, known_images: np.ndarray, n: int, seed: int) -> dict:
    """Fakes of one generator: {(setting, mask kind): (images, truth masks)}.

    One ``sample`` call per setting holds its full, top-half (and, at temperature 1, box)
    rows: masks are per row, so the cells share the decoding steps.
    """
    model, palette, config = load_checkpoint(path)
    S = model.config.image_size
    known_images = np.stack([np.asarray(Image.fromarray(im).resize((S, S), Image.LANCZOS))
                             for im in known_images[:n]])
    n = len(known_images)
    rng = np.random.default_rng(seed)
    out = {}
    for si, setting in enumerate(SETTINGS):
        kinds = ["full", "top-half"] + (["box"] if setting == "T1" else [])
        masks = np.stack([make_mask(kind, S, rng)[0] for kind in kinds for _ in range(n)])
        known = torch.from_numpy(np.tile(palette.encode(known_images), (len(kinds), 1)))
        seeds = np.random.default_rng([seed, si]).integers(0, 2**44, len(masks))
        t0 = time.perf_counter()
        tokens = model.sample(known, torch.from_numpy(masks.reshape(len(masks), -1)), seeds,
                              **parse_sampling(SETTINGS[setting]))
        images = palette.decode(tokens.numpy())
        for ki, kind in enumerate(kinds):
            out[(setting, kind)] = (images[ki * n:(ki + 1) * n], masks[ki * n:(ki + 1) * n])
        print(f"  drew {len(masks)} {setting} ({', '.join(kinds)}) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return {"fakes": out, "sha256": config["sha256"], "path": config["path"], "size": S}


# -- evaluation -------------------------------------------------------------------------------

def evaluate(det: LikelihoodDetector, real: np.ndarray, real_raw: np.ndarray,
             fakes: dict) -> dict:
    thr = det.threshold_
    r_scores, r_loc = det.score_and_localize(real)
    r_stats = det.image_statistics(real)
    r_base = baselines(real)
    raw_scores = det.score(real_raw)
    # quantized vs raw real: the detector sees palette tokens, so these must be identical
    res: dict = {"image": {}, "region": {},
                 "max |score(raw real) - score(quantized real)|":
                     float(np.max(np.abs(raw_scores - r_scores)))}
    for (setting, kind), (images, truth) in fakes.items():
        f_scores, f_loc = det.score_and_localize(images)
        name = f"{kind} {setting}"
        if kind != "box":
            f_stats = det.image_statistics(images)
            row = {"combined": image_metrics(r_scores, f_scores, thr),
                   "region score": image_metrics(r_loc.region_scores, f_loc.region_scores)}
            row["region flag"] = {"tpr": round(float(f_loc.region_flags.mean()), 4),
                                  "fpr": round(float(r_loc.region_flags.mean()), 4)}
            for label, (key, sign) in STATISTICS.items():
                row[label] = image_metrics(sign * r_stats[key], sign * f_stats[key])
            f_base = baselines(images)
            for label in r_base:
                row[f"baseline {label} (two-sided AUC)"] = two_sided_auc(r_base[label],
                                                                         f_base[label])
            res["image"][name] = row
        if kind != "full" and setting == "T1":
            res["region"][name] = region_metrics(np.asarray(f_loc.maps),
                                                 np.asarray(f_loc.masks), truth)
    return res


def tiling_check(det: LikelihoodDetector, data: str, fakes: dict, n: int, seed: int) -> dict:
    """2S x 2S images: real patches vs 2x2 mosaics of fakes and 2x upscaled fakes."""
    S = det.image_size
    real = load_patches(data, n, size=2 * S, seed=seed, split="test")
    full = np.concatenate([fakes[(k, "full")][0] for k in SETTINGS])
    rng = np.random.default_rng(seed)
    quads = full[rng.integers(0, len(full), (n, 4))]
    mosaic = np.stack([np.concatenate([np.concatenate([q[0], q[1]], axis=1),
                                       np.concatenate([q[2], q[3]], axis=1)], axis=0)
                       for q in quads])
    upscaled = np.stack([np.asarray(Image.fromarray(im).resize((2 * S, 2 * S), Image.LANCZOS))
                         for im in full[:n]])
    out = {}
    tiling = det.tiling
    for mode in ("tile", "resize"):
        det.set_params(tiling=mode)
        t0 = time.perf_counter()
        r = det.score(real)
        speed = len(real) / (time.perf_counter() - t0)
        out[mode] = {"mosaic 2x2 of fakes": image_metrics(r, det.score(mosaic)),
                     "fake upscaled 2x": image_metrics(r, det.score(upscaled)),
                     "images/s": round(speed, 1)}
    det.set_params(tiling=tiling)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="scoring model (default: bundled default)")
    ap.add_argument("--detector", default=None, help="saved detector folder for --model")
    ap.add_argument("--cross", action="append", default=[],
                    help="another generator checkpoint (cross-model); repeat for more")
    ap.add_argument("--data", default="builtin")
    ap.add_argument("--n", type=int, default=32, help="fakes per (setting, mask) cell")
    ap.add_argument("--n-real", type=int, default=128, help="real test images")
    ap.add_argument("--calib-n", type=int, default=512, help="real patches if calibrating")
    ap.add_argument("--calib-samples", type=int, default=128, help="self-drawn if calibrating")
    ap.add_argument("--seed", type=int, default=1000, help="test seed (calibration used 0)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write metrics JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    if args.detector:
        det = load_detector(args.detector, model=args.model)
    elif args.model is None and (DEFAULT_CALIBRATION / "detector.json").exists():
        det = load_detector(DEFAULT_CALIBRATION)
    else:
        print(f"calibrating for {args.model or 'the default model'} "
              f"({args.calib_n} real, {args.calib_samples} self-drawn)", flush=True)
        t0 = time.perf_counter()
        det = LikelihoodDetector.calibrated(model=args.model, data=args.data,
                                            n_real=args.calib_n, n_samples=args.calib_samples)
        print(f"  calibrated in {time.perf_counter() - t0:.0f} s", flush=True)
    if not isinstance(det, LikelihoodDetector):
        raise SystemExit(f"{args.detector}: not a likelihood detector")
    model, palette, scorer_config = det.scoring_model()
    S = model.config.image_size

    real_raw = load_patches(args.data, args.n_real, size=S, seed=args.seed, split="test")
    real = palette.quantize(real_raw)
    known = load_patches(args.data, args.n, size=S, seed=args.seed + 1, split="test")

    det.score(real[:2])  # warm up: the model is loaded and checked on first use
    t0 = time.perf_counter()
    det.score(real)
    speed_score = len(real) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    det.score_and_localize(real)
    speed = len(real) / (time.perf_counter() - t0)

    report: dict = {"scoring_model": scorer_config["path"], "threshold": det.threshold_,
                    "fit_info": det.fit_info_, "n_real": len(real), "n_per_cell": args.n,
                    "images_per_s (score+maps, SxS)": round(speed, 1),
                    "images_per_s (score only, SxS)": round(speed_score, 1),
                    "threads": args.threads, "runs": {}}
    gens = [("white-box", args.model)] + [(f"cross: {c}", c) for c in args.cross]
    white_fakes = None
    for label, path in gens:
        print(f"{label}: drawing fakes", flush=True)
        g = draw(path, known, args.n, seed=args.seed)
        if label == "white-box":
            white_fakes = g["fakes"]
        report["runs"][label] = {"generator": g["path"], "generator_sha256": g["sha256"],
                                 **evaluate(det, real, real_raw, g["fakes"])}
    report["tiling"] = tiling_check(det, args.data, white_fakes, max(8, args.n_real // 4),
                                    args.seed + 2)
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    print_report(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.out}")


def print_report(r: dict) -> None:
    print(f"\nscoring model {r['scoring_model']}; threshold {r['threshold']:.3f}; "
          f"{r['n_real']} quantized real test patches, {r['n_per_cell']} fakes per cell; "
          f"{r['images_per_s (score only, SxS)']} images/s scored, "
          f"{r['images_per_s (score+maps, SxS)']} with maps ({r['threads']} threads); "
          f"{r['seconds']} s in all")
    stats = list(STATISTICS)
    for label, run in r["runs"].items():
        print(f"\n## {label} (generator {run['generator']})\n")
        print("| fakes | AUC | AP | TPR@1%FPR | TPR@thr | FPR@thr | region AUC | "
              + " | ".join(f"{s} AUC" for s in stats) + " | best trivial baseline |")
        print("|" + " --- |" * (8 + len(stats)))
        for name, row in run["image"].items():
            c = row["combined"]
            base = max((v, k.split(" (")[0].removeprefix("baseline ")) for k, v in row.items()
                       if k.startswith("baseline"))
            print(f"| {name} | {c['auc']:.3f} | {c['ap']:.3f} | {c['tpr@1%fpr']:.3f} | "
                  f"{c['tpr@thr']:.3f} | {c['fpr@thr']:.3f} | {row['region score']['auc']:.3f} | "
                  + " | ".join(f"{row[s]['auc']:.3f}" for s in stats)
                  + f" | {base[0]:.3f} {base[1]} |")
        key = "max |score(raw real) - score(quantized real)|"
        print(f"\n{key} = {run[key]:.3g}")
        print("\n| fakes | pixel AUC | IoU (calibrated mask) | IoU map>0.5 | IoU best threshold "
              "| map synthesized | map given | mask fraction |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, m in run["region"].items():
            print(f"| {name} | {m['pixel_auc']:.3f} | {m['iou']:.3f} | {m['iou@0.5']:.3f} | "
                  f"{m['iou@best']:.3f} | {m['map_synth']:.3f} | {m['map_given']:.3f} | "
                  f"{m['mask_frac']:.3f} |")
    print("\n## 2S x 2S images: tile vs resize\n")
    print("| tiling | fakes | AUC | AP | TPR@1%FPR | real images/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mode, row in r["tiling"].items():
        for name, m in row.items():
            if isinstance(m, dict):
                print(f"| {mode} | {name} | {m['auc']:.3f} | {m['ap']:.3f} | "
                      f"{m['tpr@1%fpr']:.3f} | {row['images/s']} |")


if __name__ == "__main__":
    main()
