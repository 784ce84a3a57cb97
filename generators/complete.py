"""Completion of images: given pixels are kept, masked ones are drawn by the pixel-GPT.

The result carries the exact mask of synthesized pixels. Known pixels are returned as their
palette colors (the model only knows palette colors), so outside the mask a completion equals
the quantized input exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from igpt_forensics.errors import InputError
from igpt_forensics.palette import Palette

from .model import PixelGPT


@dataclass
class Completion:
    images: np.ndarray  # (N, samples, S, S, 3) uint8
    mask: np.ndarray  # (N, S, S) bool, True = synthesized
    quantized: np.ndarray  # (N, S, S, 3): the inputs through the palette
    seeds: np.ndarray  # (N, samples) int64: the seed of each completion


@torch.inference_mode()
def complete(model: PixelGPT, palette: Palette, images: np.ndarray, mask: np.ndarray,
             seeds: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             batch_size: int = 64, watermark=None) -> Completion:
    """Complete ``images`` (N, S, S, 3) where ``mask`` ((S, S) or (N, S, S)) is True.

    ``seeds`` (N, samples): one completion per seed; each depends only on its own seed.
    ``watermark``: a `igpt_forensics.watermark.WatermarkKey` for this palette, or None.
    """
    images = np.asarray(images)
    size = model.config.image_size
    if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
        raise InputError(f"images must be uint8 (N, {size}, {size}, 3) for this model, got "
                         f"{images.dtype} {images.shape}")
    n = len(images)
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), (n, size, size))
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.ndim != 2 or len(seeds) != n:
        raise InputError(f"seeds must have shape (N={n}, samples), got {seeds.shape}")
    samples = seeds.shape[1]
    tokens = palette.encode(images)  # (N, S*S)
    known = torch.from_numpy(np.repeat(tokens, samples, axis=0))
    flat_mask = torch.from_numpy(np.repeat(mask.reshape(n, -1), samples, axis=0).copy())
    flat_seeds = seeds.reshape(-1)
    out = []
    for s in range(0, len(known), batch_size):
        out.append(model.sample(known[s:s + batch_size], flat_mask[s:s + batch_size],
                                flat_seeds[s:s + batch_size], temperature, top_k, top_p,
                                watermark=watermark))
    drawn = torch.cat(out).numpy()
    return Completion(images=palette.decode(drawn).reshape(n, samples, size, size, 3),
                      mask=np.array(mask), quantized=palette.decode(tokens), seeds=seeds)
