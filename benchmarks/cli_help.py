"""How long ``igpt-forensics --help`` takes, beside its peer: importing every command module,
which is what the root's help cost before the commands were loaded lazily.

    python benchmarks/cli_help.py [--runs 5] [--json out.json]

Each is a fresh Python process, run ``--runs`` times in turn (interleaved, so load on the
machine hits both alike); the median wall-clock seconds of each are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("core_cmds", "generator_cmds", "dataset_cmds", "score_cmds", "bench_cmds",
           "train_detector_cmds", "verify_cmds", "palette_cmds", "data_cmds")
CASES = {
    "igpt-forensics --help": [sys.executable, "-m", "igpt_forensics", "--help"],
    "peer: import every command module": [
        sys.executable, "-c", "import importlib; [importlib.import_module("
        f"'igpt_forensics.cli.' + m) for m in {MODULES!r}]"],
}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, cmd in CASES.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    out = {"runs": args.runs, "cpus": os.cpu_count(), "load_average": os.getloadavg(),
           "median_seconds": {k: statistics.median(v) for k, v in times.items()},
           "seconds": times}
    for name, sec in out["median_seconds"].items():
        print(f"{name:36s} {sec:6.2f} s (median of {args.runs})")
    help_s, peer_s = out["median_seconds"].values()
    print(f"--help takes {help_s / peer_s:.2f}x the time of importing the commands")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
