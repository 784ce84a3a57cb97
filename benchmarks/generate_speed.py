"""How fast `generate` writes a dataset at 32x32, per mask kind, and how its memory grows with n.

    python benchmarks/generate_speed.py                          # speed n=64, memory n=1000,5000
    python benchmarks/generate_speed.py --speed-n 16 --memory-n 100,300 --json out.json

Speed: one `generate` per mask kind (top-half, box, full); fakes/s counts generated images
(each item also writes its real and quantized real: images/s = 3 x fakes/s), timed over the
run itself (photo decoding and model loading excluded). Memory: each n runs in a fresh
subprocess (all three mask kinds cycled) that reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), so the numbers do not mix.

Uses the bundled default generator when it exists (or ``--model``), else a randomly
initialised ``small`` preset with a 512-color palette fitted on builtin patches (sampling
cost does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from igpt_forensics.generators.checkpoint import DEFAULT_MODEL, read_config, save_checkpoint  # noqa: E402
from igpt_forensics.generators.dataset import prepare_dataset  # noqa: E402
from igpt_forensics.generators.model import create_model  # noqa: E402

from igpt_forensics.data import load_patches  # noqa: E402
from igpt_forensics.device import pick_device  # noqa: E402
from igpt_forensics.palette import Palette  # noqa: E402

KINDS = ("top-half", "box", "full")


def stand_in_model(folder: Path, preset: str) -> Path:
    """A random-init preset, 32x32, with a 512-color palette fitted on builtin patches."""
    palette = Palette.fit(load_patches("builtin", 1000, size=32), 512, max_pixels=200_000)
    torch.manual_seed(0)  # k-means may merge duplicate centers: size the model to the palette
    model = create_model(preset, vocab_size=palette.n_colors, image_size=32)
    return save_checkpoint(model, palette, folder / f"{preset}-random",
                           {"preset": preset, "note": "random init, benchmark stand-in"})


def child(args) -> None:
    """Run one dataset in this process and print its peak RSS as JSON."""
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    job = prepare_dataset(args.out, args.child, model=args.model, data=args.data,
                          batch_size=args.batch_size, device=args.device)
    job.run()
    print(json.dumps({"n": args.child, "seconds": round(time.perf_counter() - t0, 2),
                      "fakes_per_s": round(job.generated_items / job.seconds, 2),
                      "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                          / 1024, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: bundled, "
                    "else a random-init small preset)")
    ap.add_argument("--preset", default="small", help="preset of the random-init stand-in")
    ap.add_argument("--data", default="builtin")
    ap.add_argument("--speed-n", type=int, default=64, help="items per mask kind (0 = skip)")
    ap.add_argument("--memory-n", default="1000,5000", help="comma-separated n ('' = skip)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="generate-speed-") as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None and not DEFAULT_MODEL.is_dir():
            model = str(stand_in_model(tmp, args.preset))
        results = {"device": str(pick_device(args.device)), "threads": torch.get_num_threads(),
                   "model": model or "bundled default", "batch_size": args.batch_size,
                   "speed": [], "memory": [],
                   "model_preset": (read_config(model or DEFAULT_MODEL).get("meta") or {}).get(
                       "preset", "custom")}
        for kind in KINDS if args.speed_n > 0 else ():
            job = prepare_dataset(tmp / f"speed-{kind}", args.speed_n, model=model,
                                  data=args.data, masks=kind, batch_size=args.batch_size,
                                  device=args.device)
            job.run()
            rate = job.generated_items / job.seconds
            results["speed"].append({"mask": kind, "n": args.speed_n,
                                     "seconds": round(job.seconds, 2),
                                     "fakes_per_s": round(rate, 2),
                                     "images_per_s": round(3 * rate, 2)})
            print(json.dumps(results["speed"][-1]), flush=True)
        for n in [int(x) for x in args.memory_n.split(",") if x.strip()]:
            cmd = [sys.executable, __file__, "--child", str(n), "--out", str(tmp / f"mem-{n}"),
                   "--data", args.data, "--batch-size", str(args.batch_size),
                   "--device", args.device, "--threads", str(args.threads)]
            if model is not None:
                cmd += ["--model", str(model)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results["memory"].append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(results["memory"][-1]), flush=True)

    from rich.console import Console
    from rich.table import Table

    title = (f"generate at 32x32: {results['model_preset']} on {results['device']} "
             f"({results['threads']} threads, batch {args.batch_size})")
    if results["speed"]:
        table = Table(title=title)
        for col in ("mask", "n", "fakes/s", "images/s", "seconds"):
            table.add_column(col)
        for r in results["speed"]:
            table.add_row(r["mask"], str(r["n"]), f"{r['fakes_per_s']:.2f}",
                          f"{r['images_per_s']:.2f}", f"{r['seconds']:.1f}")
        Console().print(table)
    if results["memory"]:
        table = Table(title=f"peak memory, {title} (fresh process per n, masks cycled)")
        for col in ("n", "peak RSS (MB)", "fakes/s", "seconds"):
            table.add_column(col)
        for r in results["memory"]:
            table.add_row(str(r["n"]), f"{r['max_rss_mb']:.0f}", f"{r['fakes_per_s']:.2f}",
                          f"{r['seconds']:.0f}")
        Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
