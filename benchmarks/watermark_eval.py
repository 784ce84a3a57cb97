"""Evaluate the keyed green-list watermark: detection, false positives, cost and robustness.

    .venv/bin/python benchmarks/watermark_eval.py --out wm.json     # ~15 min on 1 thread
    .venv/bin/python benchmarks/watermark_eval.py --quick           # ~1.5 min

With the bundled default generator (32x32, 512 colors) at temperature 1, one fixed key:

- fakes: full images and top-half completions (the top half a real test patch) for three
  schemes at the same gamma and delta: the default (color groups + previous pixel's coarse
  group + position mod 32), the same without the position, and the paper's exact-token scheme
  (previous exact token, exact green colors); unwatermarked fakes of both kinds;
- real images: patches of the held-out test photos (verify re-quantizes them to the palette,
  so a photo and its palette version score the same);
- tests (`WatermarkKey.verify_tokens`): ``image`` is z > 4 on the whole image (p < 3.2e-5);
  ``any`` adds the region scan and the offset search (each at 3.2e-5 with Bonferroni inside,
  so at most ~1e-4 for the three together);
- perturbations (`igpt_forensics.perturb`): none, jpeg90, jpeg75, resize0.5 (scored at
  16x16 as it is, and resized back to 32x32 with Lanczos, "resize0.5>32"), crop24;
- cost, in bits per synthesized pixel under the unbiased model p (full images): the expected
  cost E_q[-log2 p] - H(p) at every drawn pixel of the watermarked images, q being the biased
  distribution they were drawn from (paired: the same contexts on both sides, so little
  noise), and the realized difference of bits/dim between watermarked and unwatermarked
  fakes (two different sets of images: noisy, given with its standard error). The realized
  difference also holds the drift: a pixel pushed to a green color changes the contexts that
  follow, and the model's own entropy along the watermarked images (reported) rises; a delta
  sweep;
- the null over keys: the image test of the real patches under 20 other keys (an image made
  without the key scores Binomial(trials, gamma) whatever the image, so z ~ mean 0, sd 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere in a checkout

from igpt_forensics.generators.checkpoint import load_checkpoint  # noqa: E402

from igpt_forensics.data import ImageSource, derive_seed, sample_patches  # noqa: E402
from igpt_forensics.perturb import perturb  # noqa: E402
from igpt_forensics.watermark import ALPHA, WatermarkKey  # noqa: E402

KEY = b"igpt-forensics watermark_eval key (public: for measurement only)"
SCHEMES = {  # name -> WatermarkKey settings besides gamma and delta
    "groups+position (default)": {},
    "groups, no position": {"period": 0},
    "exact tokens (paper)": {"token_groups": 512, "context_groups": 512, "period": 0},
}
PERTURBATIONS = ("none", "jpeg90", "jpeg75", "resize0.5", "resize0.5>32", "crop24")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def apply(image: np.ndarray, spec: str, seed: int) -> np.ndarray:
    if spec == "resize0.5>32":
        small, _ = perturb(image, "resize0.5", seed)
        return np.asarray(Image.fromarray(small).resize(image.shape[1::-1],
                                                        Image.Resampling.LANCZOS))
    return perturb(image, spec, seed)[0]


def draw(model, palette, tops: np.ndarray, kind: str, n: int, tag: str, mark=None,
         batch: int = 64) -> np.ndarray:
    """n fakes (tokens, (n, 1024)) of one kind: "full", or "top-half" completing ``tops``."""
    N = model.config.n_positions
    mask = np.ones((n, N), dtype=bool)
    known = np.zeros((n, N), dtype=np.int64)
    if kind == "top-half":
        mask[:, :N // 2] = False
        known = palette.encode(tops[:n])
    seeds = [derive_seed(0, "watermark_eval", tag, kind, i) for i in range(n)]
    out = []
    for s in range(0, n, batch):
        out.append(model.sample(torch.from_numpy(known[s:s + batch]),
                                torch.from_numpy(mask[s:s + batch]), seeds[s:s + batch],
                                watermark=mark).numpy())
    return np.concatenate(out)


def detect(key: WatermarkKey, images: np.ndarray, specs=PERTURBATIONS) -> dict:
    """Per perturbation: rates of the image test (z > 4) and of any test, median z's."""
    out = {}
    for spec in specs:
        z, zr, zs, hit_image, hit_any = [], [], [], [], []
        for i, image in enumerate(images):
            v = key.verify(apply(image, spec, seed=i))
            z.append(v.image.z)
            zr.append(v.regions.best.z if v.regions.best else np.nan)
            zs.append(v.shifted.best.z if v.shifted.best else np.nan)
            hit_image.append(v.image.p < ALPHA)
            hit_any.append(v.detected)
        out[spec] = {"image": round(float(np.mean(hit_image)), 4),
                     "any": round(float(np.mean(hit_any)), 4),
                     "z_median": round(float(np.median(z)), 2),
                     "z_min": round(float(np.min(z)), 2),
                     "region_z_median": round(float(np.nanmedian(zr)), 2)
                     if not np.all(np.isnan(zr)) else None,
                     "shifted_z_median": round(float(np.nanmedian(zs)), 2)
                     if not np.all(np.isnan(zs)) else None,
                     "n": len(images)}
    return out


