"""Time detectors side by side: score, and score with maps, on the same real photo crops.

Each repetition runs every detector in turn on the same images (the order rotating), so a
load that comes and goes on a shared machine hits all of them alike; each reports its median
and the ratio to the first. ``uptime``'s load average is recorded before and after.

    .venv/bin/python benchmarks/detector_speed.py --detector fusion --detector DIR \\
        --sides 32,256 --batch 16,1 --repeats 5 --json benchmarks/results/speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere in a checkout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", action="append", required=True, help="repeat; the first is "
                    "the reference of the ratios")
    ap.add_argument("--sides", default="32,256", help="image sides, comma-separated")
    ap.add_argument("--batch", default="16,1", help="images per call at each side")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    sides = [int(s) for s in args.sides.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    if len(sides) != len(batches) or args.repeats < 1:
        ap.error("--sides and --batch need as many values, --repeats at least 1")

    import torch

    torch.set_num_threads(args.threads)
    from igpt_forensics.detectors.base import open_detector

    from igpt_forensics.data import ImageSource, real_views

    names = list(dict.fromkeys(args.detector))
    detectors = {n: open_detector(n) for n in names}
    source = ImageSource("builtin")
    load_before = os.getloadavg()
    rows = []
    for side, batch in zip(sides, batches):
        images = real_views(source, [side], batch, seed=0, split="test")[side][:batch]
        for what in ("score", "score_and_localize"):
            for det in detectors.values():  # warm-up: model loading, first-call allocations
                getattr(det, what)(images)
            times = {n: [] for n in names}
            for rep in range(args.repeats):
                for n in names[rep % len(names):] + names[:rep % len(names)]:
                    t0 = time.perf_counter()
                    getattr(detectors[n], what)(images)
                    times[n].append(time.perf_counter() - t0)
            ref = statistics.median(times[names[0]])
            for n in names:
                med = statistics.median(times[n])
                rows.append({"detector": n, "call": what, "side": side, "images": len(images),
                             "median_s": round(med, 4), "per_image_s": round(med / len(images), 4),
                             "ratio_to_first": round(med / ref, 3)})
                print(f"{side}px x{len(images)} {what:<19} {n}: {med:.3f} s "
                      f"({med / ref:.2f}x the first)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({
            "what": __doc__.splitlines()[0], "detectors": names, "repeats": args.repeats,
            "threads": args.threads, "cpus": os.cpu_count(), "machine": platform.machine(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()], "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
