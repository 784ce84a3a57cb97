"""How real do a generator's images look? Held-out bits/dim, trivial-baseline separability of
its fakes, and a figure of held-out completions; for the VQ family also the tokenizer's
reconstruction PSNR beside the pixel default's palette.

    .venv/bin/python benchmarks/generator_eval.py                       # the bundled default
    .venv/bin/python benchmarks/generator_eval.py --model runs/gen --n 64 --out runs/ge.json
    .venv/bin/python benchmarks/generator_eval.py --model vq-default --out runs/ge-vq.json

1. **Bits/dim** (bits per token: per palette pixel, or per code for the VQ family, where
   ``bits_per_pixel`` divides by the pixels of a code's cell) of random patches of each held-out photo: the
   builtin held-out photos (coffee, flower, grace_hopper) and the held-out photos of the Debian
   photo list (when its package files are installed), one row per photo and one per group.
2. **Separability by trivial baselines**: for every sampling setting and mask kind, held-out
   patches are completed and each baseline statistic (``rowcol``, ``laplacian``, ``colors``:
   one number per image) is compared between the fakes and the same patches through the
   model's palette (quantized reals: both classes are palette colors, so no statistic wins on
   the container; the VQ family has no real-image format, so its fakes are compared with the
   real patches, and ``recon`` fakes, encoded and decoded, are a mask kind of their own). AUC is reported two-sided (the better orientation, which flatters the
   baselines): 0.5 means the statistic cannot tell the fakes from quantized reals.
3. **The default**: the setting whose fakes the baselines separate least in the worst case
   over mask kinds (per mask kind, the mean AUC of the three baselines; then the maximum):
   what ``complete`` and ``generate`` should sample with (``COMPLETION_SAMPLING``).
4. **Figure**: top-half completions of held-out patches at that setting (masked input,
   samples, original), written to ``--figure``.

Everything is seeded: the same model and arguments give the same numbers and the same PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere in a checkout

from igpt_forensics.detectors.base import create_detector  # noqa: E402
from igpt_forensics.detectors.likelihood import parse_sampling  # noqa: E402
from igpt_forensics.generators.checkpoint import load_checkpoint  # noqa: E402
from igpt_forensics.generators.complete import complete  # noqa: E402

from igpt_forensics.data import ImageSource, PatchSampler, derive_seed  # noqa: E402
from igpt_forensics.errors import InputError  # noqa: E402
from igpt_forensics.masks import make_mask  # noqa: E402
from igpt_forensics.metrics import bootstrap_auc  # noqa: E402
from igpt_forensics.viz import completion_grid, save_png  # noqa: E402

PHOTO_LIST = ROOT / "data" / "debian-photos.tsv"
SETTINGS = ["temperature=1", "temperature=0.9", "temperature=0.8", "top_p=0.9",
            "top_p=0.95", "top_k=40"]
MASKS = ["top-half", "box", "full"]
BASELINES = ["rowcol", "laplacian", "colors"]
LN2 = math.log(2.0)


def heldout_sources() -> dict[str, ImageSource]:
    sources = {"builtin": ImageSource("builtin")}
    try:
        sources["debian"] = ImageSource(PHOTO_LIST)
    except InputError as e:
        print(f"skipping the Debian photos: {e}", file=sys.stderr)
    return sources


def bits_per_photo(model, codec, source: ImageSource, n: int, seed: int) -> dict:
    """Mean bits/dim over ``n`` random patches of each held-out photo, and over all of them."""
    size = model.config.image_size * codec.scale
    rows, everything = {}, []
    for pid in source.photo_ids("heldout"):
        try:
            one = PatchSampler(source, size, seed, ids=[pid])
        except InputError as e:
            print(f"skipping {pid}: {e}", file=sys.stderr)
            continue
        patches, _ = one.patches(range(n))
        nll = model.token_stats(torch.from_numpy(codec.encode(patches)))["nll"]
        bits = nll.double().mean(1) / LN2
        rows[pid] = {"bits_per_dim": float(bits.mean()), "split": source.split_of(pid),
                     "n": n, "psnr": float(codec.psnr(patches))}
        everything.append(bits)
    if everything:
        rows["all"] = {"bits_per_dim": float(torch.cat(everything).mean()), "n": n * len(everything)}
    for row in rows.values():
        row["bits_per_pixel"] = row["bits_per_dim"] / codec.scale**2
    return rows


def short_name(photo_id: str) -> str:
    """``wallpapers/Path/contents/images/1920x1080.jpg`` -> ``Path``; else the file's stem."""
    parts = photo_id.rsplit(":", 1)[-1].split("/")
    if "contents" in parts:
        return parts[parts.index("contents") - 1]
    return parts[-1].rsplit(".", 1)[0]


