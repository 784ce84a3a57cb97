"""Training a generator's GPT on a data source: AdamW, warm-up + cosine decay, held-out
bits/dim, atomic resumable checkpoints, and DistributedDataParallel under ``torchrun``.

Both families train here: ``family="pixel"`` fits (or takes) a palette and models pixels;
``family="vq"`` takes a trained VQ tokenizer (`generators.vq`) and models its codes, the
tokenizer copied into the run folder so a resume uses exactly the same one.

Exact resume: the batch of step ``s`` depends only on ``(seed, s)`` and the learning rate only
on ``s``, so the state to restore is the weights, the optimizer moments and the step. A killed
run resumed with ``resume=True`` ends with the same weights as one that was never killed.

Bits/dim here is bits per token: per palette pixel for the pixel family (the unit iGPT reports
in nats), per code for the VQ family (divide by ``downsample**2`` for bits per pixel of the
code sequence, which is not a lossless code of the image: the decoder is lossy).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from igpt_forensics.data import ImageSource, PatchSampler
from igpt_forensics.device import pick_device
from igpt_forensics.errors import InputError
from igpt_forensics.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_plain_name,
    check_regular,
    read_bounded,
    read_json,
)
from igpt_forensics.palette import Palette

from .checkpoint import save_checkpoint
from .config import Schedule, TrainConfig
from .model import PixelGPT, create_model

LN2 = math.log(2.0)


def lr_at(step: int, cfg: Schedule) -> float:
    """Linear warm-up, then cosine decay to ``min_lr`` at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1)))


