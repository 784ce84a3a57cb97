"""What a generator is configured with, in a module that imports no torch: the model's shape
(`GPTConfig`) and its presets, the sampling settings, and the training runs' settings
(`TrainConfig`, `TokenizerTrainConfig`). The command line reads its defaults here, so that
``--help`` is fast; the modules that build and train models import these names from here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from igpt_forensics.errors import InputError

if TYPE_CHECKING:
    from .vq import VQConfig

FAMILIES = ("pixel", "vq")  # pixel: a GPT over palette pixels; vq: over a tokenizer's codes
PRECISIONS = ("fp32", "bf16")

# Upper bounds checked before a model is built: a crafted config.json must not allocate
# terabytes. iGPT-L (1.4B parameters, 512 colors, 64x64 at most) fits well inside them.
LIMITS = {"vocab_size": 1 << 16, "image_size": 256, "n_layer": 256, "n_head": 256,
          "n_embd": 1 << 14}
MAX_PARAMS = 4_000_000_000  # 16 GB of float32


def check_num_params(what: str, n: int, limit: int = MAX_PARAMS) -> None:
    """Refuse a config whose model would hold more than ``limit`` parameters, before it is
    built (``n`` computed from the config): one line with the size it would take."""
    if n > limit:
        raise InputError(f"{what} would build {n:,} parameters ({n * 4 / 2**30:.0f} GiB), "
                         f"above the limit {limit:,}")


@dataclass
class GPTConfig:
    vocab_size: int = 512  # palette colors; the start token is one more embedding row
    image_size: int = 32  # images are image_size x image_size, one token per pixel
    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("vocab_size", "image_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
            if value > LIMITS[name]:
                raise InputError(f"GPTConfig.{name} = {value} is above the limit "
                                 f"{LIMITS[name]}")
        if self.n_embd % self.n_head:
            raise InputError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by "
                             f"n_head ({self.n_head})")
        if (isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float))
                or not 0.0 <= self.dropout < 1.0):
            raise InputError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        check_num_params("GPTConfig", self.num_params())

    def num_params(self) -> int:
        """Parameters of the model this config builds, computed without building it."""
        V, C, L = self.vocab_size, self.n_embd, self.n_layer
        block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
        return (V + 1) * C + self.n_positions * C + L * block + C + V * C

    @property
    def n_positions(self) -> int:
        return self.image_size**2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise InputError(f"unknown GPTConfig keys {unknown}; known keys: {known}")
        return cls(**d)


_PRESETS: dict = {}


def register_preset(name: str):
    """Decorator: ``@register_preset("name")`` on a function returning GPTConfig kwargs."""
    def register(fn):
        if name in _PRESETS:
            raise ValueError(f"preset {name!r} is already registered")
        _PRESETS[name] = fn
        return fn
    return register


@register_preset("tiny")
def _tiny() -> dict:  # for tests: a forward pass takes milliseconds
    return dict(n_layer=2, n_head=2, n_embd=64)


@register_preset("mini")
def _mini() -> dict:  # the bundled default: ~1.0M parameters, trains in minutes on 2 cores
    return dict(n_layer=4, n_head=4, n_embd=128)


@register_preset("small")
def _small() -> dict:  # the CPU default: ~3.7M parameters with 512 colors at 32x32
    return dict(n_layer=4, n_head=8, n_embd=256)


@register_preset("igpt-s")
def _igpt_s() -> dict:  # iGPT-S's shape (~76M parameters): a GPU preset
    return dict(n_layer=24, n_head=8, n_embd=512)


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def preset_config(preset: str, **overrides) -> GPTConfig:
    if preset not in _PRESETS:
        raise InputError(f"unknown preset {preset!r}; known presets: {', '.join(list_presets())}")
    return GPTConfig.from_dict({**_PRESETS[preset](), **overrides})


# What `complete` and `generate` sample with unless told otherwise: the setting whose top-half
# completions of held-out photos the trivial baselines separate least from quantized reals
# (benchmarks/generator_eval.py, docs/generator.md). `PixelGPT.sample` itself defaults to the
# model's own distribution (temperature 1, no truncation), which the likelihood detector needs.
COMPLETION_SAMPLING = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    """Sampling settings, checked once at the edge (``complete``, ``generate``, ``sample``)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and 0 < temperature <= 100):
        raise InputError(f"--temperature must be a number in (0, 100], got {temperature}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise InputError(f"--top-k must be an integer >= 0 (0 = off), got {top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0:
        raise InputError(f"--top-p must be in (0, 1] (1 = off), got {top_p}")


# -- training runs --------------------------------------------------------------------------

@dataclass
class Schedule:
    """What every training run here shares: steps of a batch, AdamW's learning rate with
    linear warm-up and cosine decay to ``min_lr`` (`lr_at`), weight decay, gradient clipping.
    The batch of step ``s`` comes from ``(seed, s)`` alone (`batch_indices`)."""

    steps: int = 2000
    batch_size: int = 16
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0


@dataclass
class TrainConfig(Schedule):
    data: str | list[str] = "builtin"  # one data spec or several (their photos together)
    size: int = 32
    colors: int = 512
    preset: str = "small"
    train_patches: int = 20000  # pool of training patches drawn once (seeded)
    eval_patches: int = 256  # held-out patches for bits/dim
    eval_every: int = 100
    checkpoint_every: int = 100
    flip: bool = True  # random horizontal flips
    seed: int = 0
    palette: str | None = None  # a palette JSON to use instead of fitting one
    device: str = "auto"
    precision: str = "fp32"  # fp32, or bf16: autocast matmuls (2.2x faster on a bf16 CPU)
    overrides: dict = field(default_factory=dict)  # GPTConfig fields over the preset
    family: str = "pixel"  # pixel: a GPT over palette pixels; vq: over a tokenizer's codes
    tokenizer: str | None = None  # vq: the trained tokenizer folder (train-tokenizer)

    def check(self) -> None:
        if self.family not in FAMILIES:
            raise InputError(f"--family must be one of {', '.join(FAMILIES)}, got "
                             f"{self.family!r}")
        if self.family == "vq" and not self.tokenizer:
            raise InputError("--family vq needs --tokenizer FOLDER (made by train-tokenizer)")
        if self.family == "pixel" and self.tokenizer:
            raise InputError("--tokenizer is for --family vq; the pixel family uses a palette")
        if self.family == "vq" and self.palette:
            raise InputError("--palette is for --family pixel; the vq family uses --tokenizer")
        if self.steps < 1:
            raise InputError(f"--steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.size < 2:
            raise InputError(f"--size must be >= 2, got {self.size}")
        if not 0 < self.lr < 1:
            raise InputError(f"--lr must be in (0, 1), got {self.lr}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, "
                             f"got {self.precision!r}")


@dataclass
class TokenizerTrainConfig(Schedule):
    batch_size: int = 32
    weight_decay: float = 0.0
    data: str | list[str] = "builtin"
    size: int = 32
    downsample: int = 4
    n_codes: int = 512
    code_dim: int = 8
    channels: int = 64
    restart_every: int = 50  # a code idle this many steps is restarted
    train_patches: int = 20000
    eval_patches: int = 256
    eval_every: int = 100
    checkpoint_every: int = 100
    flip: bool = True
    seed: int = 0
    device: str = "auto"

    def check(self) -> None:
        for name in ("steps", "batch_size", "train_patches", "eval_patches", "eval_every",
                     "checkpoint_every", "restart_every"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1")
        if not 0 < self.lr < 1:
            raise InputError(f"--lr must be in (0, 1), got {self.lr}")
        self.vq_config()

    def vq_config(self) -> VQConfig:
        from .vq import VQConfig  # the tokenizer's module (torch), on use

        return VQConfig(image_size=self.size, downsample=self.downsample,
                        n_codes=self.n_codes, code_dim=self.code_dim, channels=self.channels)
