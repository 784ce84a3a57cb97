"""iGPT's color palette: k-means clusters of RGB pixels; a pixel's token is its nearest color.

iGPT reduced 24-bit color to a 9-bit palette (512 k-means clusters) so that a 32x32 image is a
sequence of 1024 tokens over a small vocabulary. ``tokens`` are always palette indices in
raster order, shape ``(..., H*W)``; ``images`` are uint8 ``(..., H, W, 3)``.

A palette is the pixel family's *codec*: what turns images into a generator's tokens and back.
The VQ family's codec is `generators.vq.VQCodec`; both answer the same calls (``family``,
``scale``, ``n_tokens``, ``sha256``, ``encode``, ``decode``, ``twin``, ``token_mask``,
``cell_mask``), so completion, datasets and scoring do not ask which family they hold.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import atomic_write_text, read_json

MIN_COLORS, MAX_COLORS = 2, 512
# Pixels per chunk when encoding: a (chunk, K) float32 distance block stays under ~32 MB.
ENCODE_CHUNK = 16384


class Palette:
    """A fixed list of RGB colors (uint8, ``(K, 3)``)."""

    family = "pixel"
    scale = 1  # pixels per token side: one token per pixel

    def __init__(self, colors: np.ndarray):
        colors = np.asarray(colors)
        if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) < 1:
            raise InputError(f"palette colors must have shape (K, 3), got {colors.shape}")
        if len(colors) > MAX_COLORS:  # encoding holds a (pixels, K) block: K is bounded
            raise InputError(f"a palette has at most {MAX_COLORS} colors, got {len(colors):,}")
        if colors.dtype != np.uint8:
            if colors.min() < 0 or colors.max() > 255:
                raise InputError("palette colors must lie in 0..255")
            colors = np.rint(colors).astype(np.uint8)
        self.colors = np.ascontiguousarray(colors)
        c = self.colors.astype(np.float32)
        self._c2 = (c * c).sum(1)  # |c|^2, reused by every encode
        self._ct2 = 2.0 * c.T

    @property
    def n_colors(self) -> int:
        return len(self.colors)

    @property
    def n_tokens(self) -> int:
        return len(self.colors)

    @property
    def sha256(self) -> str:
        """Content hash of the colors; provenance records cite it."""
        return hashlib.sha256(b"igpt-palette-v1" + self.colors.tobytes()).hexdigest()

    # -- fitting ---------------------------------------------------------------------------
    @classmethod
    def fit(cls, images: np.ndarray, n_colors: int = 512, seed: int = 0,
            max_pixels: int = 400_000) -> Palette:
        """k-means (scikit-learn's MiniBatchKMeans) on up to ``max_pixels`` random pixels.

        Colors are sorted by luminance so that token ids read dark to light.
        """
        from sklearn.cluster import MiniBatchKMeans

        if not MIN_COLORS <= n_colors <= MAX_COLORS:
            raise InputError(f"--colors must be between {MIN_COLORS} and {MAX_COLORS}, "
                             f"got {n_colors}")
        pixels = _as_pixels(images).astype(np.float32)
        rng = np.random.default_rng(seed)
        if len(pixels) > max_pixels:
            pixels = pixels[rng.choice(len(pixels), max_pixels, replace=False)]
        distinct = np.unique(pixels, axis=0)
        if len(distinct) <= n_colors:  # fewer colors than asked: the palette is exact
            centers = distinct
        else:
            km = MiniBatchKMeans(n_clusters=n_colors, random_state=seed, batch_size=8192,
                                 n_init=3, max_iter=100)
            centers = km.fit(pixels).cluster_centers_
        colors = np.unique(np.clip(np.rint(centers), 0, 255).astype(np.uint8), axis=0)
        luma = colors.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return cls(colors[np.lexsort((colors[:, 2], colors[:, 1], colors[:, 0], luma))])

    # -- encoding --------------------------------------------------------------------------
    def encode(self, images: np.ndarray) -> np.ndarray:
        """Nearest palette color per pixel: ``(..., H, W, 3)`` uint8 -> ``(..., H*W)`` int64.

        Vectorized and chunked: memory stays bounded for any batch size.
        """
        images = np.asarray(images)
        if images.ndim < 3 or images.shape[-1] != 3:
            raise InputError(f"images must have shape (..., H, W, 3), got {images.shape}")
        lead = images.shape[:-3]
        pixels = images.reshape(-1, 3)
        out = np.empty(len(pixels), dtype=np.int64)
        for s in range(0, len(pixels), ENCODE_CHUNK):
            x = pixels[s:s + ENCODE_CHUNK].astype(np.float32)
            # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every c. All terms are
            # integers below 2^24, so float32 is exact and ties resolve to the lowest index.
            out[s:s + ENCODE_CHUNK] = np.argmin(self._c2 - x @ self._ct2, axis=1)
        return out.reshape(*lead, images.shape[-3] * images.shape[-2])

    def decode(self, tokens: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
        """``(..., H*W)`` tokens -> ``(..., H, W, 3)`` uint8. Square unless ``shape`` given."""
        tokens = np.asarray(tokens)
        if tokens.ndim < 1:
            raise InputError("tokens must have at least one dimension")
        n = tokens.shape[-1]
        if shape is None:
            side = math.isqrt(n)
            if side * side != n:
                raise InputError(f"{n} tokens are not a square image; pass shape=(H, W)")
            shape = (side, side)
        if shape[0] * shape[1] != n:
            raise InputError(f"shape {shape} does not hold {n} tokens")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.n_colors):
            raise InputError(f"tokens must lie in 0..{self.n_colors - 1}")
        return self.colors[tokens].reshape(*tokens.shape[:-1], *shape, 3)

    def quantize(self, images: np.ndarray) -> np.ndarray:
        """Round-trip images through the palette (what a pixel-GPT can represent)."""
        images = np.asarray(images)
        return self.decode(self.encode(images), images.shape[-3:-1])

    def twin(self, images: np.ndarray) -> np.ndarray:
        """The real image in this family's format, labeled real (``qreal``): through the
        palette, so a detector cannot win by counting colors."""
        return self.quantize(images)

    @staticmethod
    def token_mask(mask: np.ndarray) -> np.ndarray:
        """Pixel mask (N, S, S) -> token mask (N, S*S): one token per pixel."""
        mask = np.asarray(mask, dtype=bool)
        return mask.reshape(len(mask), -1)

    @staticmethod
    def cell_mask(token_mask: np.ndarray, size: int) -> np.ndarray:
        """Token mask (N, S*S) -> the pixels those tokens cover (N, S, S)."""
        return np.asarray(token_mask, dtype=bool).reshape(-1, size, size)

    def psnr(self, images: np.ndarray) -> float:
        """Round-trip PSNR in dB over a batch of images."""
        from .metrics import psnr

        images = np.asarray(images)
        return psnr(images, self.quantize(images))

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": "igpt-palette-v1", "n_colors": self.n_colors,
                "sha256": self.sha256, "colors": self.colors.tolist()}

    @classmethod
    def from_dict(cls, d: dict, name: str = "palette") -> Palette:
        try:
            palette = cls(np.asarray(d["colors"], dtype=np.int64))
        except (KeyError, TypeError, ValueError, OverflowError) as e:  # Overflow: 1e400
            raise InputError(f"{name}: not a palette ({e})") from None
        if "sha256" in d and d["sha256"] != palette.sha256:
            raise InputError(f"{name}: palette hash does not match its colors (file altered?)")
        return palette

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> Palette:
        path = Path(path)
        d = read_json(path, f"{path}: no such file", f"{path}: not a palette JSON file")
        return cls.from_dict(d, name=str(path))

    def __repr__(self) -> str:
        return f"Palette(n_colors={self.n_colors}, sha256={self.sha256[:12]})"


def _as_pixels(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[-1] != 3:
        raise InputError(f"images must be uint8 (..., 3), got {images.dtype} {images.shape}")
    return images.reshape(-1, 3)
