"""Leave-one-generator-out over the detector pool, trained in parallel processes (issue 16).

The datasets of a pool are grouped by the generator that made them (the checkpoint's sha256
in `dataset.json`: `t1` and `topp09` are one generator at two sampling settings). For each
variant (a name and `train-detector` options) and each generator G, `train` fits a detector
on the datasets of every *other* generator (train splits; early stopping and threshold on
their val splits), and one on all of them (`all`, the candidate to ship). `bench` then runs
`igpt-forensics bench` on each G's datasets with the detectors that never saw G, and
`table` writes the matrix: image AUC against quantized reals, TPR at 1% FPR, the FPR that
each detector's own threshold lets through on G's test reals (does a threshold transfer?),
AUC per mask kind and per perturbation, and pixel AUC of the maps on G's partial fakes.

The bench step is `bench`'s own evaluator (one evaluator): this script only schedules the
trainings, which are independent, across processes (`--jobs`), so that a GPU machine runs
them side by side, and resumes (a detector folder that exists is not trained again).

    # the pool: one "NAME PATH" per line; detectors under OUT/detectors/HELD/VARIANT
    python benchmarks/logo_pool.py train --pool pool.txt --out runs/logo --jobs 16 \\
        --device cuda --variant "npr=--inputs npr" --variant "rgb=--inputs rgb"
    python benchmarks/logo_pool.py bench --pool pool.txt --out runs/logo \\
        --perturb none,jpeg75,resize0.5,blur1,crop24
    python benchmarks/logo_pool.py table --out runs/logo --json benchmarks/results/logo-pool.json

A scoring option needs no training: `derive` loads each held-out detector of variant BASE
with other parameters (`--set tta=flip`, comma-separated), sets its thresholds again on the
validation reals of the datasets it trained on (what `fit` calibrates on), and saves it as
a new variant beside it, for `bench` to compare like for like:

    python benchmarks/logo_pool.py derive --pool pool.txt --out runs/logo --base npr \
        --variant npr-flip --set tta=flip

`fuse` stacks detectors into a `fusion` detector per held-out generator, fitted on the
validation splits of the datasets it may see (as `derive` calibrates): a member is a variant
of the same held-out folder, a baseline (rowcol, laplacian, colors: its direction and
threshold fitted on the same images) or a zero-shot detector with a shipped calibration
(likelihood; the shipped cnn is refused: it learned every generator):

    python benchmarks/logo_pool.py fuse --pool pool.txt --out runs/logo --variant fusion \
        --member npr-flip --member likelihood --member rowcol --member laplacian --member colors
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ALL = "all"


def read_pool(path: Path) -> dict[str, Path]:
    pool = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, folder = line.split(maxsplit=1)
            pool[name] = Path(folder.strip())
    return pool


def groups(pool: dict[str, Path]) -> dict[str, list[str]]:
    """Generator sha256 (first 16) -> the pool's datasets it made; named by the first."""
    by: dict[str, list[str]] = {}
    for name, folder in pool.items():
        info = json.loads((folder / "dataset.json").read_text())
        sha = (info.get("generator") or {}).get("sha256") or f"dataset:{name}"
        by.setdefault(sha, []).append(name)
    return {names[0]: names for names in by.values()}


def training_datasets(pool: dict[str, Path], gs: dict[str, list[str]], held: str) -> list[str]:
    """The datasets a detector holding out ``held`` learns and calibrates on: every dataset
    of every other generator (all of them for `all`)."""
    return [n for n in pool if held == ALL or n not in gs[held]]