def batch_indices(step: int, cfg: TrainConfig, pool: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of ``step``: patch indices and flip flags, from (seed, step) alone."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    idx = torch.randint(pool, (cfg.batch_size,), generator=g)
    flip = torch.rand(cfg.batch_size, generator=g) < 0.5
    return idx, flip & cfg.flip


def flip_tokens(tokens: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    grid = tokens.view(-1, size, size)
    return torch.where(flip[:, None, None], grid.flip(-1), grid).reshape(len(tokens), -1)


@torch.inference_mode()
def bits_per_dim(model: PixelGPT, tokens: torch.Tensor, batch_size: int = 64) -> float:
    """Mean negative log-likelihood of ``tokens`` in bits per token."""
    return float(model.token_stats(tokens, batch_size)["nll"].double().mean() / LN2)


def unigram_bits(train_tokens: np.ndarray, eval_tokens: np.ndarray, n_colors: int) -> float:
    """The baseline a model must beat: palette-color frequencies (add-one smoothed)."""
    counts = np.bincount(train_tokens.ravel(), minlength=n_colors) + 1.0
    logp = np.log2(counts / counts.sum())
    return float(-logp[eval_tokens.ravel()].mean())


# ----------------------------------------------------------------------------------------
# Run state on disk: out/state/latest names the newest complete step folder.


def _state_dir(out: Path) -> Path:
    return out / "state"


def save_state(out: Path, step: int, model: PixelGPT, opt: torch.optim.Optimizer,
               history: list) -> None:
    """Write a complete resumable state in a fresh folder, then point ``latest`` at it."""
    root = _state_dir(out)
    folder = root / f"step-{step:08d}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / "model.safetensors", save(weights))
    tensors, layout = {}, []
    for i, group in enumerate(opt.param_groups):
        for j, p in enumerate(group["params"]):
            st = opt.state.get(p, {})
            for key, value in st.items():
                name = f"{i}.{j}.{key}"
                tensors[name] = torch.as_tensor(value).detach().cpu().contiguous()
                layout.append(name)
    atomic_write_bytes(folder / "optimizer.safetensors", save(tensors))
    atomic_write_text(folder / "state.json", json.dumps({"step": step, "history": history}))
    atomic_write_text(root / "latest", folder.name)  # the commit point
    for old in root.glob("step-*"):
        if old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file of a run's state, or one line naming it."""
    if os.path.lexists(path):
        check_regular(path, "safetensors file")  # a FIFO would hang the reader
    try:
        return load_file(path)
    except FileNotFoundError:
        raise InputError(f"{path}: missing (a damaged run state)") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{path}: corrupt run state ({e})") from None


def load_state(out: Path, model: PixelGPT, opt: torch.optim.Optimizer,
               steps: int | None = None) -> tuple[int, list]:
    """The step and history of the saved state, its weights and optimizer moments loaded;
    every value checked (an edited state is one line naming its file, never a traceback or
    a run that starts at step -5 or 10**23). ``steps``: the run's last step."""
    root = _state_dir(out)
    if not (root / "latest").exists():
        raise InputError(f"{out}: nothing to resume (no {root / 'latest'})")
    # a plain name of a folder beside it, read with a bound: never a path elsewhere
    name = read_bounded(root / "latest", 256, "state pointer").decode(errors="replace").strip()
    folder = root / check_plain_name(name, str(root / "latest"), "step folder")
    where = folder / "state.json"
    state = read_json(where, f"{where}: missing (a damaged run state)",
                      f"{where}: unreadable run state")
    step = state.get("step") if isinstance(state, dict) else None
    history = state.get("history") if isinstance(state, dict) else None
    if (isinstance(step, bool) or not isinstance(step, int) or step < 0
            or (steps is not None and step > steps)):
        raise InputError(f"{where}: 'step' must be an integer in 0..{steps}, got {step!r}")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise InputError(f"{where}: 'history' must be a list of objects")
    try:
        model.load_state_dict(_tensors(folder / "model.safetensors"), strict=True)
    except RuntimeError as e:
        raise InputError(f"{folder / 'model.safetensors'}: does not fit the model "
                         f"({str(e).splitlines()[0]})") from None
    tensors = _tensors(folder / "optimizer.safetensors")
    for i, group in enumerate(opt.param_groups):
        for j, p in enumerate(group["params"]):
            prefix = f"{i}.{j}."
            st = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            for k, v in st.items():  # AdamW's: a scalar step, moments of the parameter's shape
                want = () if k == "step" else tuple(p.shape)
                if tuple(v.shape) != want or not v.is_floating_point():
                    raise InputError(f"{folder / 'optimizer.safetensors'}: {prefix}{k} is "
                                     f"{v.dtype} {tuple(v.shape)}, the parameter needs {want}")
            if st:
                opt.state[p] = {k: v.to(p.device) if k != "step" else v for k, v in st.items()}
    return step, history


# ----------------------------------------------------------------------------------------


def _dist() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


@dataclass
class TokenData:
    """What a run trains on: the codec, training tokens (and those of the flipped training
    images, for codecs whose tokens do not flip with the image), held-out tokens, the bad
    files skipped and the photos used (id, split, file, sha256), which the checkpoint
    records."""

    codec: object  # Palette | generators.vq.VQCodec
    train: np.ndarray
    train_flipped: np.ndarray | None
    held: np.ndarray
    bad: list[str]
    photos: list[dict]


def prepare_data(cfg: TrainConfig, report: Callable[[str], None] = lambda s: None,
                 device: torch.device | None = None) -> TokenData:
    """Training and held-out tokens from the data source; the palette fitted on training
    (pixel family) or the tokenizer's codes (VQ family), encoded on ``device`` (the
    training's: on a GPU, 40,000 patches take seconds instead of minutes on one CPU core)."""
    source = ImageSource(cfg.data)
    train_photos = PatchSampler(source, cfg.size, cfg.seed, split="train")
    held_photos = PatchSampler(source, cfg.size, cfg.seed + 1, split="heldout")
    train, _ = train_photos.patches(range(cfg.train_patches))
    held, _ = held_photos.patches(range(cfg.eval_patches))
    flipped = None
    if cfg.family == "vq":
        from .vq import VQCodec

        codec = VQCodec.load(cfg.tokenizer)
        if codec.image_size != cfg.size:
            raise InputError(f"--tokenizer {cfg.tokenizer} makes {codec.image_size}x"
                             f"{codec.image_size} images, not --size {cfg.size}")
        report(f"encoding {len(train):,} training patches with the tokenizer")
        codec.tokenizer.to(device or "cpu")
        try:  # a code grid flipped is not the code grid of the flipped image: encode both
            if cfg.flip:
                flipped = codec.encode(np.ascontiguousarray(train[:, :, ::-1]))
            codes, held_codes = codec.encode(train), codec.encode(held)
        finally:
            codec.tokenizer.to("cpu")
    else:
        if cfg.palette:
            codec = Palette.load(cfg.palette)
        else:
            report(f"fitting a {cfg.colors}-color palette")
            codec = Palette.fit(train, cfg.colors, seed=cfg.seed)
        codes, held_codes = codec.encode(train), codec.encode(held)
    photos = source.describe(train_photos.good + held_photos.good)
    return TokenData(codec, codes, flipped, held_codes, source.report.bad, photos)


def train_generator(cfg: TrainConfig, out: str | Path, resume: bool = False,
                    on_step: Callable[[int, float, float | None], None] | None = None,
                    report: Callable[[str], None] = lambda s: None,
                    stop_after: int | None = None) -> dict:
    """Train (or resume) and write the checkpoint ``out`` (model.safetensors + config.json).

    ``on_step(step, loss, bits_per_dim or None)`` is called after every step on rank 0.
    ``stop_after`` ends the run early after that many steps of this call (tests use it to
    simulate a kill). Returns a summary dict.
    """
    cfg.check()
    out = Path(out)
    rank, world = _dist()
    if cfg.batch_size % world:
        raise InputError(f"--batch-size {cfg.batch_size} must be divisible by the "
                         f"{world} processes")
    if world > 1 and torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        device = pick_device(cfg.device)
    if resume:
        saved = read_json(out / "train_config.json",
                          f"{out}: nothing to resume (no train_config.json)",
                          f"{out / 'train_config.json'}: unreadable run settings")
        if not isinstance(saved, dict):
            raise InputError(f"{out / 'train_config.json'}: not the settings of a run")
        if saved != asdict(cfg):
            diff = sorted(k for k in saved if saved.get(k) != asdict(cfg).get(k))
            raise InputError(f"{out}: --resume with different settings ({', '.join(diff)})")
    elif (out / "state" / "latest").exists():
        raise InputError(f"{out}: holds a run already; pass --resume to continue it or "
                         "choose another --out")

    t0 = time.perf_counter()
    # A resumed run reuses the palette it fitted (the tokenizer it copied), so its tokens
    # are exactly the same.
    if cfg.family == "pixel":
        data_cfg = replace(cfg, palette=str(out / "palette.json")) if resume else cfg
    else:
        data_cfg = replace(cfg, tokenizer=str(out / "tokenizer")) if resume else cfg
    data = prepare_data(data_cfg, report, device)
    codec = data.codec
    if rank == 0 and not resume:
        if cfg.family == "pixel":
            codec.save(out / "palette.json")
        else:
            from .vq import save_tokenizer

            save_tokenizer(codec.tokenizer, out / "tokenizer", {"copied_from": cfg.tokenizer,
                                                                 "sha256": codec.sha256})
        atomic_write_text(out / "train_config.json", json.dumps(asdict(cfg)))
    train_tok = torch.from_numpy(data.train)
    train_flipped = torch.from_numpy(data.train_flipped) if data.train_flipped is not None \
        else None
    held_tok = torch.from_numpy(data.held)
    unigram = unigram_bits(data.train, data.held, codec.n_tokens)
    grid = cfg.size // codec.scale

    torch.manual_seed(cfg.seed)
    model = create_model(cfg.preset, vocab_size=codec.n_tokens, image_size=grid,
                         **cfg.overrides).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95))
    step, history = (load_state(out, model, opt, cfg.steps) if resume else (0, []))
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    def evaluate() -> float:
        return bits_per_dim(model, held_tok)

    last_bpd = history[-1].get("heldout_bits_per_dim") if history else None
    if isinstance(last_bpd, bool) or not isinstance(last_bpd, (int, float)):
        last_bpd = None  # a state edited by hand: the next evaluation sets it
    done_here = 0
    model.train()
    while step < cfg.steps:
        idx, flip = batch_indices(step, cfg, len(train_tok))
        idx, flip = idx[rank::world], flip[rank::world]
        if train_flipped is None:
            tokens = flip_tokens(train_tok[idx], flip, grid)
        else:
            tokens = torch.where(flip[:, None], train_flipped[idx], train_tok[idx])
        tokens = tokens.to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout, if any, replays on resume
        # bf16 autocast: matmuls in bfloat16, weights, optimizer and loss stay float32.
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            loss = train_model.loss(tokens) if world == 1 else _ddp_loss(train_model, tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        done_here += 1
        bpd = None
        if step % cfg.eval_every == 0 or step == cfg.steps:
            bpd = last_bpd = evaluate()
            history.append({"step": step, "loss_bits": loss.item() / LN2,
                            "heldout_bits_per_dim": bpd, "seconds": time.perf_counter() - t0})
        if rank == 0:
            if on_step:
                on_step(step, loss.item() / LN2, bpd)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_state(out, step, model, opt, history)
                _write_model(out, model, codec, cfg, step, last_bpd, unigram, data.photos)
        if stop_after is not None and done_here >= stop_after:
            break
    if world > 1:
        dist.barrier()
    return {"step": step, "heldout_bits_per_dim": last_bpd, "unigram_bits_per_dim": unigram,
            "seconds": time.perf_counter() - t0, "params": model.num_params(),
            "skipped": data.bad, "model": model, "family": cfg.family,
            "pixels_per_token": codec.scale**2}


def _ddp_loss(ddp_model, tokens: torch.Tensor) -> torch.Tensor:
    """DDP wraps forward(); the loss must go through it so gradients are all-reduced."""
    inner: PixelGPT = ddp_model.module
    start = torch.full_like(tokens[:, :1], inner.start_token)
    logits = ddp_model(torch.cat([start, tokens[:, :-1]], dim=1))
    return F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten())


def _write_model(out: Path, model: PixelGPT, codec, cfg: TrainConfig, step: int,
                 bpd: float | None, unigram: float, photos: list[dict]) -> None:
    meta = {"trained_by": "igpt-forensics train-generator", "preset": cfg.preset,
            "step": step, "heldout_bits_per_dim": bpd, "unigram_bits_per_dim": unigram,
            "train": asdict(cfg), "photos": photos}
    if codec.family == "vq":  # bits per code; per pixel of the code sequence beside it
        meta["heldout_bits_per_pixel"] = None if bpd is None else bpd / codec.scale**2
    save_checkpoint(model, codec, out, meta)
