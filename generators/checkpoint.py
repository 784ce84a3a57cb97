"""One checkpoint format: a folder with ``model.safetensors`` and ``config.json``.

``config.json`` holds the model shape (`GPTConfig`), hence the image size, and the palette, so
a checkpoint alone turns images into tokens and back. Loading never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from igpt_forensics.assets import ASSETS
from igpt_forensics.errors import InputError
from igpt_forensics.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_sha256sums,
    read_json,
    sha256_file,
)
from igpt_forensics.palette import Palette

from .model import GPTConfig, PixelGPT

FORMAT = "igpt-forensics-pixelgpt-v1"
WEIGHTS, CONFIG = "model.safetensors", "config.json"
DEFAULT_MODEL = ASSETS / "default-generator"


def save_checkpoint(model: PixelGPT, palette: Palette, out_dir: str | Path,
                    meta: dict | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write ``out_dir/model.safetensors`` and ``out_dir/config.json`` (each atomically).

    ``dtype=torch.float16`` halves the file (the bundled default ships so); loading always
    gives float32 parameters.
    """
    if palette.n_colors != model.config.vocab_size:
        raise InputError(f"palette has {palette.n_colors} colors, model expects "
                         f"{model.config.vocab_size}")
    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().to(dtype or v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    atomic_write_bytes(out_dir / WEIGHTS, save(state, metadata={"format": FORMAT}))
    config = {"format": FORMAT, "model": model.config.to_dict(),
              "image_size": model.config.image_size, "palette": palette.to_dict(),
              "meta": meta or {}}
    atomic_write_text(out_dir / CONFIG, json.dumps(config, indent=1))
    return out_dir


def read_config(path: str | Path) -> dict:
    path = Path(path)
    cfg_path = path / CONFIG
    if not path.is_dir():
        raise InputError(f"{path}: not a checkpoint folder (expected {CONFIG} and {WEIGHTS})")
    config = read_json(cfg_path, f"{cfg_path}: missing (not a checkpoint folder?)",
                       f"{cfg_path}: unreadable checkpoint config", FORMAT)
    return config


def load_checkpoint(path: str | Path | None = None, device: str | torch.device = "cpu",
                    ) -> tuple[PixelGPT, Palette, dict]:
    """Load a checkpoint folder (``None``: the bundled default) -> (model, palette, config)."""
    path = Path(path) if path is not None else DEFAULT_MODEL
    config = read_config(path)
    check_sha256sums(path)  # a packaged checkpoint (export-model) lists its files' hashes
    try:
        model = PixelGPT(GPTConfig.from_dict(config["model"]))
    except (KeyError, TypeError) as e:
        raise InputError(f"{path / CONFIG}: bad model config ({e})") from None
    palette = Palette.from_dict(config.get("palette", {}), name=str(path / CONFIG))
    if palette.n_colors != model.config.vocab_size:
        raise InputError(f"{path / CONFIG}: palette has {palette.n_colors} colors, model "
                         f"expects {model.config.vocab_size}")
    weights = path / WEIGHTS
    try:
        state = load_file(weights)
    except FileNotFoundError:
        raise InputError(f"{weights}: missing") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{weights}: corrupt weights file ({e})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise InputError(f"{weights}: weights do not match config.json ({first})") from None
    model.to(device).eval()
    config["sha256"] = sha256_file(weights)
    config["path"] = str(path)
    return model, palette, config
