"""A VQ tokenizer: the first stage of today's autoregressive image generators (LlamaGen, VAR,
Janus, Emu3), small enough to train on a CPU.

A convolutional encoder turns a ``S x S`` image into a ``S/d x S/d`` grid of vectors
(``d = downsample``, 4 by default: 32x32 -> 8x8), each snapped to the nearest of ``n_codes``
codebook vectors; a convolutional decoder turns the codes back into an image. As in
LlamaGen, the lookup is on L2-normalised vectors of a low dimension (``code_dim`` 8): cosine
similarity, which keeps every code in use far better than raw Euclidean lookup. Codes left
unused for ``restart_every`` steps are restarted on encoder outputs of the current batch
(dead-code restarts), so the whole codebook stays alive. The loss is reconstruction (MSE)
plus the codebook and commitment terms of VQ-VAE; the straight-through estimator carries
the decoder's gradient to the encoder.

A GPT over the codes (the pixel-GPT's transformer, `generators/model.py`) is the second
stage; a fake is the decoder's output for the whole image, so every pixel is re-synthesised,
also where the codes were kept.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from igpt_forensics.data import ImageSource, PatchSampler
from igpt_forensics.device import pick_device
from igpt_forensics.errors import InputError
from igpt_forensics.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_regular,
    check_sha256sums,
    read_json,
    sha256_file,
)
from igpt_forensics.metrics import psnr

from .config import TokenizerTrainConfig, check_num_params
from .train import batch_indices, load_state, lr_at, save_state

FORMAT = "igpt-forensics-vq-tokenizer-v1"
WEIGHTS, CONFIG = "model.safetensors", "config.json"
LIMITS = {"image_size": 1024, "downsample": 64, "n_codes": 1 << 16, "code_dim": 256,
          "channels": 1024}
# Each field in LIMITS can still combine into a network of 5 billion parameters (channels
# 1024, downsample 64: 20 GB before the weights are read): the parameter count is checked too.
MAX_PARAMS = 1_000_000_000  # 4 GB of float32; LlamaGen's tokenizer has 72M


@dataclass
class VQConfig:
    image_size: int = 32
    downsample: int = 4  # a power of 2: 32x32 images -> 8x8 codes
    n_codes: int = 512
    code_dim: int = 8  # LlamaGen's: low-dimensional, L2-normalised lookup
    channels: int = 64  # width of the first stage; doubles at each downsampling
    beta: float = 0.25  # commitment weight

    def __post_init__(self):
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise InputError(f"VQConfig.{name} must be an integer in 1..{limit}, got "
                                 f"{value!r}")
        if self.downsample & (self.downsample - 1) or self.downsample < 2:
            raise InputError(f"VQConfig.downsample must be a power of 2 >= 2, got "
                             f"{self.downsample}")
        if self.image_size % self.downsample:
            raise InputError(f"VQConfig.image_size {self.image_size} is not a multiple of "
                             f"downsample {self.downsample}")
        if self.channels % 8:
            raise InputError(f"VQConfig.channels must be a multiple of 8, got {self.channels}")
        if not (isinstance(self.beta, (int, float)) and 0 <= self.beta <= 10):
            raise InputError(f"VQConfig.beta must be in [0, 10], got {self.beta!r}")
        check_num_params("VQConfig", self.num_params(), MAX_PARAMS)

    def num_params(self) -> int:
        """Parameters of the tokenizer this config builds, computed without building it."""
        w, d = self.widths(), self.code_dim

        def conv(i: int, o: int, k: int) -> int:
            return i * o * k * k + o

        def res(ch: int) -> int:  # two GroupNorms and two 3x3 convs
            return 18 * ch * ch + 6 * ch

        enc = (conv(3, w[0], 3) + res(w[0]) + 2 * w[-1] + conv(w[-1], d, 1)
               + sum(conv(w[i], w[i + 1], 4) + res(w[i + 1]) for i in range(self.levels)))
        dec = (conv(d, w[-1], 3) + res(w[-1]) + 2 * w[0] + conv(w[0], 3, 3)
               + sum(conv(w[i + 1], w[i], 3) + res(w[i]) for i in range(self.levels)))
        return enc + self.n_codes * d + dec

    @property
    def grid(self) -> int:
        """Side of the code grid: image_size / downsample."""
        return self.image_size // self.downsample

    @property
    def levels(self) -> int:
        return int(math.log2(self.downsample))

    def widths(self) -> list[int]:
        return [min(self.channels * 2**i, 4 * self.channels) for i in range(self.levels + 1)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VQConfig:
        if not isinstance(d, dict):
            raise InputError(f"VQConfig must be a JSON object, got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise InputError(f"unknown VQConfig keys {unknown}; known keys: {known}")
        return cls(**d)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.block = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, 1, 1),
                                   nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, 1, 1))

    def forward(self, x):
        return x + self.block(x)


class VQTokenizer(nn.Module):
    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        w = config.widths()
        enc: list[nn.Module] = [nn.Conv2d(3, w[0], 3, 1, 1), ResBlock(w[0])]
        for i in range(config.levels):  # each halves the side
            enc += [nn.Conv2d(w[i], w[i + 1], 4, 2, 1), ResBlock(w[i + 1])]
        enc += [nn.GroupNorm(8, w[-1]), nn.SiLU(), nn.Conv2d(w[-1], config.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.codebook = nn.Embedding(config.n_codes, config.code_dim)
        nn.init.normal_(self.codebook.weight)
        dec: list[nn.Module] = [nn.Conv2d(config.code_dim, w[-1], 3, 1, 1), ResBlock(w[-1])]
        for i in reversed(range(config.levels)):  # upsampling by 2, as decoders do
            dec += [nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(w[i + 1], w[i], 3, 1, 1), ResBlock(w[i])]
        dec += [nn.GroupNorm(8, w[0]), nn.SiLU(), nn.Conv2d(w[0], 3, 3, 1, 1)]
        self.decoder = nn.Sequential(*dec)
        # steps since each code was last used: dead codes are restarted (see restart_dead)
        self.register_buffer("idle", torch.zeros(config.n_codes, dtype=torch.long))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- images <-> tensors
    @staticmethod
    def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
        if not isinstance(images, torch.Tensor):  # torch wants a writable array
            images = torch.from_numpy(np.require(images, requirements="W"))
        x = images
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0

    @staticmethod
    def to_images(x: torch.Tensor) -> np.ndarray:
        """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
        x = ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()

    # -- the bottleneck
    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised encoder output (B, grid*grid, code_dim)."""
        z = self.encoder(x)
        return F.normalize(z.flatten(2).transpose(1, 2), dim=-1)

    def _lookup(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code by cosine similarity: (B, N, D) -> (B, N) long."""
        return (z @ F.normalize(self.codebook.weight, dim=-1).T).argmax(-1)

    def quantized(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N) codes -> (B, D, grid, grid) normalised code vectors."""
        g = self.config.grid
        q = F.normalize(self.codebook(codes), dim=-1)
        return q.transpose(1, 2).reshape(len(codes), self.config.code_dim, g, g)

    def forward(self, x: torch.Tensor):
        """Reconstruction, codes, the VQ loss (codebook + beta * commitment) and the
        normalised latents (for dead-code restarts)."""
        z = self._latents(x)
        codes = self._lookup(z)
        q = F.normalize(self.codebook(codes), dim=-1)
        vq_loss = F.mse_loss(q, z.detach()) + self.config.beta * F.mse_loss(z, q.detach())
        q = z + (q - z).detach()  # straight-through: the decoder's gradient reaches the encoder
        g = self.config.grid
        recon = self.decoder(q.transpose(1, 2).reshape(len(x), self.config.code_dim, g, g))
        return recon, codes, vq_loss, z.detach()

    @torch.inference_mode()
    def encode(self, images: np.ndarray, batch_size: int = 64) -> torch.Tensor:
        """uint8 (B, S, S, 3) -> codes (B, grid*grid) long, in raster order."""
        images = self._check(images)
        out = [self._lookup(self._latents(self.to_input(images[i:i + batch_size]).to(
            self.codebook.weight.device))).cpu() for i in range(0, len(images), batch_size)]
        return torch.cat(out)

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """codes (B, grid*grid) -> uint8 (B, S, S, 3): every pixel comes from the decoder."""
        n = self.config.grid**2
        if codes.dtype != torch.long or codes.dim() != 2 or codes.shape[1] != n:
            raise InputError(f"codes must be int64 (B, {n}), got {codes.dtype} "
                             f"{tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.config.n_codes):
            raise InputError(f"codes must lie in 0..{self.config.n_codes - 1}")
        dev = self.codebook.weight.device
        return np.concatenate([self.to_images(self.decoder(self.quantized(
            codes[i:i + batch_size].to(dev)))) for i in range(0, len(codes), batch_size)])

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """Encode then decode: the "final component" of a VQ generator applied to real images."""
        return self.decode(self.encode(images))

    def _check(self, images) -> np.ndarray:
        images = np.asarray(images)
        s = self.config.image_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (s, s, 3):
            raise InputError(f"images must be uint8 (N, {s}, {s}, 3) for this tokenizer, got "
                             f"{images.dtype} {images.shape}")
        return images

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor, used: torch.Tensor, patience: int,
                     generator: torch.Generator) -> int:
        """Count idle steps per code; restart codes idle for ``patience`` steps on random
        encoder outputs ``z`` (N, D) of this batch. Returns how many were restarted."""
        self.idle += 1
        self.idle[used] = 0
        dead = (self.idle >= patience).nonzero().flatten()
        if len(dead):
            pick = torch.randint(len(z), (len(dead),), generator=generator)
            self.codebook.weight[dead] = z[pick].to(self.codebook.weight.dtype)
            self.idle[dead] = 0
        return len(dead)


class VQCodec:
    """The VQ family's codec (see `igpt_forensics.palette`): images <-> code tokens.

    A token covers a ``scale x scale`` cell (``scale = downsample``), so masks are made at
    code granularity: a code is sampled when any pixel of its cell is masked, and decoding
    re-synthesises every pixel of the image, also those of the kept codes.
    """

    family = "vq"

    def __init__(self, tokenizer: VQTokenizer, sha256: str):
        self.tokenizer = tokenizer.eval()
        self.sha256 = sha256  # of the tokenizer's weights file
        self.scale = tokenizer.config.downsample
        self.grid = tokenizer.config.grid
        self.image_size = tokenizer.config.image_size

    @classmethod
    def load(cls, path: str | Path) -> VQCodec:
        """A tokenizer folder (train-tokenizer) -> its codec."""
        model, config = load_tokenizer(path)
        return cls(model, config["sha256"])

    @property
    def n_tokens(self) -> int:
        return self.tokenizer.config.n_codes

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) -> codes (N, grid*grid) int64, raster order."""
        return self.tokenizer.encode(images).numpy()

    def decode(self, tokens: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
        """codes (N, grid*grid) -> uint8 (N, S, S, 3), every pixel from the decoder."""
        if shape is not None and tuple(shape) != (self.image_size, self.image_size):
            raise InputError(f"this tokenizer decodes {self.image_size}x{self.image_size} "
                             f"images, not {shape[0]}x{shape[1]}")
        tokens = np.asarray(tokens)
        if tokens.ndim != 2:
            raise InputError(f"codes must have shape (N, {self.grid**2}), got {tokens.shape}")
        return self.tokenizer.decode(torch.from_numpy(tokens.astype(np.int64)))

    def quantize(self, images: np.ndarray) -> np.ndarray:
        """Encode then decode: the "final component" of the generator applied to real images
        (the ``recon`` fakes)."""
        return self.decode(self.encode(images))

    def psnr(self, images: np.ndarray) -> float:
        """Round-trip PSNR in dB over a batch of images (as `Palette.psnr`)."""
        return psnr(images, self.quantize(images))

    def twin(self, images: np.ndarray) -> np.ndarray:
        """The real image in this family's format, labeled real (``qreal``). A VQ generator
        has no real-image format: every pixel it outputs is decoded, so a decoded real image
        is a fake (``recon``). The twin is the real image itself."""
        return np.array(images, copy=True)

    def token_mask(self, mask: np.ndarray) -> np.ndarray:
        """Pixel mask (N, S, S) -> code mask (N, grid*grid): a code whose cell holds any
        masked pixel is sampled."""
        mask = np.asarray(mask, dtype=bool)
        n, g, d = len(mask), self.grid, self.scale
        if mask.shape[1:] != (self.image_size, self.image_size):
            raise InputError(f"mask must be {self.image_size}x{self.image_size}, got "
                             f"{mask.shape[1:]}")
        return mask.reshape(n, g, d, g, d).any(axis=(2, 4)).reshape(n, g * g)

    def cell_mask(self, token_mask: np.ndarray, size: int) -> np.ndarray:
        """Code mask (N, grid*grid) -> the pixels of those codes' cells (N, S, S)."""
        if size != self.image_size:
            raise InputError(f"size {size} != the tokenizer's image size {self.image_size}")
        g, d = self.grid, self.scale
        cells = np.asarray(token_mask, dtype=bool).reshape(-1, g, g)
        return cells.repeat(d, axis=1).repeat(d, axis=2)

    def __repr__(self) -> str:
        return (f"VQCodec({self.n_tokens} codes, {self.grid}x{self.grid} for "
                f"{self.image_size}x{self.image_size}, sha256={self.sha256[:12]})")


# -- checkpoints ------------------------------------------------------------------------------

def save_tokenizer(model: VQTokenizer, out_dir: str | Path, meta: dict | None = None) -> Path:
    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out_dir / WEIGHTS, save(state, metadata={"format": FORMAT}))
    atomic_write_text(out_dir / CONFIG, json.dumps(
        {"format": FORMAT, "family": "vq", "model": model.config.to_dict(),
         "image_size": model.config.image_size, "meta": meta or {}}, indent=1))
    return out_dir