def null(key: WatermarkKey, images: np.ndarray) -> dict:
    z, hit_image, hit_any = [], [], []
    for image in images:
        v = key.verify(image)
        z.append(v.image.z)
        hit_image.append(v.image.p < ALPHA)
        hit_any.append(v.detected)
    z = np.array(z)
    return {"n": len(images), "fpr_image": float(np.mean(hit_image)),
            "fpr_any": float(np.mean(hit_any)), "z_mean": round(float(z.mean()), 3),
            "z_sd": round(float(z.std()), 3), "z_max": round(float(z.max()), 2)}


def bits_per_dim(model, tokens: np.ndarray) -> tuple[np.ndarray, float]:
    """Per image: mean -log2 p of its pixels under the unbiased model; and the mean
    entropy of the model's predictions along the images, in bits."""
    stats = model.token_stats(torch.from_numpy(tokens))
    return ((stats["nll"].double().mean(1) / np.log(2)).numpy(),
            float(stats["entropy"].double().mean() / np.log(2)))


def realized(bpd: np.ndarray, plain_bpd: np.ndarray) -> dict:
    return {"realized_cost": round(float(bpd.mean() - plain_bpd.mean()), 4),
            "realized_cost_se": round(float(np.sqrt(bpd.var() / len(bpd)
                                                    + plain_bpd.var() / len(plain_bpd))), 4)}


@torch.inference_mode()
def expected_cost(model, key: WatermarkKey, tokens: np.ndarray, batch: int = 2) -> float:
    """Mean over the pixels of full watermarked images of E_q[-log2 p] - H(p): what the
    bias costs in expectation at each step, along the images' own trajectories."""
    S = model.config.image_size
    group = torch.from_numpy(key.token_group)
    total, count = 0.0, 0
    for s in range(0, len(tokens), batch):
        t = tokens[s:s + batch]
        logp = torch.log_softmax(model.logits_for(torch.from_numpy(t)).float(), -1)
        # the bias each pixel was drawn with: its position and its previous pixel's group
        green = np.stack([key.green_table[key._positions(S, S), key._cells(g)[0]]
                          for g in t.reshape(-1, S, S)]).reshape(len(t), S * S, -1)
        logq = torch.log_softmax(logp + torch.from_numpy(green)[..., group] * key.delta, -1)
        cost = ((logq.exp() - logp.exp()) * -logp).sum(-1)
        total += float(cost.double().sum())
        count += cost.numel()
    return total / count / np.log(2)


