"""False alarms of a detector on real photos by crop scale and by where the palette came from.

A generated dataset's real items are `PatchSampler` crops: a square of the photo at a random
scale, log-uniform between the item's side and the photo's shorter side, resized to the side;
so about a quarter of them are read at 1-2x their pixels, sensor noise and compression blocks
included. `calibrate` reads `real_views` crops, which are at least twice the side (mostly far
more), smooth after resizing. And a generator quantizes its reals through its own palette,
fitted on its *training* photos, while `calibrate` fits its palettes on the crops it reads.

Here the *test* photos (builtin + the Debian list) give ``--n`` crops the way a dataset does,
each read as photographed and through: the bundled palette; palettes of ``--colors`` sizes
fitted on crops of the *train* photos (a generator's own palette; in turn, one per crop);
palettes of those sizes fitted on the test crops themselves (calibrate's way; in turn); and
each ``--palette`` file (a generator's palette.json); then, with ``--perturb``, each view
perturbed (jpeg75: saved again as JPEG). The share flagged (verdict synthetic or region) is
reported with a 95% Wilson interval, overall and by scale (crop side / item side), by photo
and by palette size, so that one can see where false alarms come from.

    .venv/bin/python benchmarks/false_alarm_scale.py --detector fusion --n 2000 \\
        --palette runs/pool5/runs/px40/palette.json --json benchmarks/results/false-alarm-scale.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SCALE_BINS = (1, 2, 4, 8, 16)  # crop side / item side: [1, 2), [2, 4), ... [16, inf)


def share(flags: np.ndarray) -> dict:
    """How many of ``flags`` are set, their share and its 95% Wilson interval."""
    from scipy.stats import binomtest

    k, n = int(flags.sum()), int(flags.size)
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return {"n": n, "flagged": k, "share": k / n, "ci95": [float(ci.low), float(ci.high)]}


def scale_bin(ratio: float) -> str:
    edges = [*SCALE_BINS, np.inf]
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo <= ratio < hi:
            return f"{lo}-{hi:g}x"
    return f"{SCALE_BINS[-1]}-infx"


def summarize(flags: np.ndarray, ratios: np.ndarray, photos: list[str],
              palette_sizes: list[int] | None, synthetic: np.ndarray | None = None) -> dict:
    """Flagged shares overall (and of them, those with the verdict synthetic), by scale bin,
    by photo and (when given) by palette size."""
    out = {"all": share(flags), "by_scale": {}, "by_photo": {}}
    if synthetic is not None:
        out["synthetic"] = share(synthetic)
    bins = np.array([scale_bin(r) for r in ratios])
    for b in dict.fromkeys(scale_bin(float(lo)) for lo in SCALE_BINS):
        if (bins == b).any():
            out["by_scale"][b] = share(flags[bins == b])
    names = np.array(photos)
    for p in dict.fromkeys(photos):
        out["by_photo"][p] = share(flags[names == p])
    if palette_sizes is not None:
        sizes = np.array(palette_sizes)
        out["by_palette"] = {str(k): share(flags[sizes == k]) for k in dict.fromkeys(palette_sizes)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default="fusion")
    ap.add_argument("--n", type=int, default=2000, help="test crops, the way a dataset cuts them")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--colors", default="24,32,40,48,64,96,200")
    ap.add_argument("--palette", action="append", default=[], type=Path)
    ap.add_argument("--train-crops", type=int, default=20000,
                    help="train-photo crops the generators' palettes are fitted on")
    ap.add_argument("--data", action="append", default=[])
    ap.add_argument("--perturb", default="none",
                    help="one perturbation of igpt_forensics.perturb applied to every view "
                         "last (jpeg75: a palette image saved again as JPEG)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from igpt_forensics.detectors.base import judge, open_detector
    from igpt_forensics.detectors.cnn import palette_views
    from igpt_forensics.generators.checkpoint import generator_palette

    from igpt_forensics.data import ImageSource, PatchSampler
    from igpt_forensics.palette import Palette
    from igpt_forensics.perturb import perturb

    det = open_detector(args.detector)
    source = ImageSource(args.data or ["builtin", "data/debian-photos.tsv"])
    images, crops = PatchSampler(source, args.size, args.seed, "test").patches(range(args.n))
    ratios = np.array([c.side / args.size for c in crops])
    photos = [c.photo_id for c in crops]
    train = PatchSampler(source, args.size, args.seed, "train").patches(
        range(args.train_crops))[0]
    colors = [int(c) for c in args.colors.split(",")]
    fitted = {"train-fitted": [Palette.fit(train, k, seed=args.seed) for k in colors],
              "self-fitted": [Palette.fit(images, k, seed=args.seed) for k in colors]}

    views: dict[str, tuple[list[np.ndarray], list[int] | None]] = {
        "photo": (list(images), None),
        "bundled": (palette_views(images, [generator_palette()]), None)}
    for origin, palettes in fitted.items():  # the palettes in turn, one per crop
        views[origin] = (palette_views(images, palettes),
                         [colors[i % len(colors)] for i in range(len(images))])
    for path in args.palette:
        views[f"file:{path}"] = (palette_views(images, [Palette.load(path)]), None)

    if args.perturb != "none":
        views = {name: ([perturb(x, args.perturb, seed=i)[0] for i, x in enumerate(xs)], sizes)
                 for name, (xs, sizes) in views.items()}
    rows = {}
    for name, (xs, sizes) in views.items():
        judged = judge(det, xs)[0]
        verdicts = np.array([r["verdict"] for r in judged])
        rows[name] = summarize(verdicts != "real", ratios, photos, sizes,
                               verdicts == "synthetic")
        rows[name]["mean_score"] = float(np.mean([r["score"] for r in judged]))
        a = rows[name]["all"]
        print(f"{name:>40}: {a['flagged']}/{a['n']} = {a['share']:.3f} "
              f"[{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}] (synthetic "
              f"{rows[name]['synthetic']['share']:.3f})  by scale "
              + ", ".join(f"{b} {s['share']:.3f} ({s['n']})"
                          for b, s in rows[name]["by_scale"].items()), flush=True)
    doc = {"detector": args.detector, "threshold": float(det.threshold_), "size": args.size,
           "n": args.n, "seed": args.seed, "colors": colors, "perturb": args.perturb,
           "palettes": [str(p) for p in args.palette], "views": rows}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
