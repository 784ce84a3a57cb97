"""What a C2PA manifest costs a generated image: signing and reading time per 32x32 fake,
and the file size with and without it, beside writing the same stamped PNG (the peer: the
work `generate` does per fake anyway). A throwaway certificate chain signs (ES256).

    .venv/bin/python benchmarks/c2pa_cost.py [--n 200]

Writes benchmarks/results/c2pa-cost.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from igpt_forensics import stamp  # noqa: E402
from igpt_forensics.credentials import Credentials, read, throwaway_chain  # noqa: E402
from igpt_forensics.data import load_image  # noqa: E402
from igpt_forensics.viz import png_bytes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/c2pa-cost.json")
    args = ap.parse_args()
    from skimage import data as skd

    photo = skd.astronaut()  # 32x32 crops of a real photo: sizes like a dataset's
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(args.n):
        t, left = rng.integers(0, photo.shape[0] - 32, 2)
        crops.append(np.ascontiguousarray(photo[t:t + 32, left:left + 32]))
    mask = np.zeros((32, 32), bool)
    mask[16:] = True
    with tempfile.TemporaryDirectory() as d:
        creds = Credentials.from_files(*throwaway_chain(d)[:2])
    t0 = time.perf_counter()
    stamped = [stamp.stamped_png(c, {"id": str(i)}) for i, c in enumerate(crops)]
    t_stamp = (time.perf_counter() - t0) / args.n
    parents = [png_bytes(c) for c in crops]
    t0 = time.perf_counter()
    signed = [creds.sign_png(s, title=f"{i}.png", agent={"name": "pixel-gpt"}, parent=p,
                             mask=mask) for i, (s, p) in enumerate(zip(stamped, parents))]
    t_sign = (time.perf_counter() - t0) / args.n
    t0 = time.perf_counter()
    reports = [read(s) for s in signed]
    t_read = (time.perf_counter() - t0) / args.n
    t0 = time.perf_counter()
    for s in signed:
        load_image(s)
    t_decode = (time.perf_counter() - t0) / args.n
    assert all(r.status == "valid" for r in reports)
    res = {"n": args.n, "image": "32x32 crops of skimage astronaut, top half synthesized mask",
           "alg": creds.alg,
           "stamped_png_ms": round(t_stamp * 1e3, 3), "sign_ms": round(t_sign * 1e3, 3),
           "read_ms": round(t_read * 1e3, 3), "decode_ms": round(t_decode * 1e3, 3),
           "sign_vs_stamp": round(t_sign / t_stamp, 1),
           "bytes_stamped": float(np.mean([len(s) for s in stamped])),
           "bytes_signed": float(np.mean([len(s) for s in signed])),
           "machine": {"cpu": platform.processor() or platform.machine(),
                       "python": platform.python_version()}}
    res["size_ratio"] = round(res["bytes_signed"] / res["bytes_stamped"], 2)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
