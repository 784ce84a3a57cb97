"""Generator commands: train-generator, complete, nll, import-hf."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from igpt_forensics.generators.config import (
    COMPLETION_SAMPLING,
    TokenizerTrainConfig,
    TrainConfig,
    check_sampling,
    list_presets,
)

from .. import __version__
from ..data import derive_seed, find_images, fit_square, image_sha256, load_image
from ..errors import InputError
from ..files import atomic_write_bytes, check_writable, write_sha256sums
from ..masks import make_mask
from ..stamp import completion_record, pack_mask, stamped_png
from ..viz import completion_grid, png_bytes
from ..watermark import DEFAULT_DELTA, DEFAULT_GAMMA
from .common import (
    C2paCertOpt,
    C2paKeyOpt,
    DataOpt,
    JsonOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
    WatermarkDeltaOpt,
    WatermarkGammaOpt,
    WatermarkKeyOpt,
    c2pa_credentials,
    console,
    data_spec,
    emit_json,
    err_console,
    fail,
    progress_bar,
    report_skipped,
    user_errors,
    watermark_key,
)

ModelOpt = Annotated[Path | None, typer.Option(
    "--model", help="Checkpoint folder, or a bundled generator: pixel-default (the default) "
    "or vq-default.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, mps.")]


_TRAIN = TrainConfig()  # the options' defaults are the dataclass's, declared once


@user_errors
def train_generator_cmd(
    out: Annotated[Path, typer.Option(help="Run folder; also the checkpoint.")] = Path(
        "runs/gen"),
    data: DataOpt = None,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = _TRAIN.size,
    colors: Annotated[int, typer.Option(help="Palette size (k-means).")] = _TRAIN.colors,
    preset: Annotated[str, typer.Option(help=f"Model shape: {', '.join(list_presets())}.")
                      ] = _TRAIN.preset,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = _TRAIN.steps,
    batch_size: Annotated[int, typer.Option(help="Images per step (all processes).")
                          ] = _TRAIN.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = _TRAIN.lr,
    min_lr: Annotated[float, typer.Option(help="Learning rate at the last step.")
                      ] = _TRAIN.min_lr,
    warmup: Annotated[int, typer.Option(help="Warm-up steps.")] = _TRAIN.warmup,
    train_patches: Annotated[int, typer.Option(help="Training patch pool.")
                             ] = _TRAIN.train_patches,
    eval_patches: Annotated[int, typer.Option(help="Held-out patches for bits/dim.")
                            ] = _TRAIN.eval_patches,
    eval_every: Annotated[int, typer.Option(help="Steps between evaluations.")
                          ] = _TRAIN.eval_every,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")
                                ] = _TRAIN.checkpoint_every,
    palette: Annotated[Path | None, typer.Option(help="Use this palette JSON.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of data, init and batches.")] = _TRAIN.seed,
    precision: Annotated[str, typer.Option(
        help="fp32, or bf16 (autocast: about 2x faster on CPUs with bf16 support).")
                         ] = _TRAIN.precision,
    family: Annotated[str, typer.Option(
        help="pixel: a GPT over palette pixels (iGPT); vq: over the codes of --tokenizer "
        "(LlamaGen style).")] = _TRAIN.family,
    tokenizer: Annotated[Path | None, typer.Option(
        help="--family vq: a tokenizer folder made by train-tokenizer.")] = None,
    device: DeviceOpt = _TRAIN.device,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out exactly.")] = False,
) -> None:
    """Train a generator's GPT on real photos (pixels, or a VQ tokenizer's codes); held-out
    bits/dim on held-out photos."""
    from igpt_forensics.generators.train import train_generator

    cfg = TrainConfig(data=data_spec(data), size=size, colors=colors, preset=preset,
                      family=family, tokenizer=str(tokenizer) if tokenizer else None,
                      steps=steps, batch_size=batch_size, lr=lr, min_lr=min_lr,
                      warmup=min(warmup, steps), train_patches=train_patches,
                      eval_patches=eval_patches, eval_every=eval_every,
                      checkpoint_every=checkpoint_every,
                      palette=str(palette) if palette else None, seed=seed,
                      precision=precision, device=device)
    with progress_bar("steps", fields=("loss", "bpd")) as bar:
        task = bar.add_task("training", total=steps, loss="", bpd="")

        def on_step(step: int, loss_bits: float, bpd: float | None) -> None:
            fields = {"loss": f"loss {loss_bits:.3f} bits"}
            if bpd is not None:
                fields["bpd"] = f"held-out {bpd:.3f} bits/token"
            bar.update(task, completed=step, **fields)

        result = train_generator(cfg, out, resume=resume, on_step=on_step,
                                 report=lambda s: bar.console.print(s))
    unit = "bits/dim" if result["family"] == "pixel" else "bits/code"
    table = Table(title=f"{result['family']} generator {out}")
    for col in ("steps", "params", f"held-out {unit}", f"unigram {unit}", "minutes"):
        table.add_column(col)
    bpd = result["heldout_bits_per_dim"]
    table.add_row(str(result["step"]), f"{result['params']:,}",
                  f"{bpd:.3f}" if bpd is not None else "-",
                  f"{result['unigram_bits_per_dim']:.3f}", f"{result['seconds'] / 60:.1f}")
    if result["family"] == "vq" and bpd is not None:
        table.caption = (f"{bpd / result['pixels_per_token']:.3f} bits per pixel of the code "
                         "sequence (a lossy code: the decoder does not return the photo)")
    console.print(table)
    report_skipped(result["skipped"])


_TOK = TokenizerTrainConfig()


@user_errors
def train_tokenizer_cmd(
    out: Annotated[Path, typer.Option(help="Run folder; also the tokenizer.")] = Path(
        "runs/tokenizer"),
    data: DataOpt = None,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = _TOK.size,
    downsample: Annotated[int, typer.Option(help="Image side / code grid side (power of 2)."
                                            )] = _TOK.downsample,
    codes: Annotated[int, typer.Option("--codes", help="Codebook size.")] = _TOK.n_codes,
    code_dim: Annotated[int, typer.Option(help="Code vector dimension (L2-normalised).")
                        ] = _TOK.code_dim,
    channels: Annotated[int, typer.Option(help="Width of the first conv stage (x8).")
                        ] = _TOK.channels,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = _TOK.steps,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = _TOK.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = _TOK.lr,
    warmup: Annotated[int, typer.Option(help="Warm-up steps.")] = _TOK.warmup,
    restart_every: Annotated[int, typer.Option(help="Restart codes idle this many steps.")
                             ] = _TOK.restart_every,
    train_patches: Annotated[int, typer.Option(help="Training patch pool.")
                             ] = _TOK.train_patches,
    eval_every: Annotated[int, typer.Option(help="Steps between evaluations.")
                          ] = _TOK.eval_every,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")
                                ] = _TOK.checkpoint_every,
    seed: Annotated[int, typer.Option(help="Seed of data, init and batches.")] = _TOK.seed,
    device: DeviceOpt = _TOK.device,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out exactly.")] = False,
) -> None:
    """Train a VQ tokenizer (the first stage of VQ autoregressive generators) on real photos;
    held-out reconstruction PSNR and codebook usage."""
    from igpt_forensics.generators.vq import train_tokenizer

    cfg = TokenizerTrainConfig(data=data_spec(data), size=size, downsample=downsample,
                               n_codes=codes, code_dim=code_dim, channels=channels,
                               steps=steps, batch_size=batch_size, lr=lr,
                               warmup=min(warmup, steps), restart_every=restart_every,
                               train_patches=train_patches, eval_every=eval_every,
                               checkpoint_every=checkpoint_every, seed=seed, device=device)
    with progress_bar("steps", fields=("loss", "psnr")) as bar:
        task = bar.add_task("training", total=steps, loss="", psnr="")

        def on_step(step: int, loss: float, ev: dict | None) -> None:
            fields = {"loss": f"mse {loss:.4f}"}
            if ev is not None:
                fields["psnr"] = (f"held-out {ev['psnr']:.2f} dB, {ev['codes_used']} codes "
                                  "used")
            bar.update(task, completed=step, **fields)

        result = train_tokenizer(cfg, out, resume=resume, on_step=on_step)
    held = result["heldout"] or {}
    table = Table(title=f"tokenizer {out}")
    for col in ("steps", "params", "held-out PSNR (dB)", "codes used", "perplexity", "minutes"):
        table.add_column(col)
    table.add_row(str(result["step"]), f"{result['params']:,}",
                  f"{held.get('heldout_psnr', float('nan')):.2f}",
                  str(held.get("heldout_codes_used", "-")),
                  f"{held.get('heldout_perplexity', float('nan')):.1f}",
                  f"{result['seconds'] / 60:.1f}")
    console.print(table)
    report_skipped(result["skipped"])


def _load_inputs(paths: list[Path], size: int) -> tuple[list[Path], np.ndarray, list[str]]:
    files, bad = find_images(paths)
    good, images = [], []
    for f in files:
        try:
            images.append(fit_square(load_image(f), size))
            good.append(f)
        except InputError as e:
            bad.append(str(e))
    return good, (np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)), bad


@user_errors
def complete(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    model: ModelOpt = None,
    mask: Annotated[str, typer.Option(
        help="top-half, box, full, box:T,L,H,W, file:PNG, or recon (VQ family: encode and "
        "decode only).")] = "top-half",
    samples: Annotated[int, typer.Option(help="Completions per image.")] = 4,
    temperature: TemperatureOpt = COMPLETION_SAMPLING["temperature"],
    top_k: TopKOpt = COMPLETION_SAMPLING["top_k"],
    top_p: TopPOpt = COMPLETION_SAMPLING["top_p"],
    seed: Annotated[int, typer.Option(help="Seed; each completion derives its own.")] = 0,
    scale: Annotated[int, typer.Option(min=1, max=64, help="Upscale factor of the grid.")
                     ] = 4,
    device: DeviceOpt = "auto",
    out: Annotated[Path, typer.Option(help="Grid PNG: masked input, completions, original."
                                      )] = Path("completions.png"),
    save_dir: Annotated[Path | None, typer.Option(
        help="Also write each completion at model size: DIR/<n>-<name>-<sample>.png.")
                        ] = None,
    watermark_key_file: WatermarkKeyOpt = None,
    watermark_gamma: WatermarkGammaOpt = DEFAULT_GAMMA,
    watermark_delta: WatermarkDeltaOpt = DEFAULT_DELTA,
    c2pa_cert: C2paCertOpt = None,
    c2pa_key: C2paKeyOpt = None,
) -> None:
    """Complete photos (center-cropped and resized to the model's size): iGPT's figure.

    Every PNG written carries a provenance record in a text chunk (see `verify`); with
    --c2pa-cert/--c2pa-key, also a signed C2PA manifest (c2pa.edited, the source photo as
    its parent ingredient, the synthesized region as an assertion) on each --save-dir file.
    """
    from igpt_forensics.generators.checkpoint import load_checkpoint
    from igpt_forensics.generators.complete import complete as complete_images

    from ..device import pick_device

    if samples < 1:
        raise InputError(f"--samples must be >= 1, got {samples}")
    check_sampling(temperature, top_k, top_p)
    creds = c2pa_credentials(c2pa_cert, c2pa_key)
    if creds is not None and save_dir is None:
        raise InputError("--c2pa-cert signs the completions --save-dir writes (the grid is a "
                         "figure of real and synthesized images: stamped, not signed); add "
                         "--save-dir DIR")
    check_writable(out, "grid PNG of --out")  # before the sampling, not after it
    if save_dir is not None:
        check_writable(save_dir, "folder of --save-dir", folder=True)
    net, codec, cfg = load_checkpoint(model, pick_device(device))
    mark = watermark_key(watermark_key_file, codec, watermark_gamma, watermark_delta)
    size = cfg["image_size"]
    if mask == "recon" and codec.family != "vq":
        raise InputError("--mask recon is for VQ-family generators (encode and decode); a "
                         "pixel-family generator would only return the palette round trip")
    if mask == "recon" and samples > 1:  # encode + decode draws nothing: one is every one
        err_console.print(f"--mask recon: encoding and decoding is deterministic; one "
                          f"reconstruction per image instead of {samples}")
        samples = 1
    files, originals, bad = _load_inputs(images, size)
    if not files:
        report_skipped(bad)
        raise fail("no readable images to complete")
    rng = np.random.default_rng(seed)
    masks = np.stack([make_mask(mask, size, rng)[0] for _ in files])
    seeds = np.array([[derive_seed(seed, f.name, i, j) for j in range(samples)]
                      for i, f in enumerate(files)])
    t0 = time.perf_counter()
    with err_console.status(f"sampling {len(files) * samples} completions"):
        result = complete_images(net, codec, originals, masks, seeds, temperature, top_k, top_p,
                                 watermark=mark)
    dt = time.perf_counter() - t0
    settings = dict(generator_sha256=cfg["sha256"], family=codec.family,
                    palette_sha256=codec.sha256 if codec.family == "pixel" else None,
                    tokenizer_sha256=codec.sha256 if codec.family == "vq" else None,
                    temperature=temperature, top_k=top_k, top_p=top_p,
                    watermark=mark.describe() if mark else None)
    agent = {"name": f"igpt-forensics {codec.family} generator {cfg['sha256'][:12]}",
             "version": __version__}
    if save_dir is not None:
        for i, f in enumerate(files):
            for j in range(samples):
                image = result.images[i, j]
                record = completion_record(
                    source=f.name, source_pixels_sha256=image_sha256(originals[i]), size=size,
                    mask_spec=mask, mask_bits=pack_mask(result.mask[i]), seed=int(seeds[i, j]),
                    pixels_sha256=image_sha256(image), **settings)
                name = f"{i:04d}-{f.stem}-{j}.png"
                blob = stamped_png(image, record)
                if creds is not None:
                    blob = creds.sign_png(blob, title=name, agent=agent,
                                          parent=png_bytes(originals[i]), mask=result.mask[i],
                                          pixels_sha256=record["pixels_sha256"])
                atomic_write_bytes(save_dir / name, blob)
    grid = completion_grid(originals, result.images, result.mask, scale=scale)
    grid_record = {"format": "igpt-forensics-completion-grid-v1", "tool_version": __version__,
                   "sources": [f.name for f in files], "mask_spec": mask, "samples": samples,
                   "seed": seed, "scale": scale, **settings, "size": list(grid.shape[:2]),
                   "pixels_sha256": image_sha256(grid)}
    atomic_write_bytes(out, stamped_png(grid, grid_record))
    tokens = int(result.mask.sum()) * samples // codec.scale**2
    what = "pixels" if codec.family == "pixel" else "codes"
    drawn = (f"{tokens:,} {what} drawn in {dt:.1f} s, {tokens / dt:,.0f} tokens/s" if tokens
             else f"nothing drawn, {dt:.1f} s")
    console.print(f"wrote {out}: {len(files)} image{'s' if len(files) != 1 else ''} x "
                  f"{samples} completion{'s' if samples != 1 else ''} ({drawn}) with the "
                  f"{codec.family} generator {cfg['path']}", soft_wrap=True)
    if codec.family == "vq":
        console.print("the decoder re-synthesised every pixel, also outside the mask (the "
                      "mask in each record is the region whose codes were drawn)",
                      soft_wrap=True)
    if save_dir is not None:
        console.print(f"wrote {len(files) * samples} completions to {save_dir}", soft_wrap=True)
    if mark is not None:
        console.print(f"watermark: key {mark.fingerprint[:12]}, gamma {mark.gamma}, delta "
                      f"{mark.delta}", soft_wrap=True)
    report_skipped(bad)


@user_errors
def nll(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = None,
) -> None:
    """Bits per token of each image under the model (lower = likelier): per pixel for the
    pixel family; per code (and per pixel of the code sequence) for the VQ family, whose
    images are encoded by its tokenizer first."""
    from igpt_forensics.generators.checkpoint import load_checkpoint

    from ..device import pick_device

    net, codec, cfg = load_checkpoint(model, pick_device(device))
    files, batch, bad = _load_inputs(images, cfg["image_size"])
    rows = []
    per_pixel = codec.scale**2
    if files:
        import torch

        stats = net.token_stats(torch.from_numpy(codec.encode(batch)))
        bpt = (stats["nll"].double().mean(1) / math.log(2)).tolist()
        rows = [{"path": str(f), "bits_per_token": b, "bits_per_pixel": b / per_pixel}
                for f, b in zip(files, bpt)]
    if not emit_json(json_out, {"model": cfg["path"], "model_sha256": cfg["sha256"],
                                "family": codec.family, "rows": rows, "skipped": bad}):
        table = Table(title=f"bits per {'pixel' if per_pixel == 1 else 'code'} under the "
                            f"{codec.family} generator {cfg['path']}")
        table.add_column("file")
        table.add_column("bits/dim" if per_pixel == 1 else "bits/code", justify="right")
        if per_pixel > 1:
            table.add_column("bits/pixel", justify="right")
        for r in rows:
            table.add_row(r["path"], f"{r['bits_per_token']:.3f}",
                          *([f"{r['bits_per_pixel']:.3f}"] if per_pixel > 1 else []))
        console.print(table)
        report_skipped(bad)
    if not files:
        raise typer.Exit(1)


@user_errors
def import_hf(
    src: Annotated[Path, typer.Argument(help="Hugging Face ImageGPT checkpoint folder.")],
    out: Annotated[Path, typer.Argument(help="Native checkpoint folder to write.")],
) -> None:
    """Convert a Hugging Face ImageGPT checkpoint (iGPT-S/M/L) into a native checkpoint."""
    from igpt_forensics.generators.checkpoint import save_checkpoint
    from igpt_forensics.generators.hf_import import import_hf as import_hf_checkpoint

    net, palette = import_hf_checkpoint(src)
    save_checkpoint(net, palette, out, {"imported_from": str(src), "format": "hf-imagegpt"})
    console.print(f"wrote {out}: {net.num_params():,} parameters, "
                  f"{net.config.image_size}x{net.config.image_size}, {palette.n_colors} colors")


@user_errors
def export_model(
    src: Annotated[Path, typer.Argument(help="Checkpoint folder (e.g. a training run).")],
    out: Annotated[Path, typer.Argument(help="Folder to write model + config (+ SHA256SUMS).")],
    half: Annotated[bool, typer.Option(help="Store weights as float16 (half the size).")
                    ] = False,
) -> None:
    """Copy a checkpoint's model and config (no training state), optionally in float16, with
    a SHA256SUMS file: how the bundled default is packaged."""
    import torch

    from igpt_forensics.generators.checkpoint import load_checkpoint, save_checkpoint

    net, codec, cfg = load_checkpoint(src)
    save_checkpoint(net, codec, out, cfg.get("meta", {}),
                    dtype=torch.float16 if half else None)
    write_sha256sums(out)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    console.print(f"wrote {out} ({size / 1e6:.1f} MB)")


def register(app: typer.Typer) -> None:
    app.command("export-model")(export_model)
    app.command("train-generator")(train_generator_cmd)
    app.command("train-tokenizer")(train_tokenizer_cmd)
    app.command()(complete)
    app.command()(nll)
    app.command("import-hf")(import_hf)
