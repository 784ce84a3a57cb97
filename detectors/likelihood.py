"""The zero-shot ``likelihood`` detector: a pixel-GPT as a coder, coding cost against expected cost.

Statistics (one forward pass per batch, ``PixelGPT.token_stats``). For each pixel i, given the
pixels before it in raster order: ``nll_i = -log p(x_i)``, the entropy ``H_i`` of the predictive
distribution, and the variance ``var_i`` of the surprisal under it. The *surprisal gap*
``g_i = nll_i - H_i`` has, for pixels the model itself drew at temperature 1, mean 0 and
variance ``var_i`` given the past, so over any fixed set of pixels
``z = sum(g) / sqrt(sum(var))`` is close to a standard normal (a martingale sum). Pixels drawn
with top-k, top-p or a temperature below 1 are more probable than the model's own draws: their
gap is negative. Real pixels have gap = cross-entropy minus entropy, which is not a KL
divergence: below 0 where the model is over-dispersed on a photo, above 0 where it is
over-confident, and it varies a lot from photo to photo. So no one-sided threshold on the gap
works; the detector looks at both tails and at the spread, at several scales:

- per image (per SxS tile): ``z``, ``|z|``, ``log(1 + z^2)``, the mean gap, the mean NLL and
  entropy, the fraction of pixels with a standardized gap above 2 (top-k / top-p draws have
  almost none), and the std / max / min of ``z`` over non-overlapping 2x2 and 4x4 blocks;
- per window (``window`` x ``window`` pixels, sliding): the same pixel statistics summed over
  the window, for the maps.

Two logistic regressions over the standardized features and their pairwise products
(`QuadraticLogistic`: scikit-learn, balanced classes; quadratic because the fakes form a band
inside a real class that spreads on both sides) turn these into scores. They are fitted on
real images against samples the scoring model draws *itself* (``sampling``: temperature 1
and 0.9, top-k 40, top-p 0.9 by default; whole images and completions of the bottom half of
real ones), so no outside fakes are needed. ``score`` is the
log-odds of the image model: **higher = more likely synthetic**. ``threshold_`` is its
``1 - target_fpr`` quantile on real images held back from the regression (``calibrate``: on
patches of the train photos, which are many; the val photos are few).

Maps: every sliding window gets the window model's probability of being synthesized; a
pixel's map value is the mean over the windows that cover it (a box smoothing), in [0, 1].
``region_scores`` is the strongest window's log-odds, and ``region_flags`` compare it with a
threshold calibrated on real tiles (stricter for images of many tiles, see
``region_threshold_for``); ``masks`` are the pixels whose map exceeds ``map_threshold_``, the
``1 - map_fpr`` quantile of map values on real pixels.

Raster order is one-sided. The model predicts each pixel from the pixels above it and to its
left only. A synthesized box in the middle of a photo is drawn without seeing the real pixels
right of and below it, and those real pixels are then scored given the synthesized box: they
are real pixels in a context the model finds surprising, so their gap tends to be pushed
up (more "real-looking"), and such a seam borders the box on its right and bottom edges. The
box itself is scored like any sample; the left and top edges of the map are sharp, the right
and bottom ones are smeared by the window smoothing and by that seam. A bottom-half (or any
"last part") completion has no real pixels after it, which is why it is the cleanest case.

Any image size. The model scores SxS tiles. Two ways to show it a larger image:

- ``tiling="tile"`` (default): cut the image at its own resolution into SxS tiles (the last
  row and column of tiles are aligned to the image's edge, overlapping their neighbours);
  the image score is the mean of the tiles' log-odds, the region score the strongest window
  of any tile, and each pixel's map value is the mean over the tiles that hold it. The
  sampling traces the detector looks for are per pixel (a palette color drawn from the
  model's distribution); downscaling averages pixels and destroys them, and tiling keeps the
  map at the image's own resolution, so a pasted synthesized patch is found where it is.
- ``tiling="resize"``: resample the whole image to SxS (Lanczos; the aspect ratio is not
  kept) and score that one tile: one forward pass per image, and in distribution for whole
  photos (training patches are crops at random scales resampled to S), but blind to a
  synthesized region smaller than the image. Maps are upsampled back (bilinear).

An image smaller than S on either side is first upscaled (Lanczos) until its shorter side is
S, then tiled; its map is resampled back to its own size. Upscaled pixels are smoother than
the photos the model learned, so such scores are less reliable.
``benchmarks/likelihood_eval.py`` measures both tilings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from igpt_forensics.errors import InputError, check_choice

from .base import (
    DEFAULT_TARGET_FPR,
    META_FILE,
    Detector,
    Images,
    Localization,
    as_input_kind,
    calibrate_threshold,
    check_images,
    register_detector,
    shipped_asset,
)
from .config import DEFAULT_SAMPLING, TILINGS
from .linear import QuadraticLogistic
from .tiles import Layout, assemble_map, tile_image

DEFAULT_CALIBRATION = shipped_asset("likelihood")
CALIBRATE_COMMAND = ("make likelihood-default (igpt-forensics calibrate --detector likelihood "
                     "--data builtin --data data/debian-photos.tsv --out "
                     f"{DEFAULT_CALIBRATION})")
SAMPLE_MASKS = ("full", "top-half")
Z_CLIP = 50.0  # |z| beyond this carries no more information, and would swamp the scaler
VAR_FLOOR = 1e-12
BLOCK_SCALES = (2, 4)
TILE_CHUNK = 256  # tiles scored at once

PIXEL_STATS = ("z", "abs_z", "log1p_z2", "gap_mean", "nll_mean", "entropy_mean",
               "surprise_frac")
IMAGE_FEATURES = PIXEL_STATS + tuple(f"z{s}_{f}" for s in BLOCK_SCALES
                                     for f in ("std", "max", "min"))
WINDOW_FEATURES = PIXEL_STATS
Progress = Callable[[int, int], None]  # (images just done, total to do)


# -- sampling settings ------------------------------------------------------------------------

def parse_sampling(spec: str) -> dict[str, float | int]:
    """``"temperature=0.9"``, ``"top_k=40"``, ``"top_p=0.9"`` or several joined by commas."""
    out: dict[str, float | int] = {}
    for part in (p.strip() for p in str(spec).split(",")):
        key, _, value = part.partition("=")
        try:
            if key == "temperature":
                out[key] = float(value)
            elif key == "top_k":
                out[key] = int(value)
            elif key == "top_p":
                out[key] = float(value)
            else:
                raise ValueError
        except ValueError:
            raise InputError(f"sampling '{spec}': expected temperature=T, top_k=K or "
                             "top_p=P (several joined by commas)") from None
    return out


# -- statistics -------------------------------------------------------------------------------

@dataclass
class PixelStats:
    """Per-pixel statistics of SxS tiles, float64 (T, S, S), in nats."""

    nll: np.ndarray
    entropy: np.ndarray
    var: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        return self.nll - self.entropy


def _pixel_features(gap, var, nll, ent, surprising, count) -> np.ndarray:
    """Window or image sums -> the PIXEL_STATS features (last axis)."""
    z = np.clip(gap / np.sqrt(np.maximum(var, VAR_FLOOR)), -Z_CLIP, Z_CLIP)
    return np.stack([z, np.abs(z), np.log1p(z * z), gap / count, nll / count, ent / count,
                     surprising / count], axis=-1)


def image_features(stats: PixelStats) -> np.ndarray:
    """(T, len(IMAGE_FEATURES)) features of each tile."""
    g, v = stats.gap, np.maximum(stats.var, VAR_FLOOR)
    surprising = (g / np.sqrt(v) > 2.0).astype(np.float64)
    T, S, _ = g.shape
    feats = [_pixel_features(g.sum((1, 2)), v.sum((1, 2)), stats.nll.sum((1, 2)),
                             stats.entropy.sum((1, 2)), surprising.sum((1, 2)), S * S)]
    for s in BLOCK_SCALES:
        b = max(1, S // s)  # blocks per side; a side that s does not divide drops its rest
        s_eff = S // b
        crop = slice(0, b * s_eff)
        gs = g[:, crop, crop].reshape(T, b, s_eff, b, s_eff).sum((2, 4))
        vs = v[:, crop, crop].reshape(T, b, s_eff, b, s_eff).sum((2, 4))
        zs = np.clip(gs / np.sqrt(vs), -Z_CLIP, Z_CLIP).reshape(T, -1)
        feats.append(np.stack([zs.std(1), zs.max(1), zs.min(1)], axis=-1))
    return np.concatenate(feats, axis=1)


def _window_sums(a: np.ndarray, k: int) -> np.ndarray:
    """Sums over every k x k window of (T, S, S) -> (T, S-k+1, S-k+1), by integral images."""
    c = np.pad(a, ((0, 0), (1, 0), (1, 0))).cumsum(1).cumsum(2)
    return c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]


def window_features(stats: PixelStats, k: int) -> np.ndarray:
    """(T, S-k+1, S-k+1, len(WINDOW_FEATURES)) features of every sliding k x k window."""
    g, v = stats.gap, np.maximum(stats.var, VAR_FLOOR)
    surprising = (g / np.sqrt(v) > 2.0).astype(np.float64)
    sums = [_window_sums(a, k) for a in (g, v, stats.nll, stats.entropy, surprising)]
    return _pixel_features(*sums, k * k)


def _spread_windows(p: np.ndarray, k: int) -> np.ndarray:
    """Window values (T, S-k+1, S-k+1) -> per pixel the mean over the windows covering it."""
    T, m, _ = p.shape
    S = m + k - 1
    acc = np.zeros((T, S, S))
    cnt = np.zeros((S, S))
    for dy in range(k):
        for dx in range(k):
            acc[:, dy:dy + m, dx:dx + m] += p
            cnt[dy:dy + m, dx:dx + m] += 1
    return acc / cnt


# -- the detector -----------------------------------------------------------------------------

@register_detector("likelihood")
class LikelihoodDetector(Detector):
    """Zero-shot detector from a pixel-GPT's likelihood statistics (see the module docstring).

    Parameters: ``model`` a checkpoint folder (None: the bundled default generator);
    ``tiling`` "tile" or "resize"; ``window`` the side of the map's windows in pixels;
    ``target_fpr`` the false-positive rate on real images the thresholds aim at; ``map_fpr``
    the fraction of real pixels allowed in masks; ``sampling`` and ``sample_masks`` the
    self-drawn samples ``fit`` makes (``n_samples`` of them, seeded by ``seed``); ``C`` the
    inverse regularization of the logistic regressions; ``batch_size`` and ``device`` for
    the model.
    """

    default_asset = DEFAULT_CALIBRATION
    default_asset_command = CALIBRATE_COMMAND

    def __init__(self, model: str | None = None, tiling: str = "tile", window: int = 4,
                 target_fpr: float = DEFAULT_TARGET_FPR, map_fpr: float = 0.05,
                 sampling: Sequence[str] = DEFAULT_SAMPLING,
                 sample_masks: Sequence[str] = SAMPLE_MASKS, n_samples: int = 128,
                 seed: int = 0, C: float = 0.1, batch_size: int = 64, device: str = "cpu"):
        self.model = model
        self.tiling = tiling
        self.window = window
        self.target_fpr = target_fpr
        self.map_fpr = map_fpr
        self.sampling = sampling
        self.sample_masks = sample_masks
        self.n_samples = n_samples
        self.seed = seed
        self.C = C
        self.batch_size = batch_size
        self.device = device

    # -- the scoring model (loaded lazily, checked against what the detector was fitted on)
    def _scorer(self):
        key = (self.model, self.device)
        cached = getattr(self, "_loaded", None)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        from igpt_forensics.generators.checkpoint import load_checkpoint

        from igpt_forensics.device import pick_device

        model, codec, config = load_checkpoint(self.model, device=pick_device(self.device))
        want = getattr(self, "model_sha256_", None)
        if want is not None and config["sha256"] != want:
            raise InputError(f"this likelihood detector was fitted for a scoring model with "
                             f"weights sha256 {want[:12]}..., but {config['path']} has "
                             f"{config['sha256'][:12]}...: fit it again for this model "
                             f"({CALIBRATE_COMMAND.split(' --out')[0]} --model PATH --out DIR)")
        self._loaded = (key, model, codec, config)
        return model, codec

    def scoring_model(self):
        """(model, codec, checkpoint config) of the scoring model, loaded and checked. The
        codec is a palette (pixel family) or a VQ tokenizer (VQ family: the statistics are
        then per code, on the code grid, and the maps are spread over each code's cell)."""
        self._scorer()
        return self._loaded[1:]

    @classmethod
    def ships_for(cls, model: str) -> bool:
        """True when ``model``'s weights are those the shipped calibration was fitted for
        (``--model pixel-default``, or a copy of it): nothing to calibrate."""
        from igpt_forensics.generators.checkpoint import WEIGHTS, resolve_model

        from igpt_forensics.files import read_json, sha256_file

        meta = cls.default_asset / META_FILE
        weights = resolve_model(model) / WEIGHTS
        if not meta.is_file() or not weights.is_file():
            return False
        doc = read_json(meta, f"{meta}: missing", f"{meta}: unreadable")
        state = doc.get("state") if isinstance(doc, dict) else None
        want = state.get("model_sha256_") if isinstance(state, dict) else None
        return isinstance(want, str) and sha256_file(weights) == want

    @classmethod
    def calibrated(cls, model: str | None = None, data: str = "builtin",
                   split: str = "val", n_real: int = 512, threshold_split: str | None = "train",
                   n_threshold: int = 2048, progress: Progress | None = None, **params,
                   ) -> LikelihoodDetector:
        """Fit for scoring model ``model`` on ``n_real`` patches of real photos (a data spec:
        ``builtin``, a folder or an .npz; by default the validation photos: held out from the
        generator's training like the unseen photos the detector will judge, and apart from the
        test photos that benchmarks score it on) and the model's own samples; thresholds on
        ``n_threshold`` patches of the ``threshold_split`` photos (None: on the held-back
        third of the fitting patches).

        Why the train photos by default: the thresholds need many photos, and the val photos
        are few (two here). Thresholds from the held-back val patches flagged 32-42% of real
        test crops at 32-128 px and 12-18% of the pool's test reals; from 2048 patches of the
        train photos, 0-2% and 0-5% (docs/results.md). The scoring model learned those
        photos, so their patches look more like its own samples than unseen photos do (AUC
        0.53 against the held-back samples, 0.83 for the val patches): thresholds from them
        err high, not low.

        This is what ``igpt-forensics calibrate`` runs; the shipped calibration of the
        bundled default model is ``calibrated()`` with the defaults.
        """
        from igpt_forensics.data import ImageSource, derive_seed, sample_patches

        det = cls(model=model, **params)
        det._check_params()
        source = ImageSource(data)
        real, _ = sample_patches(source, n_real, det.image_size, seed=det.seed, split=split)
        calib = None
        if threshold_split is not None:
            calib, _ = sample_patches(source, n_threshold, det.image_size,
                                      seed=derive_seed(det.seed, "thresholds"),
                                      split=threshold_split)
        det.fit(real, progress=progress, threshold_images=calib)
        det.fit_info_.update({"data": str(data), "split": split, "patch_seed": det.seed,
                              "threshold_split": threshold_split or "held-back",
                              "skipped_files": list(source.report.bad)})
        return det

    @property
    def image_size(self) -> int:
        """The side in pixels of the tiles the scoring model reads."""
        self._scorer()
        return self._loaded[3]["image_size"]

    @property
    def grid(self) -> int:
        """The side of the token grid of a tile (= image_size for the pixel family)."""
        return self._scorer()[0].config.image_size

    def _window(self) -> int:
        """The window side, in tokens."""
        return max(1, min(int(self.window), self.grid))

    def _check_params(self) -> None:
        check_choice("tiling", self.tiling, TILINGS)
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise InputError(f"window must be a positive integer, got {self.window!r}")
        for name in ("target_fpr", "map_fpr"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise InputError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")

    # -- statistics
    def pixel_stats(self, tiles: np.ndarray) -> PixelStats:
        """Per-token NLL, entropy and variance of SxS uint8 tiles (T, S, S, 3), on the token
        grid (T, G, G): per pixel for the pixel family, per code for the VQ family."""
        model, codec = self._scorer()
        G = model.config.image_size
        tokens = torch.from_numpy(codec.encode(tiles))
        st = model.token_stats(tokens, batch_size=self.batch_size)
        return PixelStats(*(st[k].double().numpy().reshape(-1, G, G)
                            for k in ("nll", "entropy", "var")))

    def _tiles(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[Layout], np.ndarray]:
        """All tiles of a batch of images, their layouts, and the image index of each tile."""
        S = self.image_size
        tiles, layouts, owner = [], [], []
        for i, im in enumerate(images):
            t, lay = tile_image(im, S, self.tiling)
            tiles.extend(t)
            layouts.append(lay)
            owner.extend([i] * len(t))
        return np.stack(tiles), layouts, np.asarray(owner)

    def image_statistics(self, images: Images) -> dict[str, np.ndarray]:
        """Each of IMAGE_FEATURES per image (mean over the image's tiles), for reports."""
        items = check_images(images)
        self._check_params()
        tiles, _, owner = self._tiles(items)
        feats = image_features(self.pixel_stats(tiles))
        per_image = _mean_by_owner(feats, owner, len(items))
        return {name: per_image[:, j] for j, name in enumerate(IMAGE_FEATURES)}

    # -- the contract
    def fit(self, real_images: Images, fake_images: Images | None = None,
            progress: Progress | None = None, threshold_images: Images | None = None,
            ) -> LikelihoodDetector:
        """Fit on real images against samples the scoring model draws itself.

        ``n_samples`` images are drawn, spread over ``sampling`` x ``sample_masks`` (top-half
        completions keep the top half of a real image's tile). ``fake_images`` (optional) are added as
        fully synthetic. A third of the real images (and of the fakes) is held back: the
        thresholds are calibrated on those real images, or on ``threshold_images`` (other real
        images, e.g. of more photos) when given. ``fit_info_`` reports the AUC of the
        held-back reals against the held-back fakes (``held_back_auc``) and that of the
        threshold reals (``threshold_real_auc``; the same when none were given).
        """
        from sklearn.metrics import roc_auc_score

        real = check_images(real_images, "real_images")
        fakes_given = check_images(fake_images, "fake_images") if fake_images is not None else []
        calib = (check_images(threshold_images, "threshold_images")
                 if threshold_images is not None else None)
        self._check_params()
        configs = [parse_sampling(s) for s in self.sampling]
        for m in self.sample_masks:
            if m not in SAMPLE_MASKS:
                raise InputError(f"sample_masks: unknown mask {m!r} (choose from "
                                 f"{', '.join(SAMPLE_MASKS)})")
        if not configs or not self.sample_masks:
            raise InputError("sampling and sample_masks must each name at least one setting")
        if self.n_samples < 2 and not fakes_given:
            raise InputError(f"n_samples must be >= 2, got {self.n_samples}")
        if len(real) < 4:
            raise InputError(f"fit needs at least 4 real images, got {len(real)}")
        self.model_sha256_ = None  # a refit may change the model: check nothing stale
        self._loaded = None
        model, codec = self._scorer()
        G, k = model.config.image_size, self._window()
        rng = np.random.default_rng(self.seed)

        # real: stats of every tile; images split into fit / held-back by index
        real_tiles, real_layouts, real_owner = self._tiles(real)
        calib_tiles = self._tiles(calib) if calib is not None else None
        total = len(real_tiles) + self.n_samples + (len(calib_tiles[0]) if calib_tiles else 0)
        real_stats = self._stats_progress(real_tiles, progress, total)
        held_real = np.zeros(len(real), bool)
        held_real[rng.permutation(len(real))[: max(2, len(real) // 3)]] = True

        # fakes: self-drawn, evenly over settings and masks, seeded per image
        samples, sample_masks = self._draw(model, codec, real_tiles, configs,
                                           lambda n: progress and progress(n, total))
        fake_tiles = samples
        fake_pixmask = sample_masks
        if fakes_given:
            more, _, _ = self._tiles(fakes_given)
            fake_tiles = np.concatenate([fake_tiles, more]) if len(fake_tiles) else more
            fake_pixmask = np.concatenate([fake_pixmask, np.ones((len(more), G, G), bool)])
        fake_stats = self._stats_progress(fake_tiles, None, 0)
        held_fake = np.zeros(len(fake_tiles), bool)
        held_fake[rng.permutation(len(fake_tiles))[: max(1, len(fake_tiles) // 3)]] = True

        # the image model: tile features, fit on the non-held-back part
        real_feats = image_features(real_stats)
        fake_feats = image_features(fake_stats)
        fit_real = ~held_real[real_owner]
        x = np.concatenate([real_feats[fit_real], fake_feats[~held_fake]])
        y = np.r_[np.zeros(fit_real.sum()), np.ones((~held_fake).sum())]
        self.image_model_ = QuadraticLogistic.fit(x, y, IMAGE_FEATURES, self.C, self.seed)

        # the window model: real windows against windows wholly inside a synthesized area
        real_w = window_features(_take(real_stats, fit_real), k)
        fake_sel = ~held_fake
        fake_w = window_features(_take(fake_stats, fake_sel), k)
        inside = _window_sums(fake_pixmask[fake_sel].astype(np.float64), k) >= k * k - 0.5
        stride = max(1, k // 2)
        real_w = real_w[:, ::stride, ::stride].reshape(-1, len(WINDOW_FEATURES))
        fake_w = fake_w[:, ::stride, ::stride][inside[:, ::stride, ::stride]]
        xw, yw = _balance(real_w, fake_w, rng, cap=100_000)
        self.window_model_ = QuadraticLogistic.fit(xw, yw, WINDOW_FEATURES, self.C, self.seed)

        # thresholds on real images the models were not fitted on, through the code score()
        # runs: the held-back ones, or the threshold images
        held_tiles = held_real[real_owner]
        held_owner = np.searchsorted(np.flatnonzero(held_real), real_owner[held_tiles])
        held_out = self._aggregate(  # their maps only when they set the map threshold
            self._tile_outputs(_take(real_stats, held_tiles), maps=calib_tiles is None),
            held_owner, [lay for lay, h in zip(real_layouts, held_real) if h])
        real_out = held_out
        if calib_tiles is not None:
            tiles, layouts, owner = calib_tiles
            stats = self._stats_progress(tiles, progress, total)
            real_out = self._aggregate(self._tile_outputs(stats, maps=True), owner, layouts)
        self.threshold_ = calibrate_threshold(real_out["scores"], self.target_fpr)
        self.region_calibration_ = np.sort(real_out["tile_regions"]).tolist()
        self.region_threshold_ = self.region_threshold_for(1)
        pixels = np.concatenate([m.ravel() for m in real_out["maps"]])
        self.map_threshold_ = float(np.quantile(pixels, 1.0 - self.map_fpr, method="higher"))

        # held-back diagnostics (fakes are tiles already: one image each): the held-back
        # reals against the held-back fakes, and the threshold reals (when apart) too
        fake_scores = self.image_model_.decision(fake_feats[held_fake])

        def auc_of(reals: np.ndarray) -> float:
            labels = np.r_[np.zeros(len(reals)), np.ones(len(fake_scores))]
            return float(roc_auc_score(labels, np.r_[reals, fake_scores]))

        auc = auc_of(held_out["scores"])
        tpr = float(np.mean(fake_scores > self.threshold_))
        _, _, config = self._loaded[1:]
        self.model_sha256_ = config["sha256"]
        self.image_size_ = self.image_size
        self.n_colors_ = codec.n_tokens
        self.fit_info_ = {
            "real_images": len(real), "real_tiles": len(real_tiles),
            "self_drawn": len(samples), "outside_fakes": len(fakes_given),
            "held_back_real": int(held_real.sum()), "held_back_fakes": int(held_fake.sum()),
            "threshold_real": len(real_out["scores"]),
            "threshold_real_auc": auc_of(real_out["scores"]),
            "held_back_auc": auc, "held_back_tpr_at_threshold": tpr,
            # the bundled default is named, not located: a shipped file holds no local paths
            "model_path": config["path"] if self.model is not None else "(bundled default)",
            "model_sha256": config["sha256"],
            "model_meta": config.get("meta", {}),
        }
        return self

    def score(self, images: Images) -> np.ndarray:
        """Log-odds that each image is synthetic (higher = more likely synthetic)."""
        return self._run(images, maps=False)["scores"]

    def localize(self, images: Images) -> Localization:
        return self.score_and_localize(images)[1]

    def score_and_localize(self, images: Images, progress: Progress | None = None,
                           ) -> tuple[np.ndarray, Localization]:
        """Scores and maps; ``progress(tiles_done, tiles_total)`` after each chunk of tiles
        (a large photo is thousands of tiles: minutes on a CPU)."""
        out = self._run(images, maps=True, progress=progress)
        masks = [m > self.map_threshold_ for m in out["maps"]]
        flags = np.array([r > self.region_threshold_for(t)
                          for r, t in zip(out["region_scores"], out["n_tiles"])], dtype=bool)
        loc = Localization(maps=as_input_kind(out["maps"], images),
                           masks=as_input_kind(masks, images),
                           region_scores=out["region_scores"], region_flags=flags)
        return out["scores"], loc

    def region_threshold_for(self, n_tiles: int) -> float:
        """The region-score threshold for an image of ``n_tiles`` tiles.

        The region score is the strongest window of any tile, so an image of many tiles has
        more chances to look suspicious. Each tile's false-positive rate is set to
        ``1 - (1 - target_fpr) ** (1 / n_tiles)`` on the real calibration tiles, so that a
        real image of independent tiles is flagged with rate ``target_fpr``. Beyond what the
        calibration set resolves, this is the largest real region score seen.
        """
        per_tile = 1.0 - (1.0 - self.target_fpr) ** (1.0 / max(1, int(n_tiles)))
        return calibrate_threshold(np.asarray(self.region_calibration_), per_tile)

    # -- internals
    def _run(self, images: Images, maps: bool, progress: Progress | None = None,
             ) -> dict[str, Any]:
        items = check_images(images)
        self._check_fitted()
        self._check_params()
        tiles, layouts, owner = self._tiles(items)
        # tiles go through the model and the window model in chunks: memory stays bounded
        # for a photo of thousands of tiles
        chunk = max(TILE_CHUNK, self.batch_size)
        parts = []
        for s in range(0, len(tiles), chunk):
            parts.append(self._tile_outputs(self.pixel_stats(tiles[s:s + chunk]), maps))
            if progress is not None:
                progress(len(tiles[s:s + chunk]), len(tiles))
        per_tile = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return self._aggregate(per_tile, owner, layouts)

    def _tile_outputs(self, stats: PixelStats, maps: bool) -> dict[str, np.ndarray]:
        """Per tile: image-model log-odds; with ``maps``, also the strongest window's log-odds
        and the tile's map (float32 (T, S, S))."""
        out = {"logit": self.image_model_.decision(image_features(stats))}
        if maps:
            k = self._window()
            win = self.window_model_.decision(window_features(stats, k))  # (T, m, m)
            out["region"] = win.reshape(len(win), -1).max(1)
            tile_map = _spread_windows(1.0 / (1.0 + np.exp(-win)), k).astype(np.float32)
            d = self.image_size // self.grid  # a code's cell, for the VQ family
            out["map"] = tile_map.repeat(d, 1).repeat(d, 2) if d > 1 else tile_map
        return out

    def _aggregate(self, per_tile: dict[str, np.ndarray], owner: np.ndarray,
                   layouts: list[Layout]) -> dict[str, Any]:
        """Per-tile outputs -> per image: mean tile log-odds as the score, the strongest
        window of any tile as the region score, tile maps assembled at the image's size."""
        n = len(layouts)
        out: dict[str, Any] = {
            "scores": _mean_by_owner(per_tile["logit"][:, None], owner, n)[:, 0]}
        if "map" in per_tile:
            region = np.full(n, -np.inf)
            np.maximum.at(region, owner, per_tile["region"])
            S = per_tile["map"].shape[1]
            out["region_scores"] = region
            out["tile_regions"] = per_tile["region"]
            out["n_tiles"] = np.bincount(owner, minlength=n)
            out["maps"] = [assemble_map(per_tile["map"][owner == i], layouts[i], S)
                           for i in range(n)]
        return out

    def _stats_progress(self, tiles: np.ndarray, progress: Progress | None, total: int,
                        ) -> PixelStats:
        parts = []
        for s in range(0, len(tiles), self.batch_size):
            parts.append(self.pixel_stats(tiles[s:s + self.batch_size]))
            if progress is not None:
                progress(len(parts[-1].nll), total)
        return PixelStats(*(np.concatenate([getattr(p, f) for p in parts])
                            for f in ("nll", "entropy", "var")))

    def _draw(self, model, codec, real_tiles: np.ndarray, configs: list[dict],
              progress: Callable[[int], Any]) -> tuple[np.ndarray, np.ndarray]:
        """Samples of the scoring model itself: (n, S, S, 3) images and the masks of their
        drawn tokens on the token grid (n, G, G).

        ``n_samples`` are spread evenly over the sampling settings, and within a setting
        over ``sample_masks`` in turn; the rows of one setting share each ``sample`` call
        (masks are per row), so a top-half completion costs no extra decoding steps.
        """
        from igpt_forensics.masks import make_mask

        S, G = self.image_size, model.config.image_size
        kinds = [codec.token_mask(make_mask(kind, S)[0][None])[0].reshape(G, G)
                 for kind in self.sample_masks]
        per_config = np.full(len(configs), self.n_samples // len(configs))
        per_config[: self.n_samples % len(configs)] += 1
        real_tokens = codec.encode(real_tiles)
        images, masks = [], []
        for ci, (cfg, n) in enumerate(zip(configs, per_config)):
            if n == 0:
                continue
            mask = np.stack([kinds[i % len(kinds)] for i in range(n)])
            seeds = np.random.default_rng([self.seed, ci]).integers(0, 2**44, n)
            pick = np.random.default_rng([self.seed, ci, 1]).integers(0, len(real_tokens), n)
            known = torch.from_numpy(real_tokens[pick])
            flat = torch.from_numpy(mask.reshape(n, G * G))
            for s in range(0, n, self.batch_size):
                sl = slice(s, s + self.batch_size)
                drawn = model.sample(known[sl], flat[sl], seeds[sl], **cfg)
                images.append(codec.decode(drawn.numpy(), (S, S)))
                masks.append(mask[sl])
                progress(len(drawn))
        if not images:
            return np.zeros((0, S, S, 3), np.uint8), np.zeros((0, G, G), bool)
        return np.concatenate(images), np.concatenate(masks)

    # -- persistence
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {k: getattr(self, k) for k in ("threshold_", "region_threshold_",
                                                "map_threshold_", "region_calibration_",
                                                "model_sha256_", "image_size_", "n_colors_",
                                                "fit_info_")}
        state["image_model_"] = self.image_model_.to_dict()
        state["window_model_"] = self.window_model_.to_dict()
        return state, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray], path: Path,
                   ) -> None:
        self.image_model_ = QuadraticLogistic.from_dict(state["image_model_"], IMAGE_FEATURES)
        self.window_model_ = QuadraticLogistic.from_dict(state["window_model_"],
                                                       WINDOW_FEATURES)
        for k in ("threshold_", "region_threshold_", "map_threshold_"):
            setattr(self, k, float(state[k]))
        self.region_calibration_ = [float(v) for v in state["region_calibration_"]]
        if not self.region_calibration_:
            raise InputError(f"{path}: empty region calibration")
        self.model_sha256_ = str(state["model_sha256_"])
        self.image_size_ = int(state["image_size_"])
        self.n_colors_ = int(state["n_colors_"])
        self.fit_info_ = dict(state.get("fit_info_") or {})

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({k: getattr(self, k, None) for k in ("region_threshold_", "map_threshold_",
                                                        "model_sha256_", "fit_info_")})
        return out


def _take(stats: PixelStats, sel: np.ndarray) -> PixelStats:
    return PixelStats(stats.nll[sel], stats.entropy[sel], stats.var[sel])


def _mean_by_owner(values: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    sums = np.zeros((n, values.shape[1]))
    np.add.at(sums, owner, values)
    return sums / np.bincount(owner, minlength=n)[:, None]


def _balance(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator, cap: int,
             ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``cap`` rows per class (random subset), stacked with labels."""
    if len(fake) == 0:
        raise InputError("no synthesized windows to fit the map model on: use a smaller "
                         "window or more samples")
    real = real[rng.permutation(len(real))[:cap]]
    fake = fake[rng.permutation(len(fake))[:cap]]
    return np.concatenate([real, fake]), np.r_[np.zeros(len(real)), np.ones(len(fake))]


__all__ = [
    "CALIBRATE_COMMAND",
    "DEFAULT_CALIBRATION",
    "IMAGE_FEATURES",
    "WINDOW_FEATURES",
    "LikelihoodDetector",
    "PixelStats",
    "image_features",
    "parse_sampling",
    "window_features",
]
