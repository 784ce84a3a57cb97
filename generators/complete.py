"""Completion of images: given tokens are kept, masked ones are drawn by the generator's GPT.

The result carries the exact mask of synthesized pixels at the generator's granularity: a
pixel for the pixel family, a code's whole cell for the VQ family (a code is drawn when any
pixel of its cell is masked). For the pixel family known pixels come back as their palette
colors, so outside the mask a completion equals the quantized input exactly; the VQ family
decodes every pixel, so its completions differ from the input everywhere a little, and most
where codes were drawn (``changed_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from igpt_forensics.errors import InputError

from .model import PixelGPT

# A decoded pixel "changed" when one of its channels moved more than this from the input
# (8-bit levels): JPEG-quality noise of the decoder is below it, a different object above.
CHANGED_LEVELS = 16


@dataclass
class Completion:
    images: np.ndarray  # (N, samples, S, S, 3) uint8
    mask: np.ndarray  # (N, S, S) bool, True = synthesized (drawn tokens' pixels)
    quantized: np.ndarray  # (N, S, S, 3): the inputs through the codec (encode, decode)
    seeds: np.ndarray  # (N, samples) int64: the seed of each completion


def changed_mask(fake: np.ndarray, source: np.ndarray, levels: int = CHANGED_LEVELS,
                 ) -> np.ndarray:
    """Where a decoded image differs from its source: any channel more than ``levels``."""
    diff = np.abs(np.asarray(fake, np.int16) - np.asarray(source, np.int16))
    return diff.max(-1) > levels


@torch.inference_mode()
def complete(model: PixelGPT, codec, images: np.ndarray, mask: np.ndarray,
             seeds: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             batch_size: int = 64, watermark=None) -> Completion:
    """Complete ``images`` (N, S, S, 3) where ``mask`` ((S, S) or (N, S, S)) is True.

    ``codec``: the checkpoint's `Palette` or `generators.vq.VQCodec`. ``seeds`` (N, samples):
    one completion per seed; each depends only on its own seed. ``watermark``: a
    `igpt_forensics.watermark.WatermarkKey` for this palette, or None.
    """
    images = np.asarray(images)
    size = model.config.image_size * codec.scale
    if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
        raise InputError(f"images must be uint8 (N, {size}, {size}, 3) for this model, got "
                         f"{images.dtype} {images.shape}")
    n = len(images)
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), (n, size, size))
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.ndim != 2 or len(seeds) != n:
        raise InputError(f"seeds must have shape (N={n}, samples), got {seeds.shape}")
    samples = seeds.shape[1]
    tokens = codec.encode(images)  # (N, L)
    drawn_mask = codec.token_mask(mask)  # (N, L)
    known = torch.from_numpy(np.repeat(tokens, samples, axis=0))
    flat_mask = torch.from_numpy(np.repeat(drawn_mask, samples, axis=0))
    flat_seeds = seeds.reshape(-1)
    out = []
    for s in range(0, len(known), batch_size):
        out.append(model.sample(known[s:s + batch_size], flat_mask[s:s + batch_size],
                                flat_seeds[s:s + batch_size], temperature, top_k, top_p,
                                watermark=watermark))
    drawn = torch.cat(out).numpy()
    return Completion(images=codec.decode(drawn, (size, size)).reshape(n, samples, size, size, 3),
                      mask=codec.cell_mask(drawn_mask, size),
                      quantized=codec.decode(tokens, (size, size)), seeds=seeds)
