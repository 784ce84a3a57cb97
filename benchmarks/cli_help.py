"""How long ``igpt-forensics --help`` and each command's ``--help`` take, beside the peer:
importing torch and scikit-learn, which a command's help cost before its module imported them
only when the command runs (every help then took 2-5 s on 2 cores).

    python benchmarks/cli_help.py [--runs 5] [--json out.json]

Each is a fresh Python process, run ``--runs`` times in turn (interleaved, so load on the
machine hits all alike); the median wall-clock seconds of each are reported, and the slowest
command's help against the one-second target of issue 18.
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
COMMANDS = ("score", "generate", "train-generator", "complete", "bench", "train-detector",
            "verify", "calibrate", "serve", "info")
CASES = {
    "igpt-forensics --help": [sys.executable, "-m", "igpt_forensics", "--help"],
    **{f"igpt-forensics {c} --help": [sys.executable, "-m", "igpt_forensics", c, "--help"]
       for c in COMMANDS},
    "peer: import torch and sklearn.metrics": [
        sys.executable, "-c", "import torch, sklearn.metrics"],
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
    med = out["median_seconds"]
    commands = {k: v for k, v in med.items() if k.endswith(" --help") and k.count(" ") == 2}
    slowest = max(commands, key=commands.get)
    peer = med["peer: import torch and sklearn.metrics"]
    out["slowest_command_help"] = {"case": slowest, "seconds": commands[slowest],
                                   "under_one_second": commands[slowest] < 1.0}
    print(f"slowest command help: {slowest} {commands[slowest]:.2f} s "
          f"({'under' if commands[slowest] < 1.0 else 'OVER'} 1 s); importing torch and "
          f"sklearn alone takes {peer:.2f} s ({peer / commands[slowest]:.1f}x)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
