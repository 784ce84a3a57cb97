"""The pixel-GPT generator: model, presets, sampling and likelihood, and iGPT weight import."""

from .hf_import import import_hf
from .model import (
    GPTConfig,
    KVCache,
    PixelGPT,
    create_model,
    list_presets,
    preset_config,
    register_preset,
    uniforms,
)

__all__ = [
    "GPTConfig",
    "KVCache",
    "PixelGPT",
    "create_model",
    "import_hf",
    "list_presets",
    "preset_config",
    "register_preset",
    "uniforms",
]
