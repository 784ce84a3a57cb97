"""Masks of synthesized pixels: ``mask`` is bool ``(H, W)``, True = synthesized.

Mask kinds, named by a short spec that ``complete`` and ``generate`` take:

- ``top-half``: the top half is given, the model draws the bottom half (iGPT's figure);
- ``box``: a random rectangle (a quarter to half of each side) is synthesized, the rest kept;
  ``box:TOP,LEFT,HEIGHT,WIDTH`` fixes it;
- ``full``: nothing is given;
- ``file:PATH``: a mask image of the right size, non-zero = synthesize;
- ``recon`` (VQ family only): nothing is drawn, the real image is encoded and decoded; its
  mask is empty but the decoder made every pixel (the "final component" fakes).

A generator whose tokens cover cells of pixels (the VQ family) draws every token whose cell
holds a masked pixel: the mask it records is the union of those cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

MASK_KINDS = ("top-half", "box", "full", "recon")


@dataclass(frozen=True)
class Box:
    top: int
    left: int
    height: int
    width: int

    def as_list(self) -> list[int]:
        return [self.top, self.left, self.height, self.width]


def box_mask(size: int, box: Box) -> np.ndarray:
    if (box.height < 1 or box.width < 1 or box.top < 0 or box.left < 0
            or box.top + box.height > size or box.left + box.width > size):
        raise InputError(f"box {box.as_list()} (top, left, height, width) does not fit in a "
                         f"{size}x{size} image")
    mask = np.zeros((size, size), dtype=bool)
    mask[box.top:box.top + box.height, box.left:box.left + box.width] = True
    return mask


def random_box(size: int, rng: np.random.Generator) -> Box:
    """A rectangle whose sides are a quarter to a half of the image, anywhere inside it."""
    lo, hi = max(1, size // 4), max(1, size // 2)
    h, w = (int(rng.integers(lo, hi + 1)) for _ in range(2))
    return Box(int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1)), h, w)


def make_mask(spec: str, size: int, rng: np.random.Generator | None = None,
              ) -> tuple[np.ndarray, Box | None]:
    """Build the mask a spec names, for a ``size x size`` image -> (mask, box or None)."""
    if size < 2:
        raise InputError(f"image size must be at least 2, got {size}")
    if spec == "full":
        return np.ones((size, size), dtype=bool), None
    if spec == "recon":
        return np.zeros((size, size), dtype=bool), None
    if spec == "top-half":
        mask = np.zeros((size, size), dtype=bool)
        mask[size // 2:] = True
        return mask, None
    if spec == "box":
        box = random_box(size, rng if rng is not None else np.random.default_rng(0))
        return box_mask(size, box), box
    if spec.startswith("box:"):
        try:
            top, left, h, w = (int(v) for v in spec[4:].split(","))
        except ValueError:
            raise InputError(f"mask '{spec}': expected box:TOP,LEFT,HEIGHT,WIDTH") from None
        box = Box(top, left, h, w)
        return box_mask(size, box), box
    if spec.startswith("file:"):
        from .data import load_image

        mask = load_image(spec[5:]).max(-1) > 0
        if mask.shape != (size, size):
            raise InputError(f"{spec[5:]}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                             f"expected {size}x{size}")
        return mask, None
    raise InputError(f"unknown mask '{spec}' (choose from {', '.join(MASK_KINDS)}, "
                     "box:TOP,LEFT,HEIGHT,WIDTH or file:PATH)")


def parse_kinds(text: str) -> list[str]:
    """``"top-half,box:1,2,3,4,full"`` -> ``["top-half", "box:1,2,3,4", "full"]``, each
    checked: the commas inside a fixed box belong to the box, not to the list."""
    kinds: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if (kinds and kinds[-1].startswith("box:") and kinds[-1].count(",") < 3
                and part.lstrip("-").isdigit()):
            kinds[-1] += f",{part}"
        elif part:
            kinds.append(part)
    if not kinds:
        raise InputError("--masks: name at least one mask kind")
    for k in kinds:
        if k not in MASK_KINDS and not k.startswith(("box:", "file:")):
            raise InputError(f"--masks: unknown mask '{k}' (choose from {', '.join(MASK_KINDS)}, "
                             "box:TOP,LEFT,HEIGHT,WIDTH or file:PATH)")
    return kinds
