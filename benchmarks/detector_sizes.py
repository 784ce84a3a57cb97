"""False alarms of a detector on real photos by image size, and what it catches at its
thresholds on 32x32 test items (docs/results.md, "The shipped cnn").

Real side: `real_views` crops of the *test* photos (builtin + Debian list) at sides 32 to
1024, as photographed, through the bundled palette (qreal), and through palettes of 24, 48,
96 and 200 colors fitted on the test crops of that side, in turn (palettes: sizes that
`calibrate` never fits, so a threshold that holds there holds beyond its calibration). Fake side: the test split of
each dataset given (its reals, quantized reals and fakes), the share of each flagged (verdict
synthetic or region).

    .venv/bin/python benchmarks/detector_sizes.py --detector cnn --dataset studies/runs/default-study/t1 \
        --dataset runs/unseen/vqb --json benchmarks/results/cnn-sizes.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

UNSEEN_PALETTES = (24, 48, 96, 200)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default="cnn")
    ap.add_argument("--dataset", action="append", default=[])
    ap.add_argument("--sides", default="32,64,128,256,512,1024")
    ap.add_argument("--per-photo", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from igpt_forensics.detectors.base import judge, open_detector
    from igpt_forensics.detectors.cnn import palette_views
    from igpt_forensics.generators.checkpoint import generator_palette

    from igpt_forensics.data import ImageSource, real_views
    from igpt_forensics.palette import Palette
    from igpt_forensics.provenance import read_rows, split_rows

    det = open_detector(args.detector)
    palette = generator_palette()
    source = ImageSource(["builtin", "data/debian-photos.tsv"])
    sides = [int(s) for s in args.sides.split(",")]
    views = real_views(source, sides, args.per_photo, seed=1, split="test")
    real_rows = []
    for side, images in views.items():
        unseen = [Palette.fit(np.stack(images), k, seed=1, max_pixels=50_000)
                  for k in UNSEEN_PALETTES]
        for form in ("photo", "qreal", "palettes"):
            xs = (images if form == "photo" else palette_views(images, unseen)
                  if form == "palettes" else [palette.quantize(i[None])[0] for i in images])
            verdicts = np.array([r["verdict"] for r in judge(det, xs)[0]])
            real_rows.append({"side": side, "form": form, "n": len(xs),
                              "image_fpr": float(np.mean(verdicts == "synthetic")),
                              "flagged": float(np.mean(verdicts != "real"))})
            print(real_rows[-1], flush=True)
    set_rows = []
    for ds in args.dataset:
        groups: dict[str, list] = {}
        for row, image, _ in read_rows(ds, split_rows(ds, "test"), verify=True):
            kind = "fake" if row["label"] == "fake" else row.get("form", "real")
            groups.setdefault(kind, []).append(image)
        for kind, images in groups.items():
            verdicts = np.array([r["verdict"] for r in judge(det, images)[0]])
            set_rows.append({"dataset": ds, "kind": kind, "n": len(images),
                             "flagged": float(np.mean(verdicts != "real"))})
            print(set_rows[-1], flush=True)
    doc = {"detector": args.detector, "threshold": det.threshold_,
           "size_calibration": getattr(det, "size_calibration_", None),
           "real_test_crops": real_rows, "test_items": set_rows}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
