"""The pixel-GPT generator: model, presets, sampling and likelihood, and iGPT weight import.

Importing this package imports no torch; its names are imported from their modules when
first used, so that a light submodule (``config``) can be read on its own.
"""

_FROM = {"import_hf": "hf_import", "GPTConfig": "config", "KVCache": "model",
         "PixelGPT": "model", "create_model": "model", "list_presets": "config",
         "preset_config": "config", "register_preset": "config", "uniforms": "model"}

__all__ = sorted(_FROM)


def __getattr__(name: str):
    if name in _FROM:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_FROM[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
