"""What a cnn loses on images smaller than it trained on (issue 16; docs/results.md, "Small
images"): each perturbed test image of a dataset scored by one network both ways, its
``small`` set to "upscale" (enlarged with Lanczos to the training side first, as every cnn
read them until 2026-12-05, which rewrites every pixel relation the network reads) and to
"native" (at its own size). Image AUC against the quantized reals (all mask kinds
together), per perturbation; both classes perturbed alike, each image seeded by its place
(`perturb_all`).

    .venv/bin/python benchmarks/small_images.py --dataset runs/pool4-data/px48 \\
        --detector cnn --detector runs/deg/clean --json small-images.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--detector", action="append", required=True,
                    help="a saved cnn or `cnn` (the shipped one); repeat")
    ap.add_argument("--perturb", default="none,crop24,resize0.5,resize0.75,blur1")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    import torch
    from igpt_forensics.detectors.base import open_detector
    from sklearn.metrics import roc_auc_score

    from igpt_forensics.bench import perturb_all
    from igpt_forensics.splits import load_split

    torch.set_num_threads(args.threads)
    data = load_split(args.dataset, args.split)
    ids = [f"q{i}" for i in range(len(data.qreal))] + [f"f{i}" for i in range(len(data.fake))]
    labels = np.r_[np.zeros(len(data.qreal)), np.ones(len(data.fake))]
    out = {"dataset": args.dataset, "split": args.split, "n_qreal": len(data.qreal),
           "n_fake": len(data.fake), "auc": {}}
    for name in args.detector:
        det = open_detector(name)
        rows = out["auc"][name] = {}
        for spec in args.perturb.split(","):
            images, _ = perturb_all(list(data.qreal) + list(data.fake), ids, spec, args.seed)
            images = np.stack(images)
            auc = {how: round(float(roc_auc_score(labels, det.set_params(small=how).score(
                images))), 4) for how in ("upscale", "native")}
            rows[spec] = {"side": int(images.shape[1]), "upscaled": auc["upscale"],
                          "native": auc["native"]}
            print(f"{name} {spec} (side {rows[spec]['side']}): upscaled "
                  f"{rows[spec]['upscaled']:.3f}, at its own size {rows[spec]['native']:.3f}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
