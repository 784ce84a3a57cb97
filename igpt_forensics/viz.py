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


def png_bytes(image: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes of an image; ``text``: keyword -> value text chunks (see `stamp`)."""
    buf = io.BytesIO()
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for k, v in text.items():
            info.add_text(k, v)
    Image.fromarray(np.asarray(image)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_png(image: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_bytes(path, png_bytes(image))
    return path


def masked_view(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The input as the model sees it: masked pixels shown as a gray checkerboard."""
    out = image.copy()
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    checker = np.where(((yy // 2 + xx // 2) % 2)[..., None] == 0, 96, 160).astype(np.uint8)
    out[mask] = np.broadcast_to(checker, (h, w, 3))[mask]
    return out


def completion_grid(originals: np.ndarray, completions: np.ndarray, mask: np.ndarray,
                    scale: int = 4) -> np.ndarray:
    """iGPT's figure: per row the masked input, the completions, then the original."""
    n, samples = completions.shape[:2]
    rows = []
    for i in range(n):
        rows.append(masked_view(originals[i], mask[i]))
        rows.extend(completions[i])
        rows.append(originals[i])
    return image_grid(np.stack(rows), ncol=samples + 2, scale=scale, pad=2)


HEAT_COLORMAP = "inferno"  # of every map shown: low = dark, high = bright yellow


def heat_overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The image in gray under a map in [0, 1] in the heat colormap (half and half)."""
    from matplotlib import colormaps

    gray = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    colors = colormaps[HEAT_COLORMAP](np.clip(heat, 0, 1))[..., :3] * 255.0
    return np.clip(0.5 * gray[..., None] + 0.5 * colors, 0, 255).astype(np.uint8)
