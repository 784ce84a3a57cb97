"""One checkpoint format: a folder with ``model.safetensors`` and ``config.json``.

``config.json`` names the generator's family and holds the model shape (`GPTConfig`) and the
image size, and what turns images into tokens and back (the codec), so a checkpoint alone
completes images:

- ``"family": "pixel"``: iGPT's pixel-GPT; the palette's colors are in config.json and a
  token is one pixel;
- ``"family": "vq"``: a GPT over the codes of a VQ tokenizer (LlamaGen style); the
  tokenizer's weights are ``tokenizer.safetensors`` beside the model (their sha256 and shape
  in config.json), a token is a ``downsample x downsample`` cell, and the GPT's
  ``image_size`` is the side of the code grid.

Loading never unpickles anything. ``--model`` also takes the names of the bundled generators
(`igpt_forensics.assets.GENERATOR_NAMES`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from igpt_forensics.assets import GENERATOR_NAMES
from igpt_forensics.errors import InputError
from igpt_forensics.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_regular,
    check_sha256sums,
    read_json,
    sha256_file,
)
from igpt_forensics.palette import Palette

from .config import FAMILIES, GPTConfig
from .model import PixelGPT

if TYPE_CHECKING:
    from .vq import VQCodec

FORMAT = "igpt-forensics-pixelgpt-v1"
WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.json", "tokenizer.safetensors"
DEFAULT_MODEL = GENERATOR_NAMES["pixel-default"]


def resolve_model(path: str | Path | None) -> Path:
    """``None`` or ``"pixel-default"``: the bundled pixel-GPT; ``"vq-default"``: the bundled
    VQ generator; anything else: a checkpoint folder (``./vq-default`` for a folder of that
    name)."""
    name = "pixel-default" if path is None else str(path)
    if name not in GENERATOR_NAMES:
        return Path(path)
    found = GENERATOR_NAMES[name]
    if not found.is_dir():
        raise InputError(f"the bundled generator {name!r} is not installed ({found} is "
                         "missing); pass --model CHECKPOINT")
    return found


def _weights(module: torch.nn.Module, dtype: torch.dtype | None) -> dict:
    return {k: v.detach().cpu().to(dtype if dtype and v.is_floating_point() else v.dtype)
            .contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(model: PixelGPT, codec, out_dir: str | Path,
                    meta: dict | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write ``out_dir/model.safetensors`` and ``out_dir/config.json`` (each atomically),
    and for the VQ family ``out_dir/tokenizer.safetensors``.

    ``codec``: a `Palette` (pixel family) or a `generators.vq.VQCodec`. ``dtype=torch.float16``
    halves the files (the bundled defaults ship so); loading always gives float32 parameters.
    """
    if codec.n_tokens != model.config.vocab_size:
        raise InputError(f"the {codec.family} codec has {codec.n_tokens} tokens, model "
                         f"expects {model.config.vocab_size}")
    out_dir = Path(out_dir)
    config = {"format": FORMAT, "family": codec.family, "model": model.config.to_dict(),
              "image_size": model.config.image_size * codec.scale}
    if codec.family == "pixel":
        config["palette"] = codec.to_dict()
    else:
        if codec.grid != model.config.image_size:
            raise InputError(f"the tokenizer's code grid is {codec.grid}x{codec.grid}, the "
                             f"model's {model.config.image_size}x{model.config.image_size}")
        blob = save(_weights(codec.tokenizer, dtype), metadata={"format": FORMAT})
        atomic_write_bytes(out_dir / TOKENIZER, blob)
        config["tokenizer"] = {"model": codec.tokenizer.config.to_dict(),
                               "sha256": hashlib.sha256(blob).hexdigest()}
    atomic_write_bytes(out_dir / WEIGHTS, save(_weights(model, dtype),
                                               metadata={"format": FORMAT}))
    config["meta"] = meta or {}
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


def generator_palette(model: str | Path | None = None) -> Palette:
    """The palette of a pixel-family checkpoint (default: the bundled default generator),
    read from its config.json alone: verifying a watermark never loads the weights."""
    if model is None and not Path(DEFAULT_MODEL).is_dir():
        raise InputError("no bundled default generator is installed; pass --palette or --model")
    folder = Path(model) if model is not None else Path(DEFAULT_MODEL)
    return Palette.from_dict(read_config(folder).get("palette", {}), name=str(folder))