def detector_args(description: str) -> argparse.ArgumentParser:
    """The options of the scripts that study the detectors `train` made (--pool, --out,
    --variant, --threads, --json)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--pool", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="logo_pool.py's --out folder")
    ap.add_argument("--variant", default="npr")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    return ap


def held_out_detectors(pool: dict[str, Path], out: Path, variant: str):
    """For each generator group with a trained ``variant``: (group, its datasets, the
    detector trained without them)."""
    from igpt_forensics.detectors.base import load_detector

    for held, names in groups(pool).items():
        path = out / "detectors" / held / variant
        if (path / "detector.json").exists():
            yield held, names, load_detector(path)


KINDS = ("top-half", "box", "full")


def held_out_kinds(pool: dict[str, Path], out: Path, variant: str, score):
    """For each held-out detector, each dataset of its group and each mask kind of its test
    split: (group, dataset, kind, the test split, the indices of that kind's fakes,
    ``score(det, its quantized reals)``, ``score(det, those fakes)``); the quantized reals
    are scored once per dataset."""
    import numpy as np

    from igpt_forensics.splits import load_split

    for held, names, det in held_out_detectors(pool, out, variant):
        for ds in names:
            test = load_split(pool[ds], "test")
            q = score(det, np.stack(test.qreal))
            for kind in KINDS:
                idx = [i for i, k in enumerate(test.kinds) if k == kind]
                if idx:
                    yield held, ds, kind, test, idx, q, score(
                        det, np.stack([test.fake[i] for i in idx]))


def cli() -> list[str]:
    return [sys.executable, "-m", "igpt_forensics"]


def plan(pool: dict[str, Path], gs: dict[str, list[str]], variants: list[list[str]],
         out_root: Path, device: str = "auto", seed: int = 0, extra: str = "",
         held_order: list[str] | None = None) -> list[tuple[str, list[str], Path]]:
    """The trainings still to run, as (VARIANT/HELD, command, folder): for each variant, one
    on the whole pool (`all`) and one per generator on the datasets of all the others (every
    dataset of the held-out generator left out). A folder that holds a detector is done.
    ``held_order`` (names of groups and `all`) keeps only those, in that order, every
    variant of one before the next: what runs first when a deadline stops the rest."""
    helds = [ALL, *gs] if held_order is None else held_order
    unknown = sorted(set(helds) - {ALL, *gs})
    if unknown:
        raise SystemExit(f"--held: no such generator group {unknown} (groups: {sorted(gs)})")
    jobs = []
    pairs = ([(v, h) for v in variants for h in helds] if held_order is None
             else [(v, h) for h in helds for v in variants])
    for (vname, opts), held in pairs:
        keep = training_datasets(pool, gs, held)
        out = out_root / "detectors" / held / vname
        if (out / "detector.json").exists():
            continue
        # the variant's options come after the common ones: "s1=--inputs npr --seed 1"
        # overrides --seed (the last value of an option wins)
        cmd = [*cli(), "--threads", "1", "train-detector", "--kind", "cnn",
               *[a for n in keep for a in ("--dataset", str(pool[n]))],
               "--out", str(out), "--device", device, "--seed", str(seed),
               "--no-test", *shlex.split(extra), *shlex.split(opts)]
        jobs.append((f"{vname}/{held}", cmd, out))
    return jobs


def train(args) -> None:
    pool, gs = read_pool(args.pool), groups(read_pool(args.pool))
    variants = [v.split("=", 1) for v in args.variant]
    jobs = plan(pool, gs, variants, args.out, args.device, args.seed, args.extra,
                args.held.split(",") if args.held else None)
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.deadline
    print(f"{len(jobs)} trainings, {args.jobs} at a time; groups: "
          + "; ".join(f"{k}={'+'.join(v)}" for k, v in gs.items()), flush=True)

    def run(job):
        name, cmd, out = job
        if time.monotonic() > deadline:
            return name, "skipped (deadline)", 0.0
        out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(out.parent / f"{out.name}.log", "w") as log:
            left = max(1.0, deadline - time.monotonic())
            try:
                rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    timeout=left).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        dt = time.perf_counter() - t0
        print(f"{name}: rc {rc}, {dt:.0f} s", flush=True)
        return name, rc, dt

    with ThreadPoolExecutor(args.jobs) as ex:
        done = list(ex.map(run, jobs))
    (args.out / "train-log.json").write_text(json.dumps(
        {"groups": gs, "variants": dict(variants), "device": args.device, "seed": args.seed,
         "jobs": [{"job": n, "rc": rc, "seconds": round(dt, 1)} for n, rc, dt in done]},
        indent=1) + "\n")


def _sets(text: str) -> dict:
    """--set "tta=flip,map_members=[2,3]" -> {"tta": "flip", "map_members": [2, 3]}: pairs
    split at the commas outside brackets, each value as JSON where it parses, else as the
    text."""
    out, depth, start = {}, 0, 0
    for i, ch in enumerate(text + ","):
        depth += (ch in "[{") - (ch in "]}")
        if ch == "," and depth == 0:
            key, _, value = text[start:i].partition("=")
            start = i + 1
            if not key:
                continue
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value
    return out


def derive(args) -> None:
    from igpt_forensics.detectors.base import load_detector
    from igpt_forensics.detectors.trained import REAL_FORMS, SplitData, load_arrays

    pool, gs = read_pool(args.pool), groups(read_pool(args.pool))
    if len(args.variant) != 1 or "=" in args.variant[0] or not args.base:
        raise SystemExit("derive: name --base VARIANT and one new --variant NAME")
    sets = _sets(args.set)
    name = args.variant[0]
    for held in [ALL, *gs]:
        src, dst = args.out / "detectors" / held / args.base, args.out / "detectors" / held / name
        if not (src / "detector.json").exists() or (dst / "detector.json").exists():
            continue
        det = load_detector(src, **sets)
        val = SplitData.concat([load_arrays(pool[n], "val", REAL_FORMS)
                                for n in training_datasets(pool, gs, held)])
        det.calibrate_sizes({det.image_size_: list(val.real)})
        det.save(dst)
        print(f"{held}: {name} = {args.base} with {sets}, threshold {det.threshold_:.3f}",
              flush=True)
    log_path = args.out / "train-log.json"
    log = json.loads(log_path.read_text())
    log["variants"][name] = f"{log['variants'].get(args.base, args.base)}, then {args.set} " \
        "(thresholds set again on the val reals)"
    log_path.write_text(json.dumps(log, indent=1) + "\n")


def fuse(args) -> None:
    from igpt_forensics.detectors.base import create_detector, list_detectors
    from igpt_forensics.detectors.baselines import BASELINES
    from igpt_forensics.detectors.fusion import FusionDetector
    from igpt_forensics.detectors.trained import (
        REAL_FORMS,
        TRAINED_KINDS,
        SplitData,
        load_arrays,
    )

    pool, gs = read_pool(args.pool), groups(read_pool(args.pool))
    if len(args.variant) != 1 or "=" in args.variant[0] or not args.member:
        raise SystemExit("fuse: name one new --variant NAME and its --member (repeat)")
    name = args.variant[0]
    sets = _sets(args.set)  # e.g. combine=mean
    for held in [ALL, *gs]:
        folder = args.out / "detectors" / held
        if (folder / name / "detector.json").exists() or not folder.is_dir():
            continue
        trained = [m for m in args.member if m in TRAINED_KINDS
                   and not (folder / m / "detector.json").exists()]
        if trained:  # a shipped trained detector learned every generator, the held-out too
            raise SystemExit(f"fuse: member {', '.join(trained)} names a shipped detector "
                             "trained on the whole pool; name a variant of the held-out folder")
        missing = [m for m in args.member if not (folder / m / "detector.json").exists()
                   and m not in BASELINES and m not in list_detectors()]
        if missing:
            print(f"{held}: skipped, no member {', '.join(missing)}", flush=True)
            continue
        val = SplitData.concat([load_arrays(pool[n], "val", REAL_FORMS)
                                for n in training_datasets(pool, gs, held)])
        specs = []
        for m in args.member:
            if (folder / m / "detector.json").exists():
                specs.append(str(folder / m))
            elif m in BASELINES:  # fitted here, kept outside detectors/ (not a variant)
                path = args.out / "members" / held / m
                create_detector(m).fit(val.real, val.fake).save(path)
                specs.append(str(path))
            else:
                specs.append(m)
        det = FusionDetector(members=specs, seed=args.seed, **sets).fit(val.real, val.fake)
        det.save(folder / name)
        print(f"{held}: {name} = " + ", ".join(
            f"{m['spec']} {m['coef']:+.2f}" for m in det.fit_info_["members"]), flush=True)
    log_path = args.out / "train-log.json"
    log = json.loads(log_path.read_text())
    log["variants"][name] = "fusion of " + ", ".join(args.member) + \
        f" ({args.set or 'combine=regression'}; fitted on the val splits, threshold out of fold)"
    log_path.write_text(json.dumps(log, indent=1) + "\n")


def bench(args) -> None:
    pool, gs = read_pool(args.pool), groups(read_pool(args.pool))
    only = set(args.held.split(",")) if args.held else set(gs)
    for held, names in gs.items():
        if held not in only:
            continue
        dets = sorted(p for p in (args.out / "detectors" / held).glob("*")
                      if (p / "detector.json").exists())
        report = args.out / "reports" / held
        if not dets or (report / "metrics.json").exists():
            continue
        cmd = [*cli(), "--threads", str(args.threads), "bench",
               *[a for n in names for a in ("--dataset", str(pool[n]))],
               *[a for d in dets for a in ("--detector", str(d))],
               "--perturb", args.perturb, "--bootstrap", str(args.bootstrap),
               "--out", str(report)]
        print(" ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def table(args) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from transfer_table import table as transfer

    log = json.loads((args.out / "train-log.json").read_text())
    out: dict = {"groups": log["groups"], "variants": log["variants"], "held_out": {}}
    for metrics in sorted((args.out / "reports").glob("*/metrics.json")):
        held = metrics.parent.name
        doc = json.loads(metrics.read_text())
        t = transfer(doc)
        kinds = {}
        for r in doc["image"]:
            if (r["real_form"] == "qreal" and r["perturbation"] == "none"
                    and r["fakes"] != "all"):
                kinds.setdefault(r["detector"], {}).setdefault(
                    r["dataset"], {})[r["fakes"]] = r["auc"]
        for det, by in t.items():
            variant = det
            for ds, cells in by.items():
                out["held_out"].setdefault(held, {}).setdefault(variant, {})[ds] = {
                    **cells, "auc_by_kind": kinds.get(variant, {}).get(ds, {})}
    variants = list(log["variants"])
    columns = sorted({d for h in out["held_out"].values() for v in h.values() for d in v})
    print("| variant | " + " | ".join(columns) + " | mean |")
    rows = {}
    for v in variants:
        cells = {ds: c for h in out["held_out"].values() for ds, c in h.get(v, {}).items()}
        aucs = [c["none"]["auc"] for c in cells.values()]
        rows[v] = {"mean_auc": sum(aucs) / max(1, len(aucs)),
                   "min_auc": min(aucs, default=float("nan")),
                   "mean_tpr_at_1fpr": sum(c["none"]["tpr_at_1fpr"] for c in cells.values())
                   / max(1, len(cells)),
                   **{f"mean_auc_{p}": sum(c[p]["auc"] for c in cells.values() if p in c)
                      / max(1, sum(p in c for c in cells.values()))
                      for p in args.perturb.split(",") if p != "none"}}
        print(f"| {v} | " + " | ".join(  # a held-out generator it was not trained for: -
            f"{cells[d]['none']['auc']:.3f} ({cells[d]['none']['tpr_at_1fpr']:.2f}; "
            f"{cells[d]['none']['fpr_at_threshold']:.2f})" if d in cells else "-"
            for d in columns) + f" | {rows[v]['mean_auc']:.3f} |")
    out["summary"] = rows
    print(json.dumps(rows, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["train", "derive", "fuse", "bench", "table"])
    ap.add_argument("--pool", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variant", action="append", default=[],
                    help='NAME=train-detector options, e.g. "npr=--inputs npr"')
    ap.add_argument("--base", default="", help="derive: the variant to start from")
    ap.add_argument("--set", default="", help="derive, fuse: parameters, e.g. tta=flip, "
                    "combine=mean")
    ap.add_argument("--member", action="append", default=[],
                    help="fuse: a member (a variant, a baseline or a registered detector)")
    ap.add_argument("--extra", default="", help="options for every training (e.g. smoke tests)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--held", default="", help="train, bench: only these held-out groups "
                    "(train: and 'all'), comma-separated, in this order (default: all, then "
                    "every group)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--deadline", type=float, default=1e9, help="seconds: start no training "
                    "after it, stop those running")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--perturb", default="none,jpeg75,resize0.5,blur1,crop24")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    {"train": train, "derive": derive, "fuse": fuse, "bench": bench,
     "table": table}[args.step](args)


if __name__ == "__main__":
    main()
