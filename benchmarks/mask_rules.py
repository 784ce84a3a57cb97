"""Masks from a detector's maps, by two rules: the detector's own masks, and the pixels whose map
is at least ``alpha`` times the image's maximum (a mask from each image's peak). Per mask kind
(top-half, box, full) of a dataset split: the mean F1 and IoU against the true masks
(`metrics.pixel_metrics`), the mean share of the image in the mask, and on the split's quantized
reals the mean share of their pixels in the mask. The share matters: a rule that marks about
half of every image scores a high IoU on top halves, which are half an image, without finding
a box (docs/results.md, "Three things measured and not shipped").

    .venv/bin/python benchmarks/mask_rules.py --detector fusion --dataset runs/deb/t1 \\
        --split val --alphas 0.5,0.6,0.7,0.8,0.9 --json mask-rules.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

KINDS = ("top-half", "box", "full")


def peak_masks(maps: list[np.ndarray], alpha: float) -> list[np.ndarray]:
    """Each map's pixels at or above ``alpha`` times its maximum."""
    return [np.asarray(m, np.float64) >= alpha * float(np.max(m)) for m in maps]


def rule_row(truth: list[np.ndarray], maps: list[np.ndarray], masks: list[np.ndarray]) -> dict:
    """Mean F1 / IoU of ``masks`` against ``truth``, and their mean share of the image."""
    from igpt_forensics.metrics import pixel_metrics

    m = pixel_metrics(truth, maps, masks)
    return {"f1": round(m["f1"], 4), "iou": round(m["iou"], 4),
            "mask_share": round(float(np.mean([np.mean(k) for k in masks])), 4),
            "true_share": round(float(np.mean([np.mean(t) for t in truth])), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default="fusion")
    ap.add_argument("--dataset", action="append", required=True, help="repeat")
    ap.add_argument("--split", default="test")
    ap.add_argument("--alphas", default="0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the rows here too")
    args = ap.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]

    import torch
    from igpt_forensics.detectors.base import open_detector

    from igpt_forensics.splits import load_split

    torch.set_num_threads(args.threads)
    det = open_detector(args.detector)
    rows = []
    for folder in args.dataset:
        data = load_split(folder, args.split)
        kinds = np.array(data.kinds)
        real = det.localize(list(data.qreal))
        real_rules = {"own": [np.asarray(k, bool) for k in real.masks],
                      **{f"peak{a:g}": peak_masks(real.maps, a) for a in alphas}}
        for kind in [k for k in KINDS if (kinds == k).any()]:
            idx = np.flatnonzero(kinds == kind)
            truth = [np.asarray(data.masks[i], bool) for i in idx]
            loc = det.localize([data.fake[i] for i in idx])
            rules = {"own": [np.asarray(k, bool) for k in loc.masks],
                     **{f"peak{a:g}": peak_masks(loc.maps, a) for a in alphas}}
            for name, masks in rules.items():
                row = {"dataset": data.name, "fakes": kind, "n_fake": len(idx), "rule": name,
                       **rule_row(truth, loc.maps, masks),
                       "real_share": round(float(np.mean([np.mean(k) for k in
                                                          real_rules[name]])), 4)}
                rows.append(row)
                print(f"{data.name} [{kind}] {name}: F1 {row['f1']:.3f} IoU {row['iou']:.3f}, "
                      f"mask {row['mask_share']:.2f} of the image (true {row['true_share']:.2f}),"
                      f" reals {row['real_share']:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"detector": args.detector, "datasets": args.dataset, "split": args.split,
                       "alphas": alphas, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
