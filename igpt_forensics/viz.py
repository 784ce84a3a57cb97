"""Image grids and heat maps as PNG: figures people look at instead of reading numbers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from .files import atomic_write_bytes


def image_grid(images: np.ndarray, ncol: int | None = None, scale: int = 1, pad: int = 1,
               background: int = 255) -> np.ndarray:
    """Tile ``(N, H, W, 3)`` uint8 images into one image, ``ncol`` per row, upscaled by
    ``scale`` with nearest neighbour so that pixels stay visible."""
    images = np.asarray(images)
    n, h, w, _ = images.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    hs, ws = h * scale, w * scale
    grid = np.full((nrow * (hs + pad) + pad, ncol * (ws + pad) + pad, 3), background, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncol)
        big = im.repeat(scale, 0).repeat(scale, 1)
        grid[pad + r * (hs + pad):pad + r * (hs + pad) + hs,
             pad + c * (ws + pad):pad + c * (ws + pad) + ws] = big
    return grid


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def save_png(image: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_bytes(path, png_bytes(image))
    return path
