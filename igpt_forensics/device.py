"""Where tensors run: CUDA when present, then Apple's MPS, else the CPU."""

from __future__ import annotations

import torch

from .errors import InputError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks the best available device; ``cpu``, ``cuda``, ``cuda:1``, ``mps`` force one."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device: unknown device '{name}' (auto, cpu, cuda, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


def describe() -> dict[str, str]:
    """What this process computes on, for `info` and provenance records."""
    device = pick_device()
    out = {"device": str(device), "cpu_threads": str(torch.get_num_threads())}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out
