"""Does a detector's threshold hold on the real images of a palette generator it never saw?
(issue 16: "a threshold that transfers"; docs/results.md.)

For each leave-one-generator-out detector of `logo_pool.py` (OUT/detectors/HELD/VARIANT), the
thresholds at 1% of real images from the validation reals of its own training datasets,
calibrated three ways:

- ``saved``: the detector's own ``threshold_`` (its val reals and their palette twins);
- ``real+qreal+palettes``: the same val reals plus every one through palettes of 16-256 colors
  fitted on them (`detectors.cnn.fit_palettes`, what ``calibrate`` now adds);
- ``max per form``: the largest of the three forms' own thresholds.

Then on the held-out generator's test split: the share of its reals and of its quantized reals
(through *its* palette, never seen) flagged, and of its fakes caught.

    .venv/bin/python benchmarks/logo_thresholds.py --pool runs/logo-pool9.txt --out runs/logo \\
        --json benchmarks/results/logo-thresholds.json
"""

from __future__ import annotations

import json

import numpy as np
from logo_pool import detector_args, held_out_detectors, read_pool


def quantile(scores: np.ndarray, fpr: float = 0.01) -> float:
    return float(np.quantile(scores, 1.0 - fpr, method="higher"))


def main() -> None:
    args = detector_args(__doc__.splitlines()[0]).parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from igpt_forensics.detectors.cnn import fit_palettes

    from igpt_forensics.splits import load_split

    pool = read_pool(args.pool)
    rows = []
    for held, names, det in held_out_detectors(pool, args.out, args.variant):
        train = [n for n in pool if n not in names]
        vals = [load_split(pool[n], "val") for n in train]
        val_real = np.concatenate([np.stack(v.real) for v in vals])
        val_q = np.concatenate([np.stack(v.qreal) for v in vals])
        views = np.concatenate([p.quantize(val_real) for p in fit_palettes(val_real, seed=0)])
        s_r, s_q, s_v = det.score(val_real), det.score(val_q), det.score(views)
        thresholds = {"saved": float(det.threshold_),
                      "real+qreal+palettes": quantile(np.r_[s_r, s_q, s_v]),
                      "max per form": max(quantile(s_r), quantile(s_q), quantile(s_v))}
        for ds in names:
            test = load_split(pool[ds], "test")
            t_r, t_q, t_f = (det.score(np.stack(x)) for x in (test.real, test.qreal, test.fake))
            for how, t in thresholds.items():
                rows.append({"held_out": held, "dataset": ds, "threshold_from": how,
                             "threshold": t, "fpr_real": float(np.mean(t_r > t)),
                             "fpr_qreal": float(np.mean(t_q > t)),
                             "tpr": float(np.mean(t_f > t)),
                             "n_real": len(t_r), "n_fake": len(t_f)})
                print({k: round(v, 3) if isinstance(v, float) else v
                       for k, v in rows[-1].items()}, flush=True)
    summary = {}
    for how in ("saved", "real+qreal+palettes", "max per form"):
        sel = [r for r in rows if r["threshold_from"] == how]
        summary[how] = {k: [round(min(r[k] for r in sel), 3), round(max(r[k] for r in sel), 3)]
                        for k in ("fpr_real", "fpr_qreal", "tpr")}
        summary[how]["mean_fpr_qreal"] = round(float(np.mean([r["fpr_qreal"] for r in sel])), 4)
        summary[how]["mean_tpr"] = round(float(np.mean([r["tpr"] for r in sel])), 4)
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"variant": args.variant, "pool": str(args.pool),
                                         "summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
