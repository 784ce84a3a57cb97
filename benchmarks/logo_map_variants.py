"""Where pooled pixel AUC is lost, and what the map's pixels say about the image (issue 16;
docs/results.md, "Maps against each image's median").

For each leave-one-generator-out cnn of `logo_pool.py` (OUT/detectors/HELD/VARIANT) on its
held-out generator's test split, from one forward pass of the network:

- maps: pooled pixel AUC on the partial fakes (top-half, box) of the pixel logits as they are,
  smoothed over k x k windows, minus each image's median or mean, z-scored within the image,
  and minus the median plus a multiple of the image logit;
- image scores against the held-out generator's quantized reals, per mask kind: the image
  logit, the strongest 3x3-averaged pixel logit (the region score), that minus the image's
  median, the pixel logits' spread, and the image logit plus each (z-scored on the reals).

    .venv/bin/python benchmarks/logo_map_variants.py --pool runs/logo-pool9.txt --out runs/logo \\
        --json benchmarks/results/logo-map-variants.json
"""

from __future__ import annotations

import json

import numpy as np
from logo_pool import detector_args, held_out_detectors, read_pool


def main() -> None:
    args = detector_args(__doc__.splitlines()[0]).parse_args()

    import torch
    import torch.nn.functional as F
    from sklearn.metrics import roc_auc_score

    from igpt_forensics.splits import load_split

    torch.set_num_threads(args.threads)

    def logits(det, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        net = det._net
        return det._forward_all(net, images, next(net.parameters()).device)

    def smooth(pix: np.ndarray, k: int) -> np.ndarray:
        t = torch.from_numpy(pix.astype(np.float64))[:, None]
        t = F.avg_pool2d(F.pad(t, (k // 2,) * 4, mode="replicate"), k, 1) if k > 1 else t
        return t[:, 0].numpy()

    def image_feats(img: np.ndarray, pix: np.ndarray) -> dict[str, np.ndarray]:
        flat = F.avg_pool2d(torch.from_numpy(pix)[:, None], 3, 1, 1,
                            count_include_pad=False)[:, 0].numpy().reshape(len(pix), -1)
        med = np.median(pix.reshape(len(pix), -1), axis=1)
        return {"image": img, "region": flat.max(1), "region - median": flat.max(1) - med,
                "spread": pix.reshape(len(pix), -1).std(1)}

    pool = read_pool(args.pool)
    rows = []
    for held, names, det in held_out_detectors(pool, args.out, args.variant):
        for ds in names:
            test = load_split(pool[ds], "test")
            q = image_feats(*logits(det, np.stack(test.qreal)))
            for kind in ("top-half", "box", "full"):
                idx = [i for i, k in enumerate(test.kinds) if k == kind]
                if not idx:
                    continue
                img, pix = logits(det, np.stack([test.fake[i] for i in idx]))
                row: dict = {"held_out": held, "dataset": ds, "kind": kind, "n": len(idx)}
                if kind != "full":
                    y = np.stack([test.masks[i] for i in idx]).ravel()
                    med = np.median(pix, axis=(1, 2), keepdims=True)
                    maps = {f"smooth {k}": smooth(pix, k) for k in (1, 3, 5, 9, 15)}
                    maps["minus median"] = pix - med
                    maps["minus mean"] = pix - pix.mean(axis=(1, 2), keepdims=True)
                    maps["z in image"] = (pix - med) / (pix.std(axis=(1, 2), keepdims=True)
                                                        + 1e-6)
                    for a in (0.1, 0.3, 1.0):
                        maps[f"minus median + {a} image"] = pix - med + a * img[:, None, None]
                    row["pixel_auc"] = {k: round(float(roc_auc_score(y, m.ravel())), 4)
                                        for k, m in maps.items()}
                f = image_feats(img, pix)
                labels = np.r_[np.zeros(len(q["image"])), np.ones(len(idx))]
                both = {k: np.r_[q[k], f[k]] for k in q}
                z = {k: (v - q[k].mean()) / (q[k].std() + 1e-12) for k, v in both.items()}
                scores = {**both, **{f"image + {k}": z["image"] + z[k]
                                     for k in ("region - median", "spread")}}
                row["image_auc"] = {k: round(float(roc_auc_score(labels, s)), 4)
                                    for k, s in scores.items()}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"variant": args.variant, "pool": str(args.pool),
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
