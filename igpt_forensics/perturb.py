"""Post-processing perturbations for robustness tests, applied to real and fake alike.

Named by short specs: ``none``, ``jpegQ`` (JPEG at quality Q, e.g. ``jpeg75``), ``resizeF``
(rescale by F with Lanczos, e.g. ``resize0.5``), ``blurS`` (Gaussian blur, sigma S),
``noiseS`` (Gaussian noise, sigma S in 8-bit levels), ``cropN`` (a random N x N crop). Each is
deterministic: the randomness of ``noise`` and ``crop`` comes from the seed the caller passes
(derive it from the image id), so a benchmark is repeatable to the byte.
Geometric perturbations transform the ground-truth mask too.
"""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, ImageFilter

from .errors import InputError

_SPEC = re.compile(r"^(none|jpeg|resize|blur|noise|crop)([0-9.]*)$")
DEFAULT_GRID = ("none", "jpeg90", "jpeg75", "jpeg50", "resize0.5", "blur1", "noise2", "crop24")


def parse(spec: str) -> tuple[str, float | None]:
    m = _SPEC.match(spec.strip())
    if not m or (m.group(1) != "none" and not m.group(2)) or (m.group(1) == "none"
                                                               and m.group(2)):
        raise InputError(f"unknown perturbation '{spec}' (none, jpegQ, resizeF, blurS, "
                         "noiseS, cropN; e.g. jpeg75, resize0.5)")
    kind, value = m.group(1), (float(m.group(2)) if m.group(2) else None)
    if kind == "jpeg" and not 1 <= value <= 100:
        raise InputError(f"{spec}: JPEG quality must be 1..100")
    if kind == "resize" and not 0 < value <= 4:
        raise InputError(f"{spec}: resize factor must be in (0, 4]")
    if kind == "crop" and value < 1:
        raise InputError(f"{spec}: crop size must be >= 1")
    return kind, value


def strength(spec: str) -> float:
    """A number that grows with how much the perturbation destroys (for plots): 0 = none."""
    kind, v = parse(spec)
    return {"none": 0.0, "jpeg": (100 - (v or 100)) / 100, "resize": abs(np.log2(v or 1)),
            "blur": v or 0.0, "noise": (v or 0) / 10, "crop": 0.0}[kind]


def perturb(image: np.ndarray, spec: str, seed: int = 0,
            mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply one perturbation to a uint8 (H, W, 3) image (and its mask) -> (image, mask)."""
    kind, v = parse(spec)
    h, w = image.shape[:2]
    if kind == "none":
        return image, mask
    if kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=int(v))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), mask
    if kind == "resize":
        nh, nw = max(1, round(h * v)), max(1, round(w * v))
        out = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.LANCZOS))
        if mask is not None:
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(
                (nw, nh), Image.Resampling.NEAREST)) > 127
        return out, mask
    if kind == "blur":
        return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(v))), mask
    rng = np.random.default_rng(seed)
    if kind == "noise":
        noisy = image.astype(np.float64) + rng.normal(0.0, v, image.shape)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8), mask
    # crop
    side = int(v)
    if side > min(h, w):
        raise InputError(f"{spec}: crop larger than the {w}x{h} image")
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    out = np.ascontiguousarray(image[top:top + side, left:left + side])
    if mask is not None:
        mask = np.ascontiguousarray(mask[top:top + side, left:left + side])
    return out, mask


def parse_grid(text: str) -> list[str]:
    specs = [s.strip() for s in text.split(",") if s.strip()]
    if not specs:
        raise InputError("--perturb: name at least one perturbation (e.g. none)")
    for s in specs:
        parse(s)
    return specs
