"""How much do the likelihood detector's statistics know about generators it never saw? (issue 16)

The shipped zero-shot detector (`detectors/likelihood.py`) is near chance on held-out
pixel-GPTs (AUC 0.52-0.61 against their quantized reals, docs/results.md). Two questions,
each answered with the same coder (the bundled default generator) and the same image features
(`image_features`, one quadratic logistic regression, as the detector fits them):

1. **Palette parity in the fit.** The detector is fitted on real photos against the coder's
   own samples, both in the coder's 512 colors (here: its sampling settings and masks, 256
   samples, no third held back for thresholds, which AUC does not need); held-out generators draw in 32-48 colors, and
   their quantized reals are in those colors too. Refit with every real patch and every
   self-drawn sample passed through a k-means palette of 16-128 colors (fitted on the real
   patches, the same palettes for both classes), at several seeds (the seed draws the samples,
   the palettes and which palette each image gets).
2. **The ceiling of these features.** Fit the same regression *supervised*, on one held-out
   generator's train split (its fakes against its quantized reals), and score every test
   split: on its own test split, the best these statistics can do for that generator.

Every figure is image AUC, fakes against the dataset's quantized reals on its test split.

    .venv/bin/python benchmarks/likelihood_ceiling.py --threads 2 \\
        --dataset runs/pool3-data/px32 --dataset runs/pool4-data/px48 --dataset runs/deb/px48d \\
        --json benchmarks/results/likelihood-ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere in a checkout

PALETTE_SIZES = (16, 24, 32, 48, 64, 96, 128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", required=True,
                    help="a held-out generator's dataset (repeat)")
    ap.add_argument("--data", action="append", default=None,
                    help="real photos of the fit (data specs; default: builtin and "
                         "data/debian-photos.tsv, as `make likelihood-default`)")
    ap.add_argument("--n-real", type=int, default=512, help="real patches per data spec")
    ap.add_argument("--n-samples", type=int, default=256, help="self-drawn samples per seed")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--max-items", type=int, default=None,
                    help="the first N items of each split only (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch
    from igpt_forensics.detectors.cnn import fit_palettes, palette_batch
    from igpt_forensics.detectors.likelihood import (
        IMAGE_FEATURES,
        LikelihoodDetector,
        _mean_by_owner,
        image_features,
        parse_sampling,
    )
    from igpt_forensics.detectors.linear import QuadraticLogistic
    from sklearn.metrics import roc_auc_score

    from igpt_forensics.data import ImageSource, sample_patches
    from igpt_forensics.errors import InputError
    from igpt_forensics.splits import load_split

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    det = LikelihoodDetector(n_samples=args.n_samples)
    model, codec = det._scorer()
    S = det.image_size
    specs = args.data or ["builtin", "data/debian-photos.tsv"]
    # the val photos where there are any (builtin: as the shipped calibration), else train
    real = []
    for spec in specs:
        src = ImageSource(spec)
        for split in ("val", "train"):
            try:
                real.append(sample_patches(src, args.n_real, S, seed=0, split=split)[0])
                break
            except InputError:  # no photos in that split: take the next
                continue
    real = np.concatenate(real)

    def features(tiles: np.ndarray) -> np.ndarray:
        return image_features(det.pixel_stats(tiles))

    def fit(x_real: np.ndarray, x_fake: np.ndarray) -> QuadraticLogistic:
        x = np.concatenate([x_real, x_fake])
        y = np.r_[np.zeros(len(x_real)), np.ones(len(x_fake))]
        return QuadraticLogistic.fit(x, y, IMAGE_FEATURES, det.C, 0)

    def tiled(images: list) -> tuple[np.ndarray, np.ndarray]:
        tiles, _, owner = det._tiles(images)
        return features(tiles), owner

    tests = {}
    for folder in args.dataset:
        sp = load_split(folder, "test", args.max_items)
        f, owner = tiled(list(sp.qreal) + list(sp.fake))
        tests[Path(folder).name] = (f, owner, np.r_[np.zeros(len(sp.qreal)),
                                                    np.ones(len(sp.fake))])

    def aucs(m: QuadraticLogistic) -> dict[str, float]:
        out = {}
        for name, (f, owner, y) in tests.items():
            s = _mean_by_owner(m.decision(f)[:, None], owner, len(y))[:, 0]
            out[name] = round(float(roc_auc_score(y, s)), 3)
        return out

    rows = {"self_drawn": [], "supervised": {}}
    configs = [parse_sampling(s) for s in det.sampling]
    f_real = features(real)
    for seed in [int(s) for s in args.seeds.split(",")]:
        det.seed = seed
        samples, _ = det._draw(model, codec, real, configs, lambda n: None)
        palettes = fit_palettes(real, seed, sizes=PALETTE_SIZES)
        q_real = palette_batch(real, palettes, np.random.default_rng([seed, 1]), 1.0)
        q_fake = palette_batch(samples, palettes, np.random.default_rng([seed, 2]), 1.0)
        row = {"seed": seed, "as_shipped_fit": aucs(fit(f_real, features(samples))),
               "palette_parity": aucs(fit(features(q_real), features(q_fake)))}
        rows["self_drawn"].append(row)
        print(json.dumps(row), f"{time.perf_counter() - t0:.0f} s", flush=True)
    for folder in args.dataset:
        sp = load_split(folder, "train", args.max_items)
        m = fit(tiled(list(sp.qreal))[0], tiled(list(sp.fake))[0])
        rows["supervised"][Path(folder).name] = aucs(m)
        print("supervised on", Path(folder).name, rows["supervised"][Path(folder).name],
              flush=True)
    out = {"command": " ".join(sys.argv), "coder": "bundled default generator",
           "n_real_patches": len(real), "n_samples": args.n_samples,
           "palette_sizes": list(PALETTE_SIZES), "seconds": round(time.perf_counter() - t0),
           **rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print("wrote", args.json)


if __name__ == "__main__":
    main()