def null_over_keys(palette, tokens: np.ndarray, extra: dict, keys: int = 20) -> dict:
    """The image test of unmarked images under many keys: its false-positive rate and z."""
    z, p = [], []
    for k in range(keys):
        key = WatermarkKey(f"null key {k}".encode(), palette, **extra)
        for t in tokens:
            s = key.score_tokens(t)
            z.append(s.z)
            p.append(s.p)
    z = np.array(z)
    return {"tests": len(z), "keys": keys, "fpr_image": float(np.mean(np.array(p) < ALPHA)),
            "z_mean": round(float(z.mean()), 3), "z_sd": round(float(z.std()), 3),
            "z_max": round(float(z.max()), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="watermarked fakes per kind, default")
    ap.add_argument("--n-compare", type=int, default=48,
                    help="fakes per kind for the other two schemes")
    ap.add_argument("--n-plain", type=int, default=100, help="unwatermarked fakes per kind")
    ap.add_argument("--n-real", type=int, default=500, help="real test patches")
    ap.add_argument("--n-sweep", type=int, default=24, help="full fakes per swept delta")
    ap.add_argument("--deltas", default="0.5,1,3", help="deltas swept besides --delta")
    ap.add_argument("--gamma", type=float, default=0.25)
    ap.add_argument("--delta", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    ap.add_argument("--out", type=Path, default=None, help="write results JSON here")
    args = ap.parse_args()
    if args.quick:
        args.n, args.n_compare, args.n_plain, args.n_real, args.n_sweep = 16, 8, 16, 64, 8
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    model, palette, config = load_checkpoint(None)
    S = model.config.image_size
    source = ImageSource("builtin")
    real, _ = sample_patches(source, args.n_real, S, seed=11, split="test")
    tops, _ = sample_patches(source, max(args.n, args.n_compare, args.n_plain), S, seed=12,
                             split="test")
    results = {"model": config["path"], "model_sha256": config["sha256"],
               "gamma": args.gamma, "delta": args.delta, "alpha": ALPHA,
               "threads": args.threads, "schemes": {}, "sweep": {}}

    clock = [time.perf_counter()]

    def lap(what: str) -> None:
        now = time.perf_counter()
        log(f"{what}: {now - clock[0]:.0f} s")
        clock[0] = now

    plain = {}
    for kind in ("full", "top-half"):
        plain[kind] = draw(model, palette, tops, kind, args.n_plain, "plain")
        lap(f"draw {args.n_plain} unwatermarked {kind}")
    plain_bpd, plain_entropy = bits_per_dim(model, plain["full"])
    results["unwatermarked_bits_per_dim"] = round(float(plain_bpd.mean()), 4)
    results["unwatermarked_entropy"] = round(plain_entropy, 4)
    real_tokens = palette.encode(real).reshape(-1, S, S)
    plain_images = palette.decode(np.concatenate(list(plain.values())))

    for name, extra in SCHEMES.items():
        key = WatermarkKey(KEY, palette, args.gamma, args.delta, **extra)
        wrong = WatermarkKey(KEY + b" (wrong)", palette, args.gamma, args.delta, **extra)
        n = args.n if not extra else args.n_compare
        row = {"settings": key.describe(), "n": n}
        fakes = {}
        for kind in ("full", "top-half"):
            fakes[kind] = draw(model, palette, tops, kind, n, name, key)
            lap(f"draw {n} {kind} [{name}]")
            row[kind] = detect(key, palette.decode(fakes[kind]))
            lap(f"verify {kind} x {len(PERTURBATIONS)} [{name}]")
        bpd, entropy = bits_per_dim(model, fakes["full"])
        row["bits_per_dim"] = round(float(bpd.mean()), 4)
        row["entropy"] = round(entropy, 4)
        row["expected_cost"] = round(expected_cost(model, key, fakes["full"]), 4)
        row.update(realized(bpd, plain_bpd))
        row["wrong_key"] = null(wrong, palette.decode(np.concatenate(list(fakes.values()))))
        row["unwatermarked_fakes"] = null(key, plain_images)
        # verify re-quantizes: a photo and its palette version score the same
        row["real"] = null(key, real)
        row["real_over_keys"] = null_over_keys(palette, real_tokens, {
            "gamma": args.gamma, **extra})
        lap(f"cost, wrong key, unwatermarked, real [{name}]")
        results["schemes"][name] = row

    main_row = results["schemes"]["groups+position (default)"]
    results["sweep"][str(args.delta)] = {
        "expected_cost": main_row["expected_cost"], "n": main_row["n"],
        "realized_cost": main_row["realized_cost"],
        "realized_cost_se": main_row["realized_cost_se"],
        **{spec: main_row["full"][spec]["image"] for spec in ("none", "jpeg90", "jpeg75")}}
    for d in (float(x) for x in args.deltas.split(",") if x.strip()):
        k = WatermarkKey(KEY, palette, args.gamma, d)
        tokens = draw(model, palette, tops, "full", args.n_sweep, f"sweep{d}", k)
        det = detect(k, palette.decode(tokens), ("none", "jpeg90", "jpeg75"))
        results["sweep"][str(d)] = {
            "expected_cost": round(expected_cost(model, k, tokens), 4),
            **realized(bits_per_dim(model, tokens)[0], plain_bpd),
            "n": args.n_sweep, **{spec: det[spec]["image"] for spec in det}}
        lap(f"delta {d}: draw and verify {args.n_sweep} full")
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))


