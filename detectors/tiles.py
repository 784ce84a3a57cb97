"""Images of other sizes: resizing images and maps, and cutting an image into the SxS tiles
a detector scores (the likelihood detector's ``tiling``; the features detector's statistics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from igpt_forensics.data import MAX_PIXELS, upscaled_shape
from igpt_forensics.errors import InputError


def resize_image(image: np.ndarray, h: int, w: int) -> np.ndarray:
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.LANCZOS),
                      dtype=np.uint8)


def resize_map(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """A float map to (h, w): box filter when shrinking, bilinear when growing, in [0, 1]."""
    if m.shape == (h, w):
        return m.astype(np.float32)
    shrink = h < m.shape[0] or w < m.shape[1]
    method = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    out = np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize((w, h), method))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def checked_upscale(h: int, w: int, size: int) -> tuple[int, int]:
    """`upscaled_shape`, refused when it is over `MAX_PIXELS` (a thin strip: ``load_image``
    refuses such files at `WORK_SIDE`; this guards arrays handed to a detector)."""
    uh, uw = upscaled_shape(h, w, size)
    if uh * uw > MAX_PIXELS:
        raise InputError(f"image too thin: {w}x{h} pixels upscaled to a shorter side of {size} "
                         f"would have {uh * uw:,} (limit {MAX_PIXELS:,})")
    return uh, uw


def upscale_to(image: np.ndarray, size: int) -> np.ndarray:
    """Upscale (Lanczos) so that the shorter side is at least ``size``; larger images as is."""
    h, w = image.shape[:2]
    return resize_image(image, *checked_upscale(h, w, size))


@dataclass
class Layout:
    """Where an image's tiles came from: the working image (upscaled or resized) and the
    top-left corner of each SxS tile in it."""

    shape: tuple[int, int]  # the image's own (H, W)
    work: tuple[int, int]  # (H, W) of the image the tiles were cut from
    origins: list[tuple[int, int]]


def _starts(n: int, s: int) -> list[int]:
    starts = list(range(0, n - s + 1, s))
    if starts[-1] != n - s:
        starts.append(n - s)  # the last tile is aligned to the edge, overlapping
    return starts


def tile_image(image: np.ndarray, size: int, tiling: str) -> tuple[list[np.ndarray], Layout]:
    """Cut one image into SxS tiles as ``tiling`` says (see the module docstring)."""
    h, w = image.shape[:2]
    if tiling == "resize":
        return [resize_image(image, size, size)], Layout((h, w), (size, size), [(0, 0)])
    hw, ww = checked_upscale(h, w, size)
    work = resize_image(image, hw, ww)
    origins = [(y, x) for y in _starts(hw, size) for x in _starts(ww, size)]
    tiles = [work[y:y + size, x:x + size] for y, x in origins]
    return tiles, Layout((h, w), (hw, ww), origins)


def assemble_map(tile_maps: np.ndarray, layout: Layout, size: int) -> np.ndarray:
    """Per-tile maps (T, S, S) -> one float32 map at the image's own size."""
    acc = np.zeros(layout.work)
    cnt = np.zeros(layout.work)
    for m, (y, x) in zip(tile_maps, layout.origins):
        acc[y:y + size, x:x + size] += m
        cnt[y:y + size, x:x + size] += 1
    return resize_map((acc / cnt).astype(np.float32), *layout.shape)
