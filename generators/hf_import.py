"""Import an official iGPT checkpoint in Hugging Face's ImageGPT format.

A checkpoint folder holds ``config.json`` (ImageGPTConfig), the weights (``model.safetensors``,
possibly sharded with an ``.index.json`` whose shards lie in the folder) and
``preprocessor_config.json``, whose ``clusters`` are the palette as K x 3 floats in [-1, 1].
Only safetensors are read: a ``pytorch_model.bin`` is a pickle, refused, never unpickled.
PixelGPT uses ImageGPT's parameter names, so the import checks the config, transposes GPT-2's
Conv1D matrices (stored (in, out), where nn.Linear keeps (out, in)) and checks every shape.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from igpt_forensics.errors import InputError
from igpt_forensics.files import check_regular, check_relative, read_json
from igpt_forensics.palette import Palette

from .config import GPTConfig
from .model import NORM_EPS, PixelGPT

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")  # refused: never unpickled
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# ImageGPT's causal-mask buffers, which older checkpoints saved alongside the weights.
IGNORED = ("attn.bias", "attn.masked_bias")


def import_hf(src: str | Path) -> tuple[PixelGPT, Palette]:
    """Read a Hugging Face ImageGPT folder: the model (in eval mode, float32) and its palette."""
    src = Path(src)
    if not src.is_dir():
        raise InputError(f"{src}: no such checkpoint folder")
    config = _config(src / "config.json")
    palette = _palette(src / "preprocessor_config.json", config.vocab_size)
    state = _weights(src)
    # Built on the meta device: the checkpoint supplies every tensor, so a random init of a
    # model with up to a billion parameters would be wasted time.
    with torch.device("meta"):
        model = PixelGPT(config)
    model.load_state_dict(_rename(state, model, src), strict=True, assign=True)
    return model.eval(), palette


def _read_json(path: Path) -> dict:
    d = read_json(path, f"{path}: no such file", f"{path}: not a JSON file")
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a JSON object")
    return d


def _config(path: Path) -> GPTConfig:
    d = _read_json(path)
    if d.get("model_type", "imagegpt") != "imagegpt":
        raise InputError(f"{path}: model_type is {d['model_type']!r}, not 'imagegpt'")
    for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
        if key not in d:
            raise InputError(f"{path}: missing field {key!r}")
        if isinstance(d[key], bool) or not isinstance(d[key], int):  # 1e400, "64", 32.9
            raise InputError(f"{path}: {key} must be an integer, got {d[key]!r}")
    vocab, n_pos, n_embd = d["vocab_size"], d["n_positions"], d["n_embd"]
    n_layer, n_head = d["n_layer"], d["n_head"]
    try:
        eps = float(d.get("layer_norm_epsilon", NORM_EPS))
    except (TypeError, ValueError, OverflowError) as e:
        raise InputError(f"{path}: bad layer_norm_epsilon ({e})") from None
    # Each HF option that changes the computation must be at the value PixelGPT implements.
    # (reorder_and_upcast_attn only upcasts attention to float32, which we do in float32.)
    expected = {"activation_function": "quick_gelu", "scale_attn_weights": True,
                "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False}
    for key, want in expected.items():
        if d.get(key, want) != want:
            raise InputError(f"{path}: {key}={d[key]!r} is not supported (PixelGPT needs {want!r})")
    if not math.isclose(eps, NORM_EPS):
        raise InputError(f"{path}: layer_norm_epsilon={eps} is not supported "
                         f"(PixelGPT uses {NORM_EPS})")
    if d.get("n_inner") not in (None, 4 * n_embd):
        raise InputError(f"{path}: n_inner={d['n_inner']} is not supported (PixelGPT uses "
                         f"4 * n_embd = {4 * n_embd})")
    side = math.isqrt(max(n_pos, 0))
    if side * side != n_pos or n_pos < 1:
        raise InputError(f"{path}: n_positions={n_pos} is not a square image")
    try:
        # vocab_size counts the start token, which PixelGPT adds itself
        return GPTConfig(vocab_size=vocab - 1, image_size=side, n_layer=n_layer, n_head=n_head,
                         n_embd=n_embd, dropout=0.0)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None


def _palette(path: Path, n_colors: int) -> Palette:
    clusters = _read_json(path).get("clusters")
    try:
        c = np.asarray(clusters, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit integer
        c = np.empty(0)
    if c.shape != (n_colors, 3) or not np.isfinite(c).all():
        raise InputError(f"{path}: 'clusters' must be {n_colors} x 3 finite numbers "
                         f"(one per color of config.json's vocab_size - 1), got shape {c.shape}")
    # iGPT's clusters live in [-1, 1]; map back to 0..255 exactly as HF's own example does
    colors = np.clip(np.rint((c + 1.0) * 127.5), 0, 255).astype(np.uint8)
    try:
        return Palette(colors)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None


def _weights(src: Path) -> dict[str, torch.Tensor]:
    name = next((n for n in WEIGHT_FILES if os.path.lexists(src / n)), None)
    if name is None:
        pickle = next((n for n in PICKLES if os.path.lexists(src / n)), None)
        if pickle is not None:
            raise InputError(f"{src / pickle}: a pickle, which is never loaded (it can run "
                             "code); convert the checkpoint to model.safetensors first")
        raise InputError(f"{src}: no weights (looked for {', '.join(WEIGHT_FILES)})")
    if not name.endswith(".index.json"):
        return _load_file(src / name)
    weight_map = _read_json(src / name).get("weight_map")
    if not isinstance(weight_map, dict):
        raise InputError(f"{src / name}: no 'weight_map'")
    shards = set()
    for shard in weight_map.values():  # each a safetensors file named inside the folder
        # a string check, not a resolved one: the Hugging Face cache links each file of a
        # snapshot folder to its blob outside it
        path = src / check_relative(shard, f"{src / name}")
        if path.suffix != ".safetensors":
            raise InputError(f"{src / name}: shard {shard!r} is not a .safetensors file "
                             "(a pickle is never loaded)")
        shards.add(path)
    state = {}
    for shard in sorted(shards):
        state.update(_load_file(shard))
    return state


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    check_regular(path, "safetensors weights file")  # a FIFO would hang the reader
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except Exception as e:  # a corrupt file raises whatever its parser raises
        raise InputError(f"{path}: cannot read weights ({type(e).__name__}: {e})") from None


def _rename(state: dict, model: PixelGPT, src: Path) -> dict[str, torch.Tensor]:
    """HF keys -> PixelGPT keys: same names, Conv1D transposed, float32, every shape checked."""
    # ImageGPTModel checkpoints (no head) have no "transformer." prefix; add it for matching.
    state = {(k if k.startswith(("transformer.", "lm_head.")) else "transformer." + k): v
             for k, v in state.items()}
    out = {}
    for key, param in model.state_dict().items():
        if key not in state:
            raise InputError(f"{src}: weights lack {key!r}")
        t = state.pop(key)
        if key.endswith(CONV1D):
            t = t.t()
        if tuple(t.shape) != tuple(param.shape):
            raise InputError(f"{src}: {key!r} has shape {tuple(t.shape)}, config.json implies "
                             f"{tuple(param.shape)}")
        out[key] = t.to(torch.float32).contiguous()
    extra = sorted(k for k in state if not k.endswith(IGNORED))
    if extra:
        raise InputError(f"{src}: unexpected weights {extra[:3]}{' ...' if len(extra) > 3 else ''}")
    return out