def heldout_patches(sources: dict[str, ImageSource], size: int, n: int, seed: int) -> np.ndarray:
    """``n`` patches from the held-out photos of every source, in equal shares."""
    per = -(-n // len(sources))
    parts = [PatchSampler(src, size, seed, split="heldout").patches(range(per))[0]
             for src in sources.values()]
    return np.concatenate(parts)[:n]


def baseline_aucs(fakes: np.ndarray, reals: np.ndarray) -> dict:
    labels = np.r_[np.zeros(len(reals)), np.ones(len(fakes))]
    out = {}
    for name in BASELINES:
        det = create_detector(name)
        values = np.array([det.image_value(im) for im in np.concatenate([reals, fakes])])
        auc = float(_auc(labels, values))
        lo, hi = bootstrap_auc(labels, values, 200, seed=0)
        if auc < 0.5:  # two-sided: the better orientation
            auc, lo, hi = 1 - auc, 1 - hi, 1 - lo
        out[name] = {"auc": auc, "auc_lo": lo, "auc_hi": hi}
    return out


def _auc(labels, values):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(labels, values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: bundled)")
    ap.add_argument("--n", type=int, default=96, help="held-out patches per setting and mask")
    ap.add_argument("--bits-patches", type=int, default=64, help="patches per held-out photo")
    ap.add_argument("--setting", action="append", default=None,
                    help=f"sampling settings (repeat; default: {', '.join(SETTINGS)})")
    ap.add_argument("--figure-setting", default=None,
                    help="setting of the figure (default: the least separable one)")
    ap.add_argument("--figure", type=Path, default=Path("runs/completions-heldout.png"))
    ap.add_argument("--figure-rows", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/generator-eval.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, codec, config = load_checkpoint(args.model)
    size = config["image_size"]
    sources = heldout_sources()
    masks_here = MASKS + (["recon"] if codec.family == "vq" else [])
    result = {"model": config["path"], "model_sha256": config["sha256"],
              "family": codec.family,
              "unit": "bits per palette pixel" if codec.family == "pixel" else "bits per code",
              "heldout_bits_per_dim_at_training": config["meta"].get("heldout_bits_per_dim"),
              "n": args.n, "seed": args.seed, "bits_per_dim": {}, "separability": {}}
    for name, src in sources.items():
        result["bits_per_dim"][name] = bits_per_photo(model, codec, src, args.bits_patches,
                                                      args.seed)
        print(f"bits/dim {name}: " + ", ".join(
            f"{short_name(k)} {v['bits_per_dim']:.2f}"
            for k, v in result["bits_per_dim"][name].items()), flush=True)

    patches = heldout_patches(sources, size, args.n, args.seed + 7)
    reals = codec.twin(patches)
    result["psnr"] = {"codec": float(codec.psnr(patches))}
    if codec.family != "pixel":  # the pixel default's palette beside the tokenizer
        _, pixel_palette, _ = load_checkpoint("pixel-default")
        result["psnr"]["pixel_default_palette"] = float(pixel_palette.psnr(patches))
    print("PSNR of held-out patches through the codec: " + ", ".join(
        f"{k} {v:.2f} dB" for k, v in result["psnr"].items()), flush=True)
    completions = {}
    for setting in args.setting or SETTINGS:
        kw = parse_sampling(setting)
        result["separability"][setting] = {}
        for kind in masks_here:
            if kind == "recon" and setting != (args.setting or SETTINGS)[0]:
                continue  # no sampling: the same fakes at every setting
            rng = np.random.default_rng(args.seed)
            masks = np.stack([make_mask(kind, size, rng)[0] for _ in range(len(patches))])
            seeds = np.array([[derive_seed(args.seed, setting, kind, i)] for i in range(len(patches))])
            t = time.perf_counter()
            c = complete(model, codec, patches, masks, seeds, **kw)
            fakes = c.images[:, 0]
            completions[(setting, kind)] = c
            row = baseline_aucs(fakes, reals)
            row["seconds"] = time.perf_counter() - t
            result["separability"][setting][kind] = row
            print(f"{setting:16s} {kind:9s} " + "  ".join(
                f"{b} {row[b]['auc']:.3f}" for b in BASELINES) + f"  ({row['seconds']:.0f} s)",
                flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))

    # The setting the baselines separate least in the worst case over mask kinds (per mask,
    # the mean AUC of the three baselines): a default must serve whole images too.
    def worst(setting: str) -> float:
        return max(float(np.mean([row[b]["auc"] for b in BASELINES]))
                   for row in (result["separability"][setting][k] for k in MASKS))

    best = min(result["separability"], key=worst)
    result["least_separable"] = {"setting": best, "worst_mask_mean_auc": worst(best),
                                 "criterion": "max over mask kinds of the mean baseline AUC"}
    figure_setting = args.figure_setting or best
    kw = parse_sampling(figure_setting)
    rows = heldout_patches(sources, size, args.figure_rows, args.seed + 11)
    mask, _ = make_mask("top-half", size)
    seeds = np.array([[derive_seed(args.seed, "figure", i, j) for j in range(4)]
                      for i in range(len(rows))])
    c = complete(model, codec, rows, mask, seeds, **kw)
    save_png(completion_grid(codec.twin(rows), c.images, c.mask, scale=4), args.figure)
    result["figure"] = {"path": str(args.figure), "setting": figure_setting}
    result["seconds"] = time.perf_counter() - t0
    args.out.write_text(json.dumps(result, indent=1))
    print(f"least separable setting over every mask kind: {best} (worst mean baseline AUC "
          f"{worst(best):.3f}); figure {args.figure} at {figure_setting}; "
          f"{result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
