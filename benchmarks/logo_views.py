"""Which views of an image to average when scoring (issue 16; docs/results.md, "Test-time
flips"): for each leave-one-generator-out cnn of `logo_pool.py` (OUT/detectors/HELD/VARIANT)
on its held-out generator's test split, image AUC against the quantized reals per mask kind
and pooled pixel AUC of the relative maps (each pixel logit minus its image's median) on the
partial fakes, for the image alone, averaged with its left-right mirror (what ``tta="flip"``
does), with a copy moved 4 pixels down and right (edge-padded; its map moved back), with both,
and with all eight of {0, 1, 2, 4 pixels} x {as is, mirrored}.

    .venv/bin/python benchmarks/logo_views.py --pool runs/logo-pool9.txt --out runs/logo \\
        --variant npr --json benchmarks/results/logo-views.json
"""

from __future__ import annotations

import json

import numpy as np
from logo_pool import detector_args, held_out_kinds, read_pool

SHIFTS = (0, 1, 2, 4)
VIEWS = {"one": [(0, False)], "flip": [(0, False), (0, True)],
         "shift 4": [(0, False), (4, False)],
         "flip + shift 4": [(0, False), (0, True), (4, False), (4, True)],
         "all 8": [(d, f) for d in SHIFTS for f in (False, True)]}


def main() -> None:
    args = detector_args(__doc__.splitlines()[0]).parse_args()

    import torch
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(args.threads)

    def view(det, images: np.ndarray, shift: int, mirror: bool):
        """Image and pixel logits of one view, the map brought back onto the image."""
        x = images[:, :, ::-1] if mirror else images
        h, w = x.shape[1:3]
        if shift:
            x = np.pad(x, ((0, 0), (shift, 0), (shift, 0), (0, 0)), mode="edge")[:, :h, :w]
        net = det._net
        img, pix = det._forward_all(net, np.ascontiguousarray(x), next(net.parameters()).device)
        if shift:
            pix = np.pad(pix, ((0, 0), (0, shift), (0, shift)), mode="edge")[:, shift:, shift:]
        return img, pix[:, :, ::-1] if mirror else pix

    def views(det, images: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        got = {(d, f): view(det, images, d, f) for d in SHIFTS for f in (False, True)}
        return {name: (np.mean([got[k][0] for k in keys], 0),
                       np.mean([got[k][1] for k in keys], 0)) for name, keys in VIEWS.items()}

    rows = []
    for held, ds, kind, test, idx, q, f in held_out_kinds(read_pool(args.pool), args.out,
                                                           args.variant, views):
        labels = np.r_[np.zeros(len(test.qreal)), np.ones(len(idx))]
        row: dict = {"held_out": held, "dataset": ds, "kind": kind, "n": len(idx),
                     "image_auc": {k: round(float(roc_auc_score(
                         labels, np.r_[q[k][0], f[k][0]])), 4) for k in VIEWS}}
        if kind != "full":
            y = np.stack([test.masks[i] for i in idx]).ravel()
            row["pixel_auc"] = {k: round(float(roc_auc_score(y, (
                p - np.median(p, axis=(1, 2), keepdims=True)).ravel())), 4)
                for k, (_, p) in f.items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = {k: round(float(np.mean([r["image_auc"][k] for r in rows])), 4) for k in VIEWS}
    print("mean image AUC over (held-out dataset, kind):", json.dumps(mean))
    if args.json:
        args.json.write_text(json.dumps({"variant": args.variant, "pool": str(args.pool),
                                         "views": {k: [list(v) for v in keys]
                                                   for k, keys in VIEWS.items()},
                                         "mean_image_auc": mean, "rows": rows},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
