"""Is detector A better than detector B on the same images? (issue 16; docs/results.md, "More
photos"): each detector scores a dataset's test split once per perturbation (the quantized
reals and the fakes, both classes perturbed alike, each image seeded by its place), and each
pair is reported as AUC(A) - AUC(B) with a paired bootstrap interval
(`igpt_forensics.metrics.paired_auc_difference`: each resample draws the same images for
both), over all fakes and per mask kind; with ``--maps``, also the pooled pixel AUC of their
maps on the partial fakes (`metrics.paired_pixel_auc_difference`, images resampled). Two
detectors' own intervals overlap long after a paired one clears 0: what they share, the hard
and easy images, cancels out of the pair.
The interval is over images, not over trainings: a second seed of each recipe is still the
test of a training recipe.

    .venv/bin/python benchmarks/paired_detectors.py --dataset runs/pool4-data/px48 \\
        --pair runs/deb/cnn,runs/deg/clean-native --perturb none,blur1 --json paired.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", required=True, help="repeat")
    ap.add_argument("--pair", action="append", required=True,
                    help="A,B: two detectors (a folder or a shipped name); repeat")
    ap.add_argument("--perturb", default="none")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--maps", action="store_true",
                    help="also each pair's pooled pixel AUC on the partial fakes, per mask "
                         "kind, with a paired bootstrap over images")
    ap.add_argument("--json", help="write the rows here too")
    args = ap.parse_args()
    pairs = [tuple(p.split(",")) for p in args.pair]
    if any(len(p) != 2 for p in pairs):
        ap.error("--pair takes two detectors: A,B")

    import torch
    from igpt_forensics.detectors.base import open_detector

    from igpt_forensics.bench import PARTIAL_KINDS, perturb_all
    from igpt_forensics.metrics import paired_auc_difference, paired_pixel_auc_difference
    from igpt_forensics.splits import load_split

    torch.set_num_threads(args.threads)
    names = list(dict.fromkeys(name for p in pairs for name in p))
    detectors = {name: open_detector(name) for name in names}
    rows = []
    for folder in args.dataset:
        data = load_split(folder, args.split)
        n_real = len(data.qreal)
        ids = [f"q{i}" for i in range(n_real)] + [f"f{i}" for i in range(len(data.fake))]
        kinds = np.array(data.kinds)
        for spec in args.perturb.split(","):
            images, masks = perturb_all(list(data.qreal) + list(data.fake), ids, spec,
                                        args.seed, [None] * n_real + list(data.masks))
            scores, maps = {}, {}
            for name, det in detectors.items():
                if args.maps and hasattr(det, "score_and_localize"):  # one pass, as bench
                    s, loc = det.score_and_localize(images)
                    maps[name] = loc.maps
                else:  # an outside detector may have score and localize apart
                    s = det.score(images)
                    if args.maps:
                        maps[name] = det.localize(images).maps
                scores[name] = np.asarray(s)
            for a, b in pairs:
                for kind in ["all", *sorted(set(kinds))]:
                    keep = np.r_[np.ones(n_real, bool), (kinds == kind) | (kind == "all")]
                    labels = np.r_[np.zeros(n_real), np.ones(int(keep[n_real:].sum()))]
                    diff, lo, hi = paired_auc_difference(
                        labels, scores[a][keep], scores[b][keep], args.bootstrap, args.seed)
                    rows.append({"dataset": data.name, "perturbation": spec, "a": a, "b": b,
                                 "fakes": kind, "n_real": n_real, "n_fake": len(labels) - n_real,
                                 "auc_a_minus_b": round(diff, 4), "lo": round(lo, 4),
                                 "hi": round(hi, 4)})
                    print(f"{data.name} {spec} [{kind}] {a} - {b}: {diff:+.4f} "
                          f"[{lo:+.4f}, {hi:+.4f}]", flush=True)
                # partial fakes only: a whole-image fake (full, recon) has no real pixel
                for kind in sorted(set(kinds) & set(PARTIAL_KINDS)) if args.maps else []:
                    idx = [n_real + i for i in np.flatnonzero(kinds == kind)]
                    diff, lo, hi = paired_pixel_auc_difference(
                        [masks[i] for i in idx], [maps[a][i] for i in idx],
                        [maps[b][i] for i in idx], args.bootstrap, args.seed)
                    rows.append({"dataset": data.name, "perturbation": spec, "a": a, "b": b,
                                 "fakes": kind, "level": "pixel", "n_fake": len(idx),
                                 "pixel_auc_a_minus_b": round(diff, 4), "lo": round(lo, 4),
                                 "hi": round(hi, 4)})
                    print(f"{data.name} {spec} [{kind} maps] {a} - {b}: {diff:+.4f} "
                          f"[{lo:+.4f}, {hi:+.4f}]", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"datasets": args.dataset, "split": args.split, "seed": args.seed,
                       "bootstrap": args.bootstrap, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
