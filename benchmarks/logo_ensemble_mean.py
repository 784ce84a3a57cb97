"""How many like members to average (issue 16; docs/results.md, "Three cnns trained apart"):
for each held-out generator group, leave-one-generator-out cnns of several trainings and
shapes are each standardized on the val splits (real, quantized real and fake images) of the
generators they trained on, then averaged in combinations (`LinearModel.mean_of`, what
``fusion --combine mean`` computes, without the fusion's files); image AUC on the held-out
test split against its quantized reals, per member and per combination.

    .venv/bin/python benchmarks/logo_ensemble_mean.py --pool runs/logo-pool9.txt \\
        --member gpu=runs/cpu-logo-ens3/members-src/{held}/gpu \\
        --member npr=runs/cpu-logo-ens3/members-src/{held}/npr \\
        --member s1=runs/cpu-logo/detectors/{held}/s1 --member s4=runs/cpu-logo/detectors/{held}/s4 \\
        --combo gpu+npr+s1 --combo gpu+npr+s1+s4 --held px128,px256d,px64,t1 \\
        --json benchmarks/results/logo-ensemble-mean.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from logo_pool import groups, read_pool


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=Path, required=True)
    ap.add_argument("--member", action="append", required=True,
                    help="NAME=FOLDER, {held} standing for the held-out group")
    ap.add_argument("--combo", action="append", required=True, help="NAME+NAME+...")
    ap.add_argument("--held", required=True, help="held-out groups, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch
    from igpt_forensics.detectors.base import load_detector
    from igpt_forensics.detectors.linear import LinearModel
    from sklearn.metrics import roc_auc_score

    from igpt_forensics.splits import load_split

    torch.set_num_threads(args.threads)
    pool = read_pool(args.pool)
    gs = groups(pool)
    where = dict(m.split("=", 1) for m in args.member)
    rows = {}
    for held in args.held.split(","):
        dets = {m: load_detector(p.format(held=held)) for m, p in where.items()}
        val = [load_split(pool[n], "val") for n in pool if n not in gs[held]]
        images = [im for v in val for im in [*v.real, *v.qreal, *v.fake]]
        fit = {m: d.score(images) for m, d in dets.items()}
        for ds in gs[held]:
            test = load_split(pool[ds], "test")
            x = [*test.qreal, *test.fake]
            y = np.r_[np.zeros(len(test.qreal)), np.ones(len(test.fake))]
            scores = {m: d.score(x) for m, d in dets.items()}
            row = {m: roc_auc_score(y, v) for m, v in scores.items()}
            for combo in args.combo:  # what `fusion --combine mean` computes
                names = combo.split("+")
                mean = LinearModel.mean_of(np.stack([fit[m] for m in names], 1), names)
                row[combo] = roc_auc_score(y, mean.decision(np.stack([scores[m] for m in names],
                                                                     1)))
            rows[ds] = {k: round(float(v), 4) for k, v in row.items()}
            print(ds, json.dumps(rows[ds]), flush=True)
    mean = {k: round(float(np.mean([r[k] for r in rows.values()])), 4)
            for k in next(iter(rows.values()))}
    print("mean", json.dumps(mean))
    if args.json:
        args.json.write_text(json.dumps({"members": where, "held_out": args.held,
                                         "mean_auc": mean, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