def _built_to_fit(build: Callable[[], torch.nn.Module], weights: Path) -> torch.nn.Module:
    """``build()``, once the weights file's header (names and shapes, nothing else read)
    matches the module that ``build`` makes, built first on the meta device: a config.json of
    billions of parameters beside a small weights file is refused before it is allocated."""
    if weights.exists():
        check_regular(weights, "safetensors weights file")  # a FIFO would hang the reader
    with torch.device("meta"):
        need = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    try:
        with safe_open(weights, framework="pt") as f:
            have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except FileNotFoundError:
        raise InputError(f"{weights}: missing") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{weights}: corrupt weights file ({e})") from None
    if need != have:
        diff = sorted(set(need) ^ set(have)) or sorted(k for k in need if need[k] != have[k])
        k = diff[0]
        raise InputError(f"{weights}: weights do not match config.json ({k}: "
                         f"{have.get(k, 'missing')} saved, {need.get(k, 'none')} needed)")
    return build()


def _load_weights(module: torch.nn.Module, weights: Path) -> None:
    if weights.exists():
        check_regular(weights, "safetensors weights file")  # a FIFO would hang the reader
    try:
        state = load_file(weights)
    except FileNotFoundError:
        raise InputError(f"{weights}: missing") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{weights}: corrupt weights file ({e})") from None
    try:
        module.load_state_dict(state, strict=True)  # copies (and casts) into float32
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise InputError(f"{weights}: weights do not match config.json ({first})") from None


def _load_codec(path: Path, config: dict, model: PixelGPT):
    """The checkpoint's codec: its palette, or its VQ tokenizer (checked against config)."""
    family = config.get("family", "pixel")  # checkpoints made before the VQ family
    if family not in FAMILIES:
        raise InputError(f"{path / CONFIG}: unknown family {family!r} (known: "
                         f"{', '.join(FAMILIES)})")
    if family == "pixel":
        codec = Palette.from_dict(config.get("palette", {}), name=str(path / CONFIG))
    else:
        from .vq import VQCodec, VQConfig, VQTokenizer

        tok = config.get("tokenizer")
        if not isinstance(tok, dict) or not isinstance(tok.get("sha256"), str):
            raise InputError(f"{path / CONFIG}: a vq checkpoint needs a 'tokenizer' entry "
                             "with its 'model' and 'sha256'")
        try:  # bounds checked before anything is built
            tok_config = VQConfig.from_dict(tok.get("model"))
        except (InputError, TypeError) as e:
            raise InputError(f"{path / CONFIG}: bad tokenizer config ({e})") from None
        tokenizer = _built_to_fit(lambda: VQTokenizer(tok_config), path / TOKENIZER)
        if (path / TOKENIZER).is_file() and sha256_file(path / TOKENIZER) != tok["sha256"]:
            raise InputError(f"{path / TOKENIZER}: sha256 differs from config.json "
                             "(file altered?)")
        _load_weights(tokenizer, path / TOKENIZER)
        codec = VQCodec(tokenizer, tok["sha256"])
        if codec.grid != model.config.image_size:
            raise InputError(f"{path / CONFIG}: tokenizer grid {codec.grid} != model grid "
                             f"{model.config.image_size}")
    if codec.n_tokens != model.config.vocab_size:
        raise InputError(f"{path / CONFIG}: the {family} codec has {codec.n_tokens} tokens, "
                         f"model expects {model.config.vocab_size}")
    return codec


def load_checkpoint(path: str | Path | None = None, device: str | torch.device = "cpu",
                    ) -> tuple[PixelGPT, Palette | VQCodec, dict]:
    """Load a checkpoint folder or name (`resolve_model`) -> (model, codec, config).

    The codec is a `Palette` (pixel family) or a `generators.vq.VQCodec`; ``config`` gains
    ``family``, ``image_size`` (pixels), ``sha256`` (of the model weights) and ``path``.
    """
    path = resolve_model(path)
    config = read_config(path)
    check_sha256sums(path)  # a packaged checkpoint (export-model) lists its files' hashes
    try:  # bounds checked before anything is built
        gpt_config = GPTConfig.from_dict(config["model"])
    except (KeyError, TypeError, InputError) as e:
        raise InputError(f"{path / CONFIG}: bad model config ({e})") from None
    model = _built_to_fit(lambda: PixelGPT(gpt_config), path / WEIGHTS)
    codec = _load_codec(path, config, model)
    _load_weights(model, path / WEIGHTS)
    model.to(device).eval()
    if codec.family == "vq":
        codec.tokenizer.to(device)
    config["family"] = codec.family
    config["image_size"] = model.config.image_size * codec.scale
    config["sha256"] = sha256_file(path / WEIGHTS)
    config["path"] = str(path)
    return model, codec, config
