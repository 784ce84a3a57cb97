"""What a cnn loses on images smaller than it trained on (issue 16; docs/results.md, "Small
images"): `score` first upscales them (Lanczos) to the training side, which rewrites every
pixel relation the network reads. Here each perturbed test image of a dataset is scored both
ways by one network, with the same mirror averaging: through `score` (upscaled) and at its
own size (the network's image logit, nothing resampled). Image AUC against the quantized
reals (all mask kinds together), per perturbation; both classes perturbed alike, each image
seeded by its place (`perturb_all`).

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
    from igpt_forensics.detectors.base import create_detector, load_detector
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
        det = (create_detector("cnn", pretrained=True) if name == "cnn"
               else load_detector(name))
        net, device = det._net, next(det._net.parameters()).device
        rows = out["auc"][name] = {}
        for spec in args.perturb.split(","):
            images, _ = perturb_all(list(data.qreal) + list(data.fake), ids, spec, args.seed)
            upscaled = det.score(np.stack(images))
            native = np.zeros(len(images))
            for side in sorted({im.shape[:2] for im in images}):
                idx = [i for i, im in enumerate(images) if im.shape[:2] == side]
                img, _ = det._forward_all(net, np.stack([images[i] for i in idx]), device,
                                          mirror=det.tta == "flip")
                native[idx] = img
            rows[spec] = {"side": int(images[0].shape[0]),
                          "upscaled": round(float(roc_auc_score(labels, upscaled)), 4),
                          "native": round(float(roc_auc_score(labels, native)), 4)}
            print(f"{name} {spec} (side {rows[spec]['side']}): through score "
                  f"{rows[spec]['upscaled']:.3f}, at its own size {rows[spec]['native']:.3f}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
