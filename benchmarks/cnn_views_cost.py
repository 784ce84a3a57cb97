"""What scoring with the mirror costs: the shipped cnn with ``tta="none"`` and ``tta="flip"``,
side by side in one process (same weights, same images, same batch), repetitions
alternating, medians; `score_and_localize` as `score` and `bench` call it.

    .venv/bin/python benchmarks/cnn_views_cost.py --threads 2 --json benchmarks/results/cnn-views-cost.json

Images: crops of the builtin photos (`real_views`: 64 of 32x32 in one call, 16 of 128x128,
2 of 512x512). Reported: seconds per call for each, images per second, and flip / none.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

SIZES = {32: 64, 128: 16, 512: 2}  # side -> images per call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from igpt_forensics.detectors import create_detector

    from igpt_forensics.data import ImageSource, real_views

    torch.set_num_threads(args.threads)
    views = real_views(ImageSource("builtin"), list(SIZES), per_photo=8, split="all")
    dets = {tta: create_detector("cnn", pretrained=True).set_params(tta=tta)
            for tta in ("none", "flip")}
    load0 = os.getloadavg()
    rows = []
    for side, n in SIZES.items():
        images = np.stack(views[side][:n])
        for det in dets.values():
            det.score_and_localize(images)  # warm up
        times: dict[str, list[float]] = {k: [] for k in dets}
        for r in range(args.reps):
            order = list(dets) if r % 2 == 0 else list(dets)[::-1]
            for k in order:
                t0 = time.perf_counter()
                dets[k].score_and_localize(images)
                times[k].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        row = {"side": side, "images": n, "seconds_none": round(med["none"], 4),
               "seconds_flip": round(med["flip"], 4),
               "images_per_s_none": round(n / med["none"], 2),
               "images_per_s_flip": round(n / med["flip"], 2),
               "flip_over_none": round(med["flip"] / med["none"], 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"threads": args.threads, "reps": args.reps, "cpu": platform.processor() or
           platform.machine(), "cpus": os.cpu_count(), "load_before": load0,
           "load_after": os.getloadavg(), "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
