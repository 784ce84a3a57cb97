"""The web page (``serve``): time to score a 256x256 photo through the HTTP API, per detector,
on a real uvicorn server; then a screenshot of the page in headless Chromium (docs/).

Target (issue 20): a 256x256 suspect image scored and shown in under 2 s on 2 CPU cores.

    .venv/bin/python benchmarks/web_page.py [--threads 2] [--repeats 5]

Writes benchmarks/results/web-page.json and docs/web-page.png (when Chromium is installed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/web-page.json")
    ap.add_argument("--screenshot", type=Path, default=ROOT / "docs/web-page.png")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import httpx
    import uvicorn

    from igpt_forensics.data import BUILTIN_PHOTOS, _pkg_file, fit_square, load_image
    from igpt_forensics.viz import png_bytes
    from igpt_forensics.web import create_app

    photo = png_bytes(fit_square(load_image(_pkg_file(*BUILTIN_PHOTOS["flower"])), 256))
    t0 = time.perf_counter()
    app = create_app(preload=True)
    open_s = time.perf_counter() - t0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    rows = []
    with httpx.Client(base_url=url, timeout=120) as client:
        names = [d["name"] for d in client.get("/api/detectors").json()["detectors"]]
        for name in names:
            walls, inside = [], []
            for _ in range(args.repeats + 1):  # the first is a warm-up
                t = time.perf_counter()
                r = client.post("/score", params={"detector": name}, content=photo,
                                headers={"content-type": "image/png"})
                walls.append(time.perf_counter() - t)
                r.raise_for_status()
                inside.append(r.json()["seconds"])
            res = r.json()
            rows.append({"detector": name, "image": "flower 256x256 (a real test photo)",
                         "median_request_s": round(statistics.median(walls[1:]), 3),
                         "max_request_s": round(max(walls[1:]), 3),
                         "median_scoring_s": round(statistics.median(inside[1:]), 3),
                         "first_request_s": round(walls[0], 3), "verdict": res["verdict"],
                         "score": round(res["score"], 3)})
            print(rows[-1])
    shot = None
    if shutil.which("chromium"):
        with tempfile.TemporaryDirectory() as profile:
            t = time.perf_counter()
            subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                            f"--user-data-dir={profile}", "--hide-scrollbars",
                            "--window-size=1100,1000", "--virtual-time-budget=15000",
                            f"--screenshot={args.screenshot}",
                            f"{url}/?example=completion"], check=True, capture_output=True,
                           timeout=180)
            shot = {"path": str(args.screenshot.relative_to(ROOT)),
                    "seconds": round(time.perf_counter() - t, 2)}
    server.should_exit = True
    thread.join(10)
    doc = {"what": "POST /score of one 256x256 PNG on a local uvicorn server (request wall "
                   "time, after one warm-up), per shipped detector",
           "threads": args.threads, "cpus": os.cpu_count(), "machine": platform.processor()
           or platform.machine(), "open_detectors_s": round(open_s, 2), "rows": rows,
           "target_s": 2.0, "screenshot": shot}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}" + (f" and {shot['path']}" if shot else ""))


if __name__ == "__main__":
    main()
