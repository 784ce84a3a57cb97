"""How to pool a cnn's evidence into one image score (issue 16: box completions are the weak
spot of the held-out pixel-GPTs): for each leave-one-generator-out cnn of `logo_pool.py`
(OUT/detectors/HELD/VARIANT) on its held-out generator's test split, image AUC against the
quantized reals per mask kind, for the image logit (what `score` reports), the region score
(the 3x3-smoothed pixel logits' maximum), the mean of the top 1%, 5% and 20% pixel logits,
and the image logit plus each of those (two logits of one network, summed). Every score uses
the image and its mirror, as ``tta="flip"`` does.

    .venv/bin/python benchmarks/logo_pooling.py --pool runs/logo-pool9.txt --out runs/logo-tta \\
        --variant flip --json benchmarks/results/logo-pooling.json
"""

from __future__ import annotations

import json

import numpy as np
from logo_pool import detector_args, held_out_kinds, read_pool

TOP = (0.01, 0.05, 0.2)


def main() -> None:
    args = detector_args(__doc__.splitlines()[0]).parse_args()

    import torch
    from sklearn.metrics import roc_auc_score
    from torch.nn import functional as F

    torch.set_num_threads(args.threads)

    def scores(det, images: np.ndarray) -> dict[str, np.ndarray]:
        net = det._net
        img, pix = det._forward_all(net, np.ascontiguousarray(images),
                                    next(net.parameters()).device, mirror=True)
        flat = np.sort(pix.reshape(len(pix), -1), axis=1)[:, ::-1].astype(np.float64)
        smooth = F.avg_pool2d(torch.from_numpy(pix)[:, None], 3, stride=1, padding=1,
                              count_include_pad=False)[:, 0].numpy()
        out = {"image": img, "region": smooth.reshape(len(pix), -1).max(1).astype(np.float64)}
        for t in TOP:
            k = max(1, int(round(t * flat.shape[1])))
            out[f"top{t:.0%}"] = flat[:, :k].mean(1)
        for name in [n for n in out if n != "image"]:
            out[f"image+{name}"] = img + out[name]
        return out

    rows = []
    for held, ds, kind, _, idx, q, f in held_out_kinds(read_pool(args.pool), args.out,
                                                        args.variant, scores):
        labels = np.r_[np.zeros(len(q["image"])), np.ones(len(idx))]
        row = {"held_out": held, "dataset": ds, "kind": kind, "n": len(idx),
               "image_auc": {k: round(float(roc_auc_score(labels, np.r_[q[k], f[k]])), 4)
                             for k in q}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = list(rows[0]["image_auc"]) if rows else []
    mean = {k: round(float(np.mean([r["image_auc"][k] for r in rows])), 4) for k in keys}
    box = {k: round(float(np.mean([r["image_auc"][k] for r in rows if r["kind"] == "box"])), 4)
           for k in keys}
    print("mean image AUC over (held-out dataset, kind):", json.dumps(mean))
    print("mean over boxes:", json.dumps(box))
    if args.json:
        args.json.write_text(json.dumps({"variant": args.variant, "pool": str(args.pool),
                                         "mean_image_auc": mean, "mean_box_auc": box,
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
