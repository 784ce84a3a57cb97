"""A short sweep of pixel-GPT training settings, judged on held-out bits/dim at equal time.

    .venv/bin/python benchmarks/generator_sweep.py --data builtin --seconds 360 \\
        --run mini:lr=3e-3 --run small:lr=2e-3 --out runs/sweep.json

Each ``--run PRESET[:key=value,...]`` trains from scratch (keys: lr, batch_size, warmup,
n_layer, n_head, n_embd, precision) for ``--seconds`` of wall-clock time (the cosine schedule
is sized from a measured step time so that it ends on time), then scores the held-out patches.
Runs go one after another at ``--threads`` torch threads, so they are compared like for like
on an otherwise idle machine; the JSON holds every run's learning curve.

Short runs favour small models and high learning rates: read the result as "which settings
learn fastest per CPU second at this budget", and extrapolate to hours with that in mind.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere in a checkout

from igpt_forensics.generators.config import GPTConfig, TrainConfig  # noqa: E402
from igpt_forensics.generators.train import train_generator  # noqa: E402

TRAIN_KEYS = {"lr": float, "batch_size": int, "warmup": int, "precision": str}
MODEL_KEYS = {f: int for f in ("n_layer", "n_head", "n_embd")}


def parse_run(text: str) -> tuple[str, dict, dict]:
    preset, _, rest = text.partition(":")
    train, model = {}, {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key in TRAIN_KEYS:
            train[key] = TRAIN_KEYS[key](value)
        elif key in MODEL_KEYS:
            model[key] = MODEL_KEYS[key](value)
        else:
            raise SystemExit(f"--run {text}: unknown key {key!r}")
    return preset, train, model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", default=None)
    ap.add_argument("--run", action="append", required=True)
    ap.add_argument("--seconds", type=float, default=360)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-patches", type=int, default=20000)
    ap.add_argument("--eval-patches", type=int, default=256)
    ap.add_argument("--palette", default=None, help="a palette JSON shared by every run")
    ap.add_argument("--out", type=Path, default=Path("runs/generator-sweep.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = args.data or ["builtin"]
    data = data[0] if len(data) == 1 else data
    results = []
    for text in args.run:
        preset, train, model = parse_run(text)
        base = TrainConfig(data=data, preset=preset, train_patches=args.train_patches,
                           eval_patches=args.eval_patches, palette=args.palette,
                           overrides=model, **train)
        # Time a few steps to size the schedule, then train for the budget.
        with tempfile.TemporaryDirectory() as tmp:
            stamps = []
            probe = replace(base, steps=8, warmup=1, eval_every=10**9, checkpoint_every=10**9)
            train_generator(probe, tmp, stop_after=7,
                            on_step=lambda *a, s=stamps: s.append(time.perf_counter()))
            step_s = (stamps[-1] - stamps[1]) / (len(stamps) - 2)
        steps = max(10, int(args.seconds / max(step_s, 1e-3)))
        cfg = replace(base, steps=steps, warmup=min(base.warmup, steps // 10),
                      eval_every=max(1, steps // 6), checkpoint_every=10**9)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = train_generator(cfg, tmp)
            seconds = time.perf_counter() - t0
            state = Path(tmp) / "state"
            history = json.loads((state / (state / "latest").read_text() / "state.json"
                                  ).read_text())["history"]
        params = result["params"]
        row = {"run": text, "preset": preset, "params": params, "steps": steps,
               "step_seconds": step_s, "seconds": seconds,
               "heldout_bits_per_dim": result["heldout_bits_per_dim"],
               "unigram_bits_per_dim": result["unigram_bits_per_dim"],
               "model": GPTConfig.from_dict(result["model"].config.to_dict()).to_dict(),
               "train": {k: v for k, v in vars(cfg).items() if k != "overrides"},
               "history": history}
        results.append(row)
        print(f"{text:40s} {params / 1e6:5.2f}M params {steps:5d} steps "
              f"{seconds:6.0f} s  held-out {row['heldout_bits_per_dim']:.3f} bits/dim",
              flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": args.threads, "data": data,
                                        "seconds_per_run": args.seconds,
                                        "runs": results}, indent=1))


if __name__ == "__main__":
    main()
