"""Would a second map member help? Maps of several detectors averaged pixel by pixel, paired
against others on the same partial fakes (issue 16; docs/results.md, "Full-resolution context
layers"). Each side of ``--pair A,B`` is one detector or several joined by ``+`` (their maps
averaged, as a fusion with those map members of equal weight draws them); each pair is
reported per partial mask kind as both sides' pooled pixel AUC and their difference with a
paired bootstrap over images (`metrics.paired_pixel_auc_difference`). No perturbation: the
test split as it is.

    .venv/bin/python benchmarks/map_pairs.py --dataset runs/pool3-data/px32 \\
        --pair fusion+runs/ctx/maps-c3,fusion --pair fusion+runs/ctx/maps-c3,fusion+runs/ctx/maps-c0-s1 \\
        --json map-pairs.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def averaged(maps: dict[str, list[np.ndarray]], spec: str) -> list[np.ndarray]:
    """Image by image, the mean of the maps of the detectors named in ``spec`` ("A+B")."""
    parts = [maps[name] for name in spec.split("+")]
    return [np.mean([np.asarray(p[i], np.float64) for p in parts], axis=0)
            for i in range(len(parts[0]))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", required=True, help="repeat")
    ap.add_argument("--pair", action="append", required=True,
                    help="A,B: each one detector or several joined by + (maps averaged); repeat")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the rows here too")
    args = ap.parse_args()
    pairs = [tuple(p.split(",")) for p in args.pair]
    if any(len(p) != 2 for p in pairs):
        ap.error("--pair takes two sides: A,B")

    import torch
    from igpt_forensics.detectors.base import open_detector

    from igpt_forensics.bench import PARTIAL_KINDS
    from igpt_forensics.metrics import paired_pixel_auc_difference, pixel_metrics
    from igpt_forensics.splits import load_split

    torch.set_num_threads(args.threads)
    names = list(dict.fromkeys(n for p in pairs for side in p for n in side.split("+")))
    detectors = {name: open_detector(name) for name in names}
    rows = []
    for folder in args.dataset:
        data = load_split(folder, args.split)
        kinds = np.array(data.kinds)
        # partial fakes only: a whole-image fake (full, recon) has no real pixel to rank
        for kind in sorted(set(data.kinds) & set(PARTIAL_KINDS)):
            idx = np.flatnonzero(kinds == kind)
            fakes = [data.fake[i] for i in idx]
            masks = [data.masks[i] for i in idx]
            maps = {name: det.localize(fakes).maps for name, det in detectors.items()}
            for a, b in pairs:
                ma, mb = averaged(maps, a), averaged(maps, b)
                diff, lo, hi = paired_pixel_auc_difference(masks, ma, mb, args.bootstrap,
                                                           args.seed)
                rows.append({"dataset": data.name, "fakes": kind, "n_fake": len(idx), "a": a,
                             "b": b, "pixel_auc_a": round(pixel_metrics(masks, ma)["pixel_auc"], 4),
                             "pixel_auc_b": round(pixel_metrics(masks, mb)["pixel_auc"], 4),
                             "a_minus_b": round(diff, 4), "lo": round(lo, 4), "hi": round(hi, 4)})
                r = rows[-1]
                print(f"{data.name} [{kind} maps] {a} ({r['pixel_auc_a']:.3f}) - {b} "
                      f"({r['pixel_auc_b']:.3f}): {diff:+.4f} [{lo:+.4f}, {hi:+.4f}]", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"datasets": args.dataset, "split": args.split, "seed": args.seed,
                       "bootstrap": args.bootstrap, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