def markdown(r: dict) -> str:
    lines = [f"gamma {r['gamma']}, delta {r['delta']}; unwatermarked fakes "
             f"{r['unwatermarked_bits_per_dim']:.3f} bits/dim; {r['seconds']:.0f} s, "
             f"{r['threads']} thread(s)", ""]
    head = "| scheme | fakes | " + " | ".join(PERTURBATIONS) + " |"
    lines += ["Detection rate, image test z > 4 (any test: image, regions or offsets):", "",
              head, "|---|---|" + "---:|" * len(PERTURBATIONS)]
    for name, row in r["schemes"].items():
        for kind in ("full", "top-half"):
            cells = [f"{row[kind][s]['image']:.2f} ({row[kind][s]['any']:.2f})"
                     for s in PERTURBATIONS]
            lines.append(f"| {name} | {kind} (n={row['n']}) | " + " | ".join(cells) + " |")
    lines += ["", "Median image z (min):", "", head, "|---|---|" + "---:|" * len(PERTURBATIONS)]
    for name, row in r["schemes"].items():
        for kind in ("full", "top-half"):
            cells = [f"{row[kind][s]['z_median']:.1f} ({row[kind][s]['z_min']:.1f})"
                     for s in PERTURBATIONS]
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    lines += ["", "False positives (image test / any test; z mean, sd, max of the image test):",
              "", "| scheme | real photos | unwatermarked fakes | watermarked, wrong key | "
              "real photos, 20 other keys (image test) |", "|---|---|---|---|---|"]
    for name, row in r["schemes"].items():
        cells = []
        for d in (row["real"], row["unwatermarked_fakes"], row["wrong_key"]):
            cells.append(f"{d['fpr_image']:.3f} / {d['fpr_any']:.3f} of {d['n']} "
                         f"(z {d['z_mean']:+.2f}, {d['z_sd']:.2f}, {d['z_max']:.1f})")
        k = row["real_over_keys"]
        cells.append(f"{k['fpr_image']:.4f} of {k['tests']} (z {k['z_mean']:+.2f}, "
                     f"{k['z_sd']:.2f}, {k['z_max']:.1f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Cost in bits per synthesized pixel (full fakes; unwatermarked "
              f"{r['unwatermarked_bits_per_dim']:.3f} bits/dim, model entropy along them "
              f"{r['unwatermarked_entropy']:.3f} bits):", "",
              "| scheme | expected (paired) | realized difference +- SE | model entropy along "
              "the watermarked images |", "|---|---:|---:|---:|"]
    for name, row in r["schemes"].items():
        lines.append(f"| {name} | {row['expected_cost']:+.3f} | {row['realized_cost']:+.3f} "
                     f"+- {row['realized_cost_se']:.3f} | {row['entropy']:.3f} |")
    lines += ["", "Delta sweep (default scheme, full fakes, image test):", "",
              "| delta | fakes | expected cost | realized +- SE | none | jpeg90 | jpeg75 |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for d, s in sorted(r["sweep"].items(), key=lambda kv: float(kv[0])):
        lines.append(f"| {d} | {s['n']} | {s['expected_cost']:+.3f} | "
                     f"{s['realized_cost']:+.3f} +- {s['realized_cost_se']:.3f} | "
                     f"{s['none']:.2f} | {s['jpeg90']:.2f} | {s['jpeg75']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
