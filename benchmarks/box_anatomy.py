"""Why box completions are the hard case for maps (issue 16; docs/results.md, "Nor do spliced
fakes"): on a dataset's test split, and with one cnn's relative maps,

- the share of each fake's synthesized pixels that have the very color its quantized real
  has there (by mask kind): pixels no map can tell by their color;
- the box fakes' pixel AUC image by image (quantiles), pooled, and by box size;
- the box fakes' image AUC against the quantized reals, by box size: is a box missed for
  being small?
- the mean relative map on each edge of the box (one pixel wide), inside it (two pixels in
  from every edge), and outside it.

    .venv/bin/python benchmarks/box_anatomy.py --dataset runs/pool2-data/px64 \\
        --detector runs/cpu-logo-ens4cpu/members-used/px64/rel --json box-anatomy.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--detector", required=True, help="a saved cnn (relative maps)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    import torch
    from igpt_forensics.detectors.base import load_detector
    from igpt_forensics.detectors.trained import load_arrays
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(args.threads)
    data = load_arrays(args.dataset, args.split)
    qreal = {name.removesuffix("-qreal"): k for k, name in enumerate(data.real_ids)
             if name.endswith("-qreal")}
    same: dict[str, list[float]] = {}
    for j, (name, mask, kind) in enumerate(zip(data.fake_ids, data.fake_masks,
                                               data.fake_kinds)):
        k = qreal.get(name.removesuffix("-fake"))
        if k is not None and mask.any():
            equal = (data.fake[j] == data.real[k]).all(-1) & mask
            same.setdefault(kind, []).append(float(equal.sum() / mask.sum()))

    boxes = [j for j, kind in enumerate(data.fake_kinds) if kind == "box"]
    masks = [data.fake_masks[j] for j in boxes]
    det = load_detector(args.detector, device="cpu")
    box_scores, (maps, _, _) = det._score_and_localize_arrays([data.fake[j] for j in boxes])
    per_image = np.array([roc_auc_score(m.ravel(), p.ravel()) for m, p in zip(masks, maps)])
    sizes = np.array([int(m.sum()) for m in masks])
    edges: dict[str, list[float]] = {k: [] for k in ("left", "right", "top", "bottom",
                                                      "inside", "outside")}
    for m, p in zip(masks, maps):
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        t, b, left, right = rows[0], rows[-1], cols[0], cols[-1]
        edges["left"].append(float(p[t:b + 1, left].mean()))
        edges["right"].append(float(p[t:b + 1, right].mean()))
        edges["top"].append(float(p[t, left:right + 1].mean()))
        edges["bottom"].append(float(p[b, left:right + 1].mean()))
        if b - t > 4 and right - left > 4:
            edges["inside"].append(float(p[t + 2:b - 1, left + 2:right - 1].mean()))
        edges["outside"].append(float(p[~m].mean()))
    thirds = np.quantile(sizes, [1 / 3, 2 / 3])
    by_third = [sizes <= thirds[0], (sizes > thirds[0]) & (sizes <= thirds[1]),
                sizes > thirds[1]]
    real_scores = np.asarray(det.score([data.real[k] for k in qreal.values()]))

    def image_auc(sel: np.ndarray) -> float | None:
        fake = box_scores[sel]
        if not len(fake):
            return None
        labels = np.r_[np.zeros(len(real_scores)), np.ones(len(fake))]
        return round(float(roc_auc_score(labels, np.r_[real_scores, fake])), 4)

    out = {
        "dataset": args.dataset, "detector": args.detector, "split": args.split,
        "synthesized_pixels_equal_to_the_quantized_real": {
            kind: {"mean": round(float(np.mean(v)), 4), "median": round(float(np.median(v)), 4),
                   "fakes": len(v)} for kind, v in sorted(same.items())},
        "box_maps": {
            "boxes": len(boxes),
            "pooled_pixel_auc": round(float(roc_auc_score(
                np.concatenate([m.ravel() for m in masks]),
                np.concatenate([p.ravel() for p in maps]))), 4),
            "per_image_pixel_auc_quantiles": {
                str(q): round(float(np.quantile(per_image, q)), 4)
                for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
            "per_image_pixel_auc_by_size_third": [
                round(float(per_image[sel].mean()), 4) if sel.any() else None
                for sel in by_third],
            "size_thirds_pixels": [int(sizes.min()), round(float(thirds[0]), 1),
                                   round(float(thirds[1]), 1), int(sizes.max())],
            "mean_relative_map": {k: round(float(np.mean(v)), 4) if v else None
                                  for k, v in edges.items()}},
        "box_image_auc": {"quantized_reals": len(real_scores), "all": image_auc(sizes > 0),
                          "by_size_third": [image_auc(sel) for sel in by_third]},
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