def load_tokenizer(path: str | Path, device: str | torch.device = "cpu",
                   ) -> tuple[VQTokenizer, dict]:
    """A tokenizer folder -> (model, config); bounds checked before anything is built."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a tokenizer folder (expected {CONFIG} and {WEIGHTS})")
    config = read_json(path / CONFIG, f"{path / CONFIG}: missing (not a tokenizer folder?)",
                       f"{path / CONFIG}: unreadable tokenizer config", FORMAT)
    check_sha256sums(path)
    try:  # bounds checked before anything is built
        vq_config = VQConfig.from_dict(config.get("model"))
    except (TypeError, InputError) as e:
        raise InputError(f"{path / CONFIG}: bad tokenizer config ({e})") from None
    model = VQTokenizer(vq_config)
    if (path / WEIGHTS).exists():
        check_regular(path / WEIGHTS, "safetensors weights file")  # a FIFO would hang
    try:
        model.load_state_dict(load_file(path / WEIGHTS), strict=True)
    except FileNotFoundError:
        raise InputError(f"{path / WEIGHTS}: missing") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise InputError(f"{path / WEIGHTS}: unusable weights "
                         f"({str(e).splitlines()[0]})") from None
    config["sha256"] = sha256_file(path / WEIGHTS)
    config["path"] = str(path)
    return model.to(device).eval(), config


# -- training ---------------------------------------------------------------------------------

@torch.inference_mode()
def evaluate_tokenizer(model: VQTokenizer, images: np.ndarray) -> dict:
    """Reconstruction PSNR (dB), codebook usage and code perplexity on ``images``."""
    codes = model.encode(images)
    recon = model.decode(codes)
    counts = torch.bincount(codes.flatten(), minlength=model.config.n_codes).double()
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return {"psnr": psnr(images, recon), "codes_used": int((counts > 0).sum()),
            "perplexity": math.exp(entropy)}


def train_tokenizer(cfg: TokenizerTrainConfig, out: str | Path, resume: bool = False,
                    on_step: Callable[[int, float, dict | None], None] | None = None,
                    stop_after: int | None = None) -> dict:
    """Train (or resume exactly) a VQ tokenizer; write ``out`` as a tokenizer folder.

    The batch of step ``s`` depends on ``(seed, s)`` only and the state (weights, optimizer,
    idle counters) is saved atomically, so a killed run resumed ends bit-identical.
    """

    cfg.check()
    out = Path(out)
    saved = out / "train_config.json"
    if resume:
        settings = read_json(saved, f"{out}: nothing to resume (no train_config.json)",
                             f"{saved}: unreadable run settings")
        if settings != json.loads(json.dumps(asdict(cfg))):
            raise InputError(f"{out}: --resume with different settings")
    elif (out / "state" / "latest").exists():
        raise InputError(f"{out}: holds a run already; pass --resume or choose another --out")
    device = pick_device(cfg.device)
    t0 = time.perf_counter()
    source = ImageSource(cfg.data)
    train_photos = PatchSampler(source, cfg.size, cfg.seed, split="train")
    held_photos = PatchSampler(source, cfg.size, cfg.seed + 1, split="heldout")
    train, _ = train_photos.patches(range(cfg.train_patches))
    held, _ = held_photos.patches(range(cfg.eval_patches))
    photos = source.describe(train_photos.good + held_photos.good)
    if not resume:
        atomic_write_text(saved, json.dumps(asdict(cfg)))

    torch.manual_seed(cfg.seed)
    model = VQTokenizer(cfg.vq_config()).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95),
                            weight_decay=cfg.weight_decay)
    step, history = load_state(out, model, opt, cfg.steps) if resume else (0, [])
    train_t = torch.from_numpy(train)
    last = history[-1] if history else None
    done = 0
    model.train()
    while step < cfg.steps:
        idx, flip = batch_indices(step, cfg, len(train_t))
        batch = train_t[idx]
        batch = torch.where(flip[:, None, None, None], batch.flip(2), batch)
        x = model.to_input(batch).to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        recon, codes, vq_loss, z = model(x)
        rec_loss = F.mse_loss(recon, x)
        loss = rec_loss + vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        model.restart_dead(z.flatten(0, 1), codes.unique(), cfg.restart_every, gen)
        step += 1
        done += 1
        ev = None
        if step % cfg.eval_every == 0 or step == cfg.steps:
            model.eval()
            ev = evaluate_tokenizer(model, held)
            model.train()
            last = {"step": step, "loss": loss.item(), "seconds": time.perf_counter() - t0,
                    **{f"heldout_{k}": v for k, v in ev.items()}}
            history.append(last)
        if on_step:
            on_step(step, rec_loss.item(), ev)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_state(out, step, model, opt, history)
            save_tokenizer(model, out, {"trained_by": "igpt-forensics train-tokenizer",
                                        "step": step, "heldout": last, "train": asdict(cfg),
                                        "photos": photos})
        if stop_after is not None and done >= stop_after:
            break
    return {"step": step, "heldout": last, "params": model.num_params(), "model": model,
            "seconds": time.perf_counter() - t0, "skipped": source.report.bad}
