"""How much faster ``bench`` is because it scores each image once, on the default study.

    python benchmarks/bench_cache.py [--config studies/default.toml] [--max-items 40]
                                     [--rounds 1] [--json out.json]

Two runs of the same study in one process, like for like (same datasets, detectors, training,
perturbations, seed and items), in alternating order when ``--rounds`` > 1:

- ``once`` is `run_benchmark` as it ships: fakes and their maps come from one
  ``score_and_localize`` pass; the cross-dataset matrix and leave-one-out reuse the test
  scores that `evaluate` made, and the validation scores of each fixed detector are made once;
- ``twice`` (the peer) is the same code with every reuse turned off, which is what ``bench``
  did before them: every detector is seen without ``score_and_localize`` (so `evaluate`
  scores the fakes, then localizes the partial ones in a second pass), and `cross_matrix` and
  `leave_one_out` are given no scores (so they score every test split again, and the
  validation reals each threshold comes from, once per use).

Everything else (loading, training, leave-one-out, bootstrap, the report) is the same work in
both, so the ratio is the gain of the caching alone on the whole command. The datasets of the
study must exist (``make default-study`` makes them); ``--max-items`` bounds the items read
from each split, for a run of minutes on 2 cores. Both runs must give the same metrics, which
is checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from igpt_forensics import bench  # noqa: E402


class _NoJointPass:
    """A detector seen without ``score_and_localize``: `evaluate` then scores and localizes
    in two passes, as it did before the joint pass."""

    def __init__(self, inner):
        self.__dict__["_inner"] = inner

    def __getattr__(self, name):
        if name == "score_and_localize" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["_inner"], name)

    def __setattr__(self, name, value):  # retarget() sets threshold_ on a copy
        self.__dict__[name] = value


def _no_joint_pass(factory):
    return lambda train, val: _NoJointPass(factory(train, val))


def _timed(fn, clock: dict, key: str):
    """``fn``, adding the seconds of each call to ``clock[key]``."""
    def call(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock[key] = clock.get(key, 0.0) + time.perf_counter() - t0
    return call


def _run(study: bench.Study, detectors: dict, factories: dict, twice: bool) -> tuple[float, dict]:
    """One bench run; its seconds, its metrics and where the seconds went (``_phases``:
    training, evaluate, the cross matrix and leave-one-out without their training, other)."""
    evaluate, cross, loo = bench.evaluate, bench.cross_matrix, bench.leave_one_out
    if twice:
        detectors = {k: _NoJointPass(d) for k, d in detectors.items()}
        factories = {k: _no_joint_pass(f) for k, f in factories.items()}

        def cross_matrix(detectors, trained, val, test, fit_seconds=None, scored=None,
                         val_scored=None):
            return cross(detectors, trained, val, test, fit_seconds)

        def leave_one_out(detectors, factories, val, test, train, progress=None, scored=None,
                          val_scored=None):
            return loo(detectors, factories, val, test, train, progress)
    else:
        cross_matrix, leave_one_out = cross, loo
    clock: dict[str, float] = {}
    factories = {k: _timed(f, clock, "training") for k, f in factories.items()}

    def leave_one_out_timed(*args, **kwargs):  # its own seconds, less the training in it
        trained_before, t0 = clock.get("training", 0.0), time.perf_counter()
        try:
            return leave_one_out(*args, **kwargs)
        finally:
            clock["leave-one-out"] = (time.perf_counter() - t0
                                      - (clock.get("training", 0.0) - trained_before))
    bench.evaluate = _timed(evaluate, clock, "evaluate")
    bench.cross_matrix = _timed(cross_matrix, clock, "cross matrix")
    bench.leave_one_out = leave_one_out_timed
    try:
        t0 = time.perf_counter()
        doc = bench.run_benchmark(study, detectors, factories)
        seconds = time.perf_counter() - t0
    finally:
        bench.evaluate, bench.cross_matrix, bench.leave_one_out = evaluate, cross, loo
    phases = {k: clock.get(k, 0.0)
              for k in ("training", "evaluate", "cross matrix", "leave-one-out")}
    doc["_phases"] = {**phases, "other": seconds - sum(phases.values())}
    return seconds, doc


def _metrics(doc: dict) -> list:
    keep = ("image", "region", "cross", "leave_one_out")
    return [[{k: v for k, v in r.items() if k != "fit_seconds"} for r in doc.get(part, [])]
            for part in keep]


def main(argv: list[str] | None = None) -> dict:
    from igpt_forensics.detectors.base import open_detector
    from igpt_forensics.detectors.trained import split_trainer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "studies" / "default.toml")
    ap.add_argument("--max-items", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    study = bench.Study.from_toml(args.config)
    missing = [p for p in study.datasets.values() if not (Path(p) / "dataset.json").is_file()]
    if missing:
        sys.exit(f"make the study's datasets first (make default-study): missing {missing}")
    seconds: dict[str, list[float]] = {"once": [], "twice": []}
    docs = {}
    with tempfile.TemporaryDirectory() as tmp:
        study = replace(study, max_items=args.max_items, out=tmp)
        detectors = {n: open_detector(s) for n, s in study.detectors.items()}
        factories = {k: split_trainer(k) for k in study.train}
        for r in range(args.rounds):
            for mode in (("once", "twice") if r % 2 == 0 else ("twice", "once")):
                sec, docs[mode] = _run(study, detectors, factories, mode == "twice")
                seconds[mode].append(sec)
                print(f"round {r + 1}: {mode:5s} {sec:7.1f} s", flush=True)
    if _metrics(docs["once"]) != _metrics(docs["twice"]):
        sys.exit("the two runs gave different metrics: the comparison is not like for like")
    once, twice = (min(v) for v in seconds.values())
    out = {"study": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT)
                        else args.config),
           "max_items": args.max_items, "perturbations": study.perturbations,
           "detectors": list(study.detectors), "train": study.train,
           "datasets": list(study.datasets), "rounds": args.rounds, "cpus": os.cpu_count(),
           "load_average": os.getloadavg(), "seconds": seconds,
           "best_seconds": {"once": once, "twice": twice}, "speedup": twice / once,
           "phases_seconds": {m: docs[m]["_phases"] for m in docs}}
    print(f"bench scoring once: {once:.1f} s; scoring twice (before): {twice:.1f} s; "
          f"{twice / once:.2f}x faster from the caching alone")
    for m in ("once", "twice"):
        print(f"  {m}: " + ", ".join(f"{k} {v:.0f} s" for k, v in docs[m]["_phases"].items()))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
