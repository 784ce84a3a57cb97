"""Where tensors run: CUDA when present, then Apple's MPS, else the CPU; and on how many CPU
threads. Torch is imported on first use, so that a command's ``--help`` never loads it."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks the best available device; ``cpu``, ``cuda``, ``cuda:1``, ``mps`` force one."""
    import torch

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
    import torch

    device = pick_device()
    out = {"device": str(device), "cpu_threads": str(torch.get_num_threads())}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


THREADS_ENV = "IGPT_FORENSICS_THREADS"


def default_threads() -> int:
    """Torch threads when ``--threads`` is not given: ``$IGPT_FORENSICS_THREADS``, else one per
    core that is free now (cores minus the 1-minute load average, at least 1). On a machine
    shared with other jobs, threads beyond the free cores wait on each other (measured 2-10x
    slower on 2 cores), so the default follows the load."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise InputError(f"${THREADS_ENV}={env!r} is not a number of threads") from None
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # not available on this platform
        return cores
    return max(1, min(cores, round(cores - load)))


def set_threads(n: int) -> None:
    """Torch's CPU threads: set now when torch is loaded, else through ``OMP_NUM_THREADS``,
    which torch reads when it is first imported (the command line sets the threads before it
    knows whether the command needs torch at all)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = str(n)
