"""A keyed green-list watermark for palette tokens (Kirchenbauer et al., 2023, for pixels).

Generation: before each synthesized pixel is drawn, a secret key, the pixel's position and
its previous pixel pick a "green" fraction ``gamma`` of the colors, and ``delta`` is added to
their logits. Verification needs only the key and the palette, never the model: re-quantize
the image, look up whether each pixel is green, and test the count.

What survives a re-encode decides the design (measured in ``benchmarks/watermark_eval.py``):

- JPEG at quality 90 keeps only about half of a palette image's exact tokens, so green-ness
  belongs to a *color group* (``token_groups`` clusters of nearby palette colors) and the
  previous pixel counts only by its coarse group (``context_groups`` clusters): a pixel nudged
  to a neighbouring palette color mostly stays in its group.
- The seed also holds the pixel's position modulo ``period`` (32). Then the pixels of any
  32x32 tile are distinct trials, so every synthesized pixel counts; without it only distinct
  (context, color) pairs may be counted (a flat sky repeats one pair hundreds of times), and
  coarse groups leave few distinct pairs. The price: a crop or a paste moves the positions,
  so verification also tries every offset (`Verdict.shifted`, with its own threshold).
- ``token_groups = context_groups = n_colors`` and ``period = 0`` is the paper's exact-token
  scheme (previous token only), kept for comparison.

The statistic counts each distinct (position, context group, color group) trial once. The green
bit of a trial is an independent keyed coin with P(green) = gamma, so for an image made without
the key the number of green trials among k is exactly Binomial(k, gamma), whatever the image:
the p-value is that binomial tail, and ``z`` the usual normal score of the same count
(``z > 4``: p < 3.2e-5). Three families of tests, each with false-positive rate at most
``ALPHA``, so an image is flagged with probability at most 3 ``ALPHA`` when it is not marked:

- ``image``: all pixels, positions as they are;
- ``regions``: square windows of 8, 16 and 32 pixels, half a window apart, positions as they
  are; the best window must pass ``ALPHA / windows`` (Bonferroni). The watermark lives only in
  synthesized pixels, so this finds a synthesized box in a mostly real image;
- ``shifted``: the whole image and its 32x32 windows under each of the period^2 position
  offsets (a crop, or a fake pasted into a larger image); ``ALPHA / tests``. Above 512x512
  pixels only the whole image is shifted (the window search would cost minutes).

Any image size can be verified: pixels are scored at the resolution they have (a fake that was
resized must be resized back to the generator's grid first; see the README's numbers).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import read_bounded
from .palette import Palette

SCHEME = "igpt-forensics-greenlist-v1"
DEFAULT_GAMMA = 0.25
DEFAULT_DELTA = 2.0
DEFAULT_TOKEN_GROUPS = 32
DEFAULT_CONTEXT_GROUPS = 8
DEFAULT_PERIOD = 32
ALPHA = 3.167e-5  # one-sided normal tail at z = 4: the false-positive rate of one test family
WINDOW_SIZES = (8, 16, 32)
MAX_KEY_BYTES = 1 << 20
MIN_KEY_BYTES = 16  # shorter keys work but can be guessed: a warning
GAMMA_RANGE = (0.01, 0.99)  # the green fraction; outside it a key embeds (almost) nothing
MAX_TABLE = 1 << 24  # keyed coins; the exact-token scheme with a period would need 269M
# Luma counts twice as much as chroma when grouping colors: JPEG keeps luma at full
# resolution and averages chroma over 2x2 pixels, so chroma is what a re-encode moves most.
_LUMA_WEIGHT = 2.0
_CHUNK = 1 << 22  # elements per vectorized block of the offset search: memory stays bounded
MAX_WINDOW_SEARCH_PIXELS = 512 * 512  # larger images: the offset search scores the whole only


# ----------------------------------------------------------------------------------------
# The key


def read_key(path: str | Path, warn: Callable[[str], None] | None = None) -> bytes:
    """The bytes of a key file, read with a bound; a missing, empty, huge or non-regular file
    (a FIFO, /dev/zero) is a one-line `InputError`. A key shorter than ``MIN_KEY_BYTES`` is
    accepted with a warning through ``warn`` (default: ``warnings.warn``)."""
    path = Path(path)
    try:
        key = read_bounded(path, MAX_KEY_BYTES, "watermark key file")
    except InputError as e:
        if "more than" in str(e):
            raise InputError(f"{path}: watermark key file is larger than 1 MiB; is it the "
                             "key?") from None
        raise
    if not key:
        raise InputError(f"{path}: empty watermark key file (put secret bytes in it, e.g. "
                         "head -c 32 /dev/urandom > KEY)")
    if len(key) > MAX_KEY_BYTES:
        raise InputError(f"{path}: watermark key file is larger than 1 MiB; is it the key?")
    if len(key) < MIN_KEY_BYTES:
        message = (f"{path}: the watermark key has only {len(key)} bytes; anyone can guess "
                   f"it (use {MIN_KEY_BYTES} or more, e.g. head -c 32 /dev/urandom > KEY)")
        (warn or (lambda m: warnings.warn(m, stacklevel=3)))(message)
    return key


def key_fingerprint(key: bytes) -> str:
    """sha256 of the key bytes (what ``sha256sum KEY`` prints): provenance records this,
    never the key."""
    return hashlib.sha256(key).hexdigest()


# ----------------------------------------------------------------------------------------
# Color groups


def _ycbcr(colors: np.ndarray) -> np.ndarray:
    c = colors.astype(np.float64)
    r, g, b = c[:, 0], c[:, 1], c[:, 2]
    return np.stack([0.299 * r + 0.587 * g + 0.114 * b,
                     -0.168736 * r - 0.331264 * g + 0.5 * b,
                     0.5 * r - 0.418688 * g - 0.081312 * b], axis=1)


def color_groups(palette: Palette, n_groups: int, iterations: int = 50) -> np.ndarray:
    """Group id of each palette color: ``n_groups`` clusters of nearby colors, ``(K,)`` int64.

    Lloyd's k-means in YCbCr with luma weighted up, started from colors evenly spaced in
    luma order: no randomness, so the key's owner and a verifier get the same groups. With
    ``n_groups >= n_colors`` every color is its own group (exact tokens).
    """
    k = palette.n_colors
    if n_groups >= k:
        return np.arange(k, dtype=np.int64)
    x = _ycbcr(palette.colors) * np.array([_LUMA_WEIGHT, 1.0, 1.0])
    order = np.lexsort((np.arange(k), x[:, 2], x[:, 1], x[:, 0]))
    centers = x[order[np.linspace(0, k - 1, n_groups).round().astype(int)]]
    assign = np.full(k, -1, dtype=np.int64)
    for _ in range(iterations):
        new = ((x[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
        if np.array_equal(new, assign):
            break
        assign = new
        for g in range(n_groups):
            members = assign == g
            if members.any():
                centers[g] = x[members].mean(0)
    _, ids = np.unique(assign, return_inverse=True)  # drop empty clusters, keep ids dense
    return ids.reshape(-1).astype(np.int64)


# ----------------------------------------------------------------------------------------
# Tests


def binomial_test(green, trials, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """z-scores and exact one-sided p-values P(X >= green), X ~ Binomial(trials, gamma)."""
    from scipy.stats import binom

    green = np.asarray(green, dtype=np.float64)
    trials = np.asarray(trials, dtype=np.float64)
    safe = np.maximum(trials, 1.0)
    z = np.where(trials > 0, (green - gamma * trials) / np.sqrt(safe * gamma * (1 - gamma)),
                 0.0)
    p = np.where(trials > 0, binom.sf(green - 1, safe, gamma), 1.0)
    return z, np.clip(p, 0.0, 1.0)


def z_for_p(p: float) -> float:
    """The normal z whose one-sided tail is ``p``: a threshold stated as a z."""
    from scipy.stats import norm

    return float(norm.isf(p))


@dataclass(frozen=True)
class Score:
    """One test over a set of pixels."""

    pixels: int  # pixels looked at
    trials: int  # distinct (position, context, color group) among them
    green: int  # green trials
    z: float
    p: float
    box: tuple[int, int, int, int] | None = None  # top, left, height, width (a window)
    offset: tuple[int, int] = (0, 0)  # added to (y, x) before taking positions mod period

    def to_dict(self) -> dict:
        d = {"pixels": self.pixels, "trials": self.trials, "green": self.green,
             "z": round(self.z, 3), "p": float(f"{self.p:.3g}")}
        if self.box is not None:
            d["box"] = list(self.box)
        if self.offset != (0, 0):
            d["offset"] = list(self.offset)
        return d


@dataclass(frozen=True)
class Family:
    """The best of ``tests`` tests; it passes when its p-value is below ``alpha / tests``."""

    tests: int
    best: Score | None
    alpha: float = ALPHA

    @property
    def threshold(self) -> float:
        return self.alpha / max(self.tests, 1)

    @property
    def detected(self) -> bool:
        return self.best is not None and self.best.p < self.threshold

    def to_dict(self) -> dict:
        return {"tests": self.tests, "p_threshold": float(f"{self.threshold:.3g}"),
                "z_threshold": round(z_for_p(self.threshold), 2),
                "best": None if self.best is None else self.best.to_dict(),
                "detected": self.detected}


@dataclass(frozen=True)
class Verdict:
    """Every test of one image (and of the synthesized mask, when its metadata gives one)."""

    image: Score
    regions: Family
    shifted: Family
    mask: Score | None = None
    alpha: float = ALPHA

    @property
    def detected(self) -> bool:
        return bool(self.image.p < self.alpha or self.regions.detected or self.shifted.detected
                    or (self.mask is not None and self.mask.p < self.alpha))

    @property
    def where(self) -> str:
        """Which test found the watermark ('' when none did)."""
        if self.image.p < self.alpha:
            return "image"
        if self.mask is not None and self.mask.p < self.alpha:
            return "mask"
        if self.regions.detected:
            return "region"
        return "shifted" if self.shifted.detected else ""

    def to_dict(self) -> dict:
        return {"detected": self.detected, "found_by": self.where or None,
                "image": self.image.to_dict(), "z_threshold": round(z_for_p(self.alpha), 2),
                "mask": None if self.mask is None else self.mask.to_dict(),
                "regions": self.regions.to_dict(), "shifted": self.shifted.to_dict()}


# ----------------------------------------------------------------------------------------
# The keyed scheme


class WatermarkKey:
    """A key bound to a palette and a scheme: green lists for sampling, tests for verifying.

    ``token_groups`` / ``context_groups`` at or above the palette size mean exact tokens;
    ``period = 0`` leaves the position out of the seed (the paper's scheme).
    """

    def __init__(self, key: bytes, palette: Palette, gamma: float = DEFAULT_GAMMA,
                 delta: float = DEFAULT_DELTA, token_groups: int = DEFAULT_TOKEN_GROUPS,
                 context_groups: int = DEFAULT_CONTEXT_GROUPS, period: int = DEFAULT_PERIOD):
        if not isinstance(key, bytes) or not key:
            raise InputError("the watermark key must be non-empty bytes")
        if getattr(palette, "family", "pixel") != "pixel":
            # Its green lists are over palette colors and a pixel's neighbours; a VQ decoder
            # re-synthesises every pixel, so a green list over codes would not survive it the
            # same way and needs its own measurement before it is offered.
            raise InputError(f"the keyed watermark works with pixel-family generators only; "
                             f"this is a {palette.family}-family generator")
        if not GAMMA_RANGE[0] <= gamma <= GAMMA_RANGE[1]:
            raise InputError(f"--watermark-gamma must be in [{GAMMA_RANGE[0]}, "
                             f"{GAMMA_RANGE[1]}], got {gamma}")
        if not (math.isfinite(delta) and delta >= 0.0):
            raise InputError(f"--watermark-delta must be a finite number >= 0, got {delta}")
        for name, v, low in (("token_groups", token_groups, 1),
                             ("context_groups", context_groups, 1), ("period", period, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InputError(f"watermark {name} must be an integer >= {low}, got {v!r}")
        self.palette = palette
        self.gamma, self.delta, self.period = float(gamma), float(delta), period
        self.groups = (token_groups, context_groups)  # as asked: what rebuilds the groups
        self.fingerprint = key_fingerprint(key)
        self.token_group = color_groups(palette, token_groups)  # (K,)
        self.context_group = color_groups(palette, context_groups)  # (K,)
        self.n_token_groups = int(self.token_group.max()) + 1
        self.n_contexts = int(self.context_group.max()) + 2  # the last: no previous pixel
        self.start = self.n_contexts - 1
        self.n_positions = period * period if period else 1
        size = self.n_positions * self.n_contexts * self.n_token_groups
        if size > MAX_TABLE:
            raise InputError(f"watermark scheme needs {size:,} keyed coins (limit "
                             f"{MAX_TABLE:,}): use fewer color groups or period 0")
        # (positions, contexts, token groups) bool
        self.green_table = self._green_table(key).reshape(
            self.n_positions, self.n_contexts, self.n_token_groups)
        self._p_green = (int(self.gamma * 2**32) / 2**32)  # P(a coin is green), exactly
        self._device_tables: dict = {}

    def describe(self) -> dict:
        """What provenance records: the settings and the key's fingerprint, not the key."""
        return {"scheme": SCHEME, "key_sha256": self.fingerprint, "gamma": self.gamma,
                "delta": self.delta, "token_groups": self.groups[0],
                "context_groups": self.groups[1], "period": self.period,
                "palette_sha256": self.palette.sha256}

    @classmethod
    def from_description(cls, key: bytes, palette: Palette, d: dict) -> WatermarkKey:
        """The scheme a provenance record describes, with this key."""
        return cls(key, palette, gamma=d["gamma"], delta=d["delta"],
                   token_groups=d["token_groups"], context_groups=d["context_groups"],
                   period=d["period"])

    def _green_table(self, key: bytes) -> np.ndarray:
        # One keyed coin per (position, context, color group): HMAC binds the key to the
        # scheme and the palette, SHAKE-256 stretches it. Both are standard, so the coins are
        # the same on any machine and with any numpy.
        info = json.dumps({"scheme": SCHEME, "palette_sha256": self.palette.sha256,
                           "period": self.period, "token_group": self.token_group.tolist(),
                           "context_group": self.context_group.tolist()},
                          separators=(",", ":")).encode()
        seed = hmac.new(key, info, hashlib.sha256).digest()
        n = self.n_positions * self.n_contexts * self.n_token_groups
        words = np.frombuffer(hashlib.shake_256(seed).digest(4 * n), dtype="<u4")
        return words < int(self.gamma * 2**32)

    # -- sampling --------------------------------------------------------------------------
    def logit_bias(self, tokens, position: int):
        """``(B, V)`` torch logit bias for drawing ``position`` of the ``(B, N)`` raster
        ``tokens`` of square images (the positions before ``position`` are final)."""
        import torch

        device = tokens.device
        if device not in self._device_tables:
            self._device_tables[device] = (
                torch.from_numpy(self.green_table).to(device),
                torch.from_numpy(self.context_group).to(device),
                torch.from_numpy(self.token_group).to(device))
        table, ctx_group, token_group = self._device_tables[device]
        side = math.isqrt(tokens.shape[1])
        y, x = divmod(position, side)
        pos = (y % self.period) * self.period + x % self.period if self.period else 0
        if x > 0:
            ctx = ctx_group[tokens[:, position - 1]]
        elif y > 0:
            ctx = ctx_group[tokens[:, position - side]]
        else:
            ctx = torch.full_like(tokens[:, 0], self.start)
        green = table[pos][ctx]  # (B, token groups)
        return green[:, token_group].float() * self.delta

    # -- verifying -------------------------------------------------------------------------
    def encode(self, image: np.ndarray) -> np.ndarray:
        """uint8 ``(H, W, 3)`` -> ``(H, W)`` palette tokens (nearest colors)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise InputError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        return self.palette.encode(image).reshape(image.shape[:2])

    def _cells(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Context and color group of every pixel of ``(H, W)`` tokens: the context of (y, x)
        is (y, x-1), of (y, 0) it is (y-1, 0), of (0, 0) the start context."""
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.size == 0:
            raise InputError(f"tokens must be a non-empty (H, W) array, got {tokens.shape}")
        ctx = np.full(tokens.shape, self.start, dtype=np.int64)
        ctx[:, 1:] = self.context_group[tokens[:, :-1]]
        ctx[1:, 0] = self.context_group[tokens[:-1, 0]]
        return ctx, self.token_group[tokens]

    def _positions(self, h: int, w: int, dy: int = 0, dx: int = 0) -> np.ndarray:
        if not self.period:
            return np.zeros((h, w), dtype=np.int64)
        p = self.period
        return ((np.arange(h)[:, None] + dy) % p) * p + (np.arange(w)[None] + dx) % p

    def trials(self, tokens: np.ndarray, offset: tuple[int, int] = (0, 0)
               ) -> tuple[np.ndarray, np.ndarray]:
        """Per pixel of ``(H, W)`` tokens: its trial code and whether it is green."""
        ctx, group = self._cells(tokens)
        pos = self._positions(*ctx.shape, *offset)
        code = (pos * self.n_contexts + ctx) * self.n_token_groups + group
        return code, self.green_table[pos, ctx, group]

    def _test(self, code: np.ndarray, green: np.ndarray, **where) -> Score:
        code, first = np.unique(code.reshape(-1), return_index=True)
        g = int(green.reshape(-1)[first].sum())
        z, p = binomial_test(g, len(code), self._p_green)
        return Score(int(green.size), len(code), g, float(z), float(p), **where)

    def score_tokens(self, tokens: np.ndarray, mask: np.ndarray | None = None) -> Score:
        """The test over ``(H, W)`` tokens, or over the pixels where ``mask`` is True."""
        code, green = self.trials(tokens)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != code.shape:
                raise InputError(f"mask {mask.shape} does not match the image {code.shape}")
            code, green = code[mask], green[mask]
        return self._test(code, green)

    def score(self, image: np.ndarray, mask: np.ndarray | None = None) -> Score:
        return self.score_tokens(self.encode(image), mask)

    def verify_tokens(self, tokens: np.ndarray, mask: np.ndarray | None = None,
                      alpha: float = ALPHA) -> Verdict:
        """Every test of `Verdict` on ``(H, W)`` tokens; ``mask``: the synthesized pixels,
        when provenance says which (one more test, at ``alpha``)."""
        mask_score = None
        if mask is not None and np.asarray(mask).shape == np.shape(tokens):
            mask_score = self.score_tokens(tokens, mask)
        return Verdict(self.score_tokens(tokens), self.regions(tokens, alpha),
                       self.shifted(tokens, alpha), mask_score, alpha)

    def verify(self, image: np.ndarray, mask: np.ndarray | None = None,
               alpha: float = ALPHA) -> Verdict:
        return self.verify_tokens(self.encode(image), mask, alpha)

    def regions(self, tokens: np.ndarray, alpha: float = ALPHA,
                sizes: tuple[int, ...] = WINDOW_SIZES) -> Family:
        """The best square window (sides ``sizes`` smaller than the image, half a side apart,
        the last flush with the edge) of ``(H, W)`` tokens, positions as they are."""
        code, green = self.trials(tokens)
        h, w = code.shape
        best, tests = None, 0
        for s in sizes:
            if s >= max(h, w) or s > min(h, w):
                continue
            tops, lefts = _starts(h, s), _starts(w, s)
            tests += len(tops) * len(lefts)
            for top in tops:  # one row of windows at a time
                c = np.stack([code[top:top + s, x:x + s].reshape(-1) for x in lefts])
                g = np.stack([green[top:top + s, x:x + s].reshape(-1) for x in lefts])
                order = np.argsort(c, axis=1, kind="stable")
                c, g = np.take_along_axis(c, order, 1), np.take_along_axis(g, order, 1)
                first = np.ones(c.shape, dtype=bool)  # first of each distinct trial
                first[:, 1:] = c[:, 1:] != c[:, :-1]
                n, k = first.sum(1), (g & first).sum(1)
                z, p = binomial_test(k, n, self._p_green)
                i = int(np.lexsort((-z, p))[0])
                if best is None or (p[i], -z[i]) < (best.p, -best.z):
                    best = Score(s * s, int(n[i]), int(k[i]), float(z[i]), float(p[i]),
                                 box=(int(top), int(lefts[i]), s, s))
        return Family(tests, best, alpha)

    def shifted(self, tokens: np.ndarray, alpha: float = ALPHA) -> Family:
        """The best position offset: the whole image, and its period-sized windows when it
        is larger, under each of the period^2 offsets (a crop or paste moved them)."""
        if not self.period:
            return Family(0, None, alpha)
        p = self.period
        ctx, group = self._cells(tokens)
        h, w = ctx.shape
        offsets = np.array([(dy, dx) for dy in range(p) for dx in range(p)])
        # Whole image: which pixels repeat a trial does not depend on the offset (positions
        # repeat every period either way), so the distinct trials are found once.
        code, _ = self.trials(tokens)
        _, first = np.unique(code.reshape(-1), return_index=True)
        fy, fx = np.unravel_index(first, (h, w))
        fc, fg = ctx.reshape(-1)[first], group.reshape(-1)[first]
        green = np.empty(len(offsets), dtype=np.int64)
        step = max(1, _CHUNK // len(first))
        for s in range(0, len(offsets), step):
            o = offsets[s:s + step]
            pos = ((fy[None] + o[:, :1]) % p) * p + (fx[None] + o[:, 1:]) % p
            green[s:s + step] = self.green_table[pos, fc[None], fg[None]].sum(1)
        z, pv = binomial_test(green, len(first), self._p_green)
        i = int(np.lexsort((-z, pv))[0])
        best = Score(h * w, len(first), int(green[i]), float(z[i]), float(pv[i]),
                     offset=tuple(int(v) for v in offsets[i]))
        tests = len(offsets)
        # Windows of one period: all their positions differ, so every pixel is its own
        # trial and window counts are sums of the green map (integral images). The cost is
        # period^2 green maps of the image, hence the size limit.
        s = min(p, h, w)
        if (h, w) != (s, s) and h * w <= MAX_WINDOW_SEARCH_PIXELS:
            tops, lefts = np.array(_starts(h, s)), np.array(_starts(w, s))
            tests += len(offsets) * len(tops) * len(lefts)
            yy, xx = np.mgrid[0:h, 0:w]
            step = max(1, _CHUNK // (h * w))
            for k in range(0, len(offsets), step):
                o = offsets[k:k + step]
                pos = ((yy[None] + o[:, :1, None]) % p) * p + (xx[None] + o[:, 1:, None]) % p
                gmap = self.green_table[pos, ctx[None], group[None]].astype(np.int64)
                c = np.zeros((len(o), h + 1, w + 1), dtype=np.int64)
                c[:, 1:, 1:] = gmap.cumsum(1).cumsum(2)
                t, left = tops[:, None], lefts[None]
                sums = (c[:, t + s, left + s] - c[:, t, left + s] - c[:, t + s, left]
                        + c[:, t, left])  # (offsets, tops, lefts)
                j = np.unravel_index(int(np.argmax(sums)), sums.shape)
                zz, pp = binomial_test(sums[j], s * s, self._p_green)
                if (float(pp), -float(zz)) < (best.p, -best.z):
                    best = Score(s * s, s * s, int(sums[j]), float(zz), float(pp),
                                 box=(int(tops[j[1]]), int(lefts[j[2]]), s, s),
                                 offset=tuple(int(v) for v in o[j[0]]))
        return Family(tests, best, alpha)


def _starts(n: int, s: int) -> list[int]:
    step = max(1, s // 2)
    starts = list(range(0, n - s + 1, step))
    if starts[-1] != n - s:
        starts.append(n - s)
    return starts
