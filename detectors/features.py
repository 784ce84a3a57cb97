"""The ``features`` detector: scikit-learn models over hand-made forensic features.

Each SxS tile of an image (S = the training size; `likelihood.tile_image` cuts larger images
at their own resolution and upscales smaller ones) becomes one row of numbers, grouped so a
reader can tell what a model leans on (`FEATURE_GROUPS`):

- ``spectrum``: the Fourier power spectrum of the luma, log power averaged in rings of
  normalized frequency (an azimuthal profile, as in spectral GAN-detection work), and the
  high-frequency power along rows minus along columns;
- ``residual``: a noise residual (each pixel minus the mean of its 4 neighbours): its
  spread, kurtosis, the fraction of exactly flat pixels and the correlation of the residuals
  of the color channels;
- ``color``: distinct colors per pixel, the entropy of the color histogram, saturation, and
  the palette cue: the fraction of pixels whose exact color is on ``palette_`` (the colors the
  training fakes were drawn with) and the mean distance to the nearest palette color;
- ``streaks``: raster-order traces. A pixel-GPT draws a pixel right after its left neighbour
  and a whole row after the one above it, so synthesized areas tend to be smoother along rows
  than across them: the log ratio of row- to column-difference energy, the fraction of equal
  neighbours along rows and columns, and the Laplacian energy (a trivial baseline);
- ``likelihood``: the per-image statistics of the zero-shot detector
  (`LikelihoodDetector.image_statistics`: z-scores of the surprisal gap, mean NLL and entropy,
  block-z spread...), from the scoring model ``likelihood_model``.

Two classifiers are fitted on the training rows: a logistic regression on standardized
features (balanced classes) and scikit-learn's ``GradientBoostingClassifier`` (balanced
sample weights). ``classifier="auto"`` keeps the one with the higher validation AUC. Both are
stored as numbers: the regression's coefficients, the boosted trees' arrays (children,
features, thresholds, leaf values), evaluated by hand in `TreeEnsemble`, checked equal to
scikit-learn's ``decision_function`` when fitted. ``feature_importances()`` ranks the features
(impurity importance for the trees, |standardized coefficient| for the regression).

Score: the chosen model's log-odds, averaged over an image's tiles (higher = more likely
synthetic). Region score: the strongest tile; the map is each tile's probability (a whole
image of size S is one tile: this detector judges images, and its maps are only as fine as
its tiles).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from igpt_forensics.errors import InputError, check_choice

from .base import (
    DEFAULT_TARGET_FPR,
    Images,
    Localization,
    as_input_kind,
    calibrate_threshold,
    check_images,
    register_detector,
)
from .config import CLASSIFIERS
from .likelihood import IMAGE_FEATURES, LikelihoodDetector
from .linear import LinearModel
from .tiles import assemble_map, tile_image
from .trained import Progress, TrainedDetector, float_list, prepare_fit

SPECTRUM_BINS = 6
LUMA = np.array([0.299, 0.587, 0.114])
MAX_PALETTE = 1024
PROBE_SEED = 20240601  # the fixed images that fingerprint the likelihood model

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "spectrum": tuple(f"spec_ring{i}" for i in range(SPECTRUM_BINS)) + ("spec_row_minus_col",),
    "residual": ("res_log_std", "res_kurtosis", "res_flat_frac", "res_channel_corr"),
    "color": ("colors_per_pixel", "color_entropy", "saturation_mean", "palette_frac",
              "palette_dist"),
    "streaks": ("log_row_col_energy", "equal_row_frac", "equal_col_frac",
                "equal_row_minus_col", "log_laplacian_energy"),
    "likelihood": tuple(f"lik_{f}" for f in IMAGE_FEATURES),
}
HAND_FEATURES = tuple(f for g in ("spectrum", "residual", "color", "streaks")
                      for f in FEATURE_GROUPS[g])


# -- hand-made features ------------------------------------------------------------------------

def _spectrum(gray: np.ndarray) -> np.ndarray:
    """(T, S, S) luma -> ring means of log power, and row- minus column-frequency power."""
    T, H, W = gray.shape
    x = gray - gray.mean((1, 2), keepdims=True)
    power = np.log1p(np.abs(np.fft.fft2(x)) ** 2 / (H * W))
    fy = np.fft.fftfreq(H)[:, None]
    fx = np.fft.fftfreq(W)[None, :]
    r = np.minimum(np.sqrt(fx ** 2 + fy ** 2) / 0.5, 1.0)
    ring = np.minimum((r * SPECTRUM_BINS).astype(int), SPECTRUM_BINS - 1)
    ring[0, 0] = -1  # the DC term (zero after removing the mean) belongs to no ring
    out = np.zeros((T, SPECTRUM_BINS + 1))
    for b in range(SPECTRUM_BINS):
        sel = ring == b
        out[:, b] = power[:, sel].mean(1) if sel.any() else 0.0
    # high horizontal frequency (changes along a row) vs high vertical frequency
    along_rows = (np.abs(fx) >= 0.25) & (np.abs(fy) < 0.25)
    along_cols = (np.abs(fy) >= 0.25) & (np.abs(fx) < 0.25)
    if along_rows.any() and along_cols.any():
        out[:, -1] = power[:, along_rows].mean(1) - power[:, along_cols].mean(1)
    return out


def _residual(x: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) float -> residual statistics."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    r = x - (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]) / 4.0
    flat = r.reshape(len(r), -1)
    std = flat.std(1)
    centered = flat - flat.mean(1, keepdims=True)
    kurt = ((centered ** 4).mean(1) + 1e-6) / (std ** 4 + 1e-6)  # 1 for a flat residual
    flat_frac = (np.abs(r) < 0.5).all(-1).reshape(len(r), -1).mean(1)
    ch = r.reshape(len(r), -1, 3)
    ch = ch - ch.mean(1, keepdims=True)
    cov = np.einsum("tpi,tpj->tij", ch, ch)
    d = np.sqrt(np.maximum(np.einsum("tii->ti", cov), 1e-12))
    corr = (cov / d[:, :, None] / d[:, None, :])[:, [0, 0, 1], [1, 2, 2]].mean(1)
    return np.stack([np.log(std + 1e-3), np.log(kurt), flat_frac, corr], axis=1)


def _color_keys(tiles: np.ndarray) -> np.ndarray:
    t = tiles.astype(np.int64)
    return (t[..., 0] << 16) | (t[..., 1] << 8) | t[..., 2]


def _color(tiles: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) uint8 -> color and palette statistics."""
    T = len(tiles)
    keys = _color_keys(tiles).reshape(T, -1)
    n_pix = keys.shape[1]
    out = np.zeros((T, 5))
    for i, k in enumerate(keys):
        _, counts = np.unique(k, return_counts=True)
        p = counts / n_pix
        out[i, 0] = len(counts) / n_pix
        out[i, 1] = float(-(p * np.log2(p)).sum()) / max(1.0, np.log2(n_pix))
    x = tiles.astype(np.float64) / 255.0
    mx, mn = x.max(-1), x.min(-1)
    out[:, 2] = ((mx - mn) / np.maximum(mx, 1e-6)).reshape(T, -1).mean(1)
    pal_keys = _color_keys(palette)
    out[:, 3] = np.isin(keys, pal_keys).mean(1)
    out[:, 4] = _palette_distance(tiles.reshape(T, -1, 3), palette)
    return out


def _palette_distance(pixels: np.ndarray, palette: np.ndarray, chunk: int = 65536,
                      ) -> np.ndarray:
    """Mean Euclidean distance (0..1 scale) of each tile's pixels to the nearest palette color."""
    T, P, _ = pixels.shape
    flat = pixels.reshape(-1, 3).astype(np.float32) / 255.0
    c = palette.astype(np.float32) / 255.0
    c2 = (c * c).sum(1)
    best = np.empty(len(flat), np.float32)
    for s in range(0, len(flat), chunk):
        q = flat[s:s + chunk]
        d = (q * q).sum(1, keepdims=True) - 2.0 * q @ c.T + c2[None]
        best[s:s + chunk] = np.sqrt(np.maximum(d.min(1), 0.0))
    return best.reshape(T, P).mean(1).astype(np.float64)


def _streaks(x: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) float, (T, S, S) luma -> row vs column difference statistics."""
    dh = x[:, :, 1:] - x[:, :, :-1]  # along a row: the pixel drawn just before
    dv = x[:, 1:] - x[:, :-1]  # across rows: a whole row earlier
    e_row = (dh ** 2).mean((1, 2, 3))
    e_col = (dv ** 2).mean((1, 2, 3))
    eq_row = (dh == 0).all(-1).mean((1, 2))
    eq_col = (dv == 0).all(-1).mean((1, 2))
    p = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
    lap = 4 * gray - p[:, :-2, 1:-1] - p[:, 2:, 1:-1] - p[:, 1:-1, :-2] - p[:, 1:-1, 2:]
    return np.stack([np.log((e_row + 1.0) / (e_col + 1.0)), eq_row, eq_col, eq_row - eq_col,
                     np.log1p((lap ** 2).mean((1, 2)))], axis=1)


def hand_features(tiles: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) uint8 tiles -> (T, len(HAND_FEATURES)) float64."""
    x = tiles.astype(np.float64)
    gray = x @ LUMA
    return np.concatenate([_spectrum(gray), _residual(x), _color(tiles, palette),
                           _streaks(x, gray)], axis=1)


def learn_palette(fakes: np.ndarray, masks: np.ndarray, max_colors: int = MAX_PALETTE,
                  ) -> np.ndarray:
    """The colors the training fakes were drawn with: exact colors of synthesized pixels seen
    at least twice (a color seen once may be noise), the ``max_colors`` most frequent."""
    pixels = fakes[masks]
    if len(pixels) == 0:
        raise InputError("the fake images have no synthesized pixels (all masks empty)")
    keys, counts = np.unique(_color_keys(pixels), return_counts=True)
    keep = counts >= 2 if (counts >= 2).any() else np.ones_like(counts, bool)
    keys, counts = keys[keep], counts[keep]
    keys = keys[np.argsort(-counts, kind="stable")[:max_colors]]
    return np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], axis=1).astype(np.uint8)


# -- boosted trees as plain arrays -------------------------------------------------------------

class TreeEnsemble:
    """A fitted binary ``GradientBoostingClassifier`` as arrays, evaluated by hand.

    ``decision(x) = init + learning_rate * sum_t leaf_t(x)``, where a sample goes left at a node
    when ``float32(x[feature]) <= threshold`` (scikit-learn casts inputs to float32 for trees).
    """

    KEYS = ("left", "right", "feature", "threshold", "value", "offsets")

    def __init__(self, arrays: dict[str, np.ndarray], init: float, learning_rate: float,
                 importances: np.ndarray):
        self.arrays = arrays
        self.init = float(init)
        self.learning_rate = float(learning_rate)
        self.importances = np.asarray(importances, np.float64)

    @classmethod
    def from_sklearn(cls, gb) -> TreeEnsemble:
        prior = float(gb.init_.class_prior_[1])
        prior = min(max(prior, 1e-12), 1 - 1e-12)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in cls.KEYS[:-1]}
        offsets = [0]
        for est in gb.estimators_[:, 0]:
            t = est.tree_
            parts["left"].append(t.children_left.astype(np.int32))
            parts["right"].append(t.children_right.astype(np.int32))
            parts["feature"].append(t.feature.astype(np.int32))
            parts["threshold"].append(t.threshold.astype(np.float64))
            parts["value"].append(t.value[:, 0, 0].astype(np.float64))
            offsets.append(offsets[-1] + t.node_count)
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        arrays["offsets"] = np.asarray(offsets, np.int64)
        return cls(arrays, np.log(prior / (1 - prior)), gb.learning_rate,
                   gb.feature_importances_)

    def decision(self, x: np.ndarray) -> np.ndarray:
        a = self.arrays
        x = np.asarray(x, np.float32).astype(np.float64)
        rows = np.arange(len(x))
        total = np.zeros(len(x))
        off = a["offsets"]
        for t in range(len(off) - 1):
            base = int(off[t])
            node = np.full(len(x), base, np.int64)
            while True:
                left = a["left"][node]
                inner = left != -1
                if not inner.any():
                    break
                n = node[inner]
                go_left = x[rows[inner], a["feature"][n]] <= a["threshold"][n]
                node[inner] = base + np.where(go_left, a["left"][n], a["right"][n])
            total += a["value"][node]
        return self.init + self.learning_rate * total

    def check(self, n_features: int, path: Path) -> None:
        a = self.arrays
        if any(k not in a for k in self.KEYS):
            raise InputError(f"{path}: boosted trees incomplete")
        n_nodes = len(a["left"])
        off = a["offsets"]
        if (len(off) < 2 or off[0] != 0 or off[-1] != n_nodes or np.any(np.diff(off) < 1)
                or any(len(a[k]) != n_nodes for k in ("right", "feature", "threshold", "value"))):
            raise InputError(f"{path}: boosted trees have inconsistent arrays")
        for t in range(len(off) - 1):
            lo, hi = int(off[t]), int(off[t + 1])
            left, right, feat = a["left"][lo:hi], a["right"][lo:hi], a["feature"][lo:hi]
            inner = left != -1
            # children point forward inside their own tree (no cycles), features exist
            local = np.arange(hi - lo)
            if (np.any((right != -1) != inner) or np.any(left[inner] <= local[inner])
                    or np.any(right[inner] <= local[inner]) or np.any(left[inner] >= hi - lo)
                    or np.any(right[inner] >= hi - lo) or np.any(feat[inner] < 0)
                    or np.any(feat[inner] >= n_features)):
                raise InputError(f"{path}: boosted tree {t} is malformed")
        if self.importances.shape != (n_features,):
            raise InputError(f"{path}: wrong number of feature importances")

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return ({"init": self.init, "learning_rate": self.learning_rate,
                 "importances": self.importances.tolist()},
                {f"trees.{k}": v for k, v in self.arrays.items()})

    @classmethod
    def from_state(cls, state: dict, arrays: dict[str, np.ndarray]) -> TreeEnsemble:
        return cls({k: arrays[f"trees.{k}"] for k in cls.KEYS if f"trees.{k}" in arrays},
                   state["init"], state["learning_rate"], state["importances"])


def fit_boosting(x: np.ndarray, y: np.ndarray, n_estimators: int, max_depth: int,
                 learning_rate: float, seed: int) -> TreeEnsemble:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.utils.class_weight import compute_sample_weight

    gb = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                    learning_rate=learning_rate, subsample=0.8,
                                    random_state=seed)
    gb.fit(x, y, sample_weight=compute_sample_weight("balanced", y))
    trees = TreeEnsemble.from_sklearn(gb)
    ours, theirs = trees.decision(x), gb.decision_function(x)
    if not np.allclose(ours, theirs, rtol=1e-9, atol=1e-9):  # a scikit-learn change, not input
        raise RuntimeError("boosted trees evaluated by hand differ from scikit-learn's "
                           f"(max difference {np.abs(ours - theirs).max():.3g})")
    return trees


# -- the detector ------------------------------------------------------------------------------

@register_detector("features")
class FeaturesDetector(TrainedDetector):
    """Hand-made forensic features + logistic regression / gradient boosting (module docstring).

    Parameters: ``likelihood_model`` the scoring checkpoint for the likelihood statistics
    (None: the bundled default generator), ``use_likelihood`` False to leave them out;
    ``classifier`` auto, logistic or boosting; ``C`` the regression's inverse regularization;
    ``n_estimators``, ``max_depth``, ``learning_rate`` of the boosting; ``target_fpr``,
    ``map_fpr``; ``seed``; ``batch_size`` and ``device`` for the likelihood model.
    """

    has_pixel_maps = False  # one score per 32x32 tile, spread over it

    dense_maps = False  # one value per tile: fusion leaves these maps out

    def __init__(self, likelihood_model: str | None = None, use_likelihood: bool = True,
                 classifier: str = "auto", C: float = 1.0, n_estimators: int = 150,
                 max_depth: int = 3, learning_rate: float = 0.1,
                 target_fpr: float = DEFAULT_TARGET_FPR, map_fpr: float = 0.05, seed: int = 0,
                 batch_size: int = 64, device: str = "cpu"):
        self.likelihood_model = likelihood_model
        self.use_likelihood = use_likelihood
        self.classifier = classifier
        self.C = C
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.target_fpr = target_fpr
        self.map_fpr = map_fpr
        self.seed = seed
        self.batch_size = batch_size
        self.device = device

    # -- features
    @property
    def feature_names(self) -> list[str]:
        names = list(HAND_FEATURES)
        if self.use_likelihood:
            names += list(FEATURE_GROUPS["likelihood"])
        return names

    def _likelihood(self) -> LikelihoodDetector:
        lik = getattr(self, "_lik", None)
        if lik is None:
            lik = LikelihoodDetector(model=self.likelihood_model, tiling="tile",
                                     batch_size=self.batch_size, device=self.device)
            self._lik = lik
            probe = getattr(self, "likelihood_probe_", None)
            if probe is not None:  # loaded: the scoring model must be the one fitted with
                got = self._likelihood_rows(_probe_images(lik.image_size))
                if got.shape != np.shape(probe) or not np.allclose(got, probe, rtol=1e-3,
                                                                   atol=1e-3):
                    self._lik = None
                    raise InputError(
                        f"the likelihood model {self.likelihood_model or '(bundled default)'} "
                        "is not the one this features detector was fitted with (its statistics "
                        "on fixed probe images differ): pass the same model, or train again")
        return lik

    def _likelihood_rows(self, tiles: np.ndarray) -> np.ndarray:
        stats = self._lik.image_statistics(tiles)
        return np.stack([stats[f] for f in IMAGE_FEATURES], axis=1)

    def tile_features(self, tiles: np.ndarray) -> np.ndarray:
        """(T, S, S, 3) uint8 tiles -> (T, len(feature_names)) float64."""
        x = hand_features(tiles, self.palette_)
        if self.use_likelihood:
            self._likelihood()
            x = np.concatenate([x, self._likelihood_rows(tiles)], axis=1)
        return x

    def features(self, images: Images) -> np.ndarray:
        """(N, len(feature_names)): each image's features, the mean over its tiles (for
        reports and single-feature baselines)."""
        self._check_fitted()
        items = check_images(images)
        tiles, _, owner = self._tiles(items)
        feats = self.tile_features(tiles)
        sums = np.zeros((len(items), feats.shape[1]))
        np.add.at(sums, owner, feats)
        return sums / np.bincount(owner, minlength=len(items))[:, None]

    def _tiles(self, items: list[np.ndarray]):
        S = self.image_size_
        tiles, layouts, owner = [], [], []
        for i, im in enumerate(items):
            t, lay = tile_image(im, S, "tile")
            tiles.extend(t)
            layouts.append(lay)
            owner.extend([i] * len(t))
        return np.stack(tiles), layouts, np.asarray(owner)

    # -- the contract
    def fit(self, real_images: Images, fake_images: Images | None = None,
            fake_masks: Any = None, val: Sequence | None = None,
            progress: Progress | None = None) -> FeaturesDetector:
        """Learn the palette, compute features, fit both classifiers on the training images,
        choose and calibrate on the validation images (real ones only for the threshold)."""
        from sklearn.metrics import roc_auc_score

        check_choice("classifier", self.classifier, CLASSIFIERS)
        for name in ("target_fpr", "map_fpr"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise InputError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        data = prepare_fit(real_images, fake_images, fake_masks, val, self.seed)
        if data.size[0] != data.size[1]:
            raise InputError(f"the features detector fits square images, got {data.size}")
        self.threshold_ = None
        self._lik = None
        self.likelihood_probe_ = None
        self.image_size_ = int(data.size[0])
        self.palette_ = learn_palette(data.fake, data.fake_masks)
        groups = [data.real, data.fake, data.val_real, data.val_fake]
        total = sum(len(g) for g in groups)
        feats = []
        for g in groups:
            feats.append(np.concatenate([self.tile_features(g[s:s + 256])
                                         for s in range(0, len(g), 256)]))
            if progress is not None:
                progress(len(g), total, stage="features")
        xr, xf, vr, vf = feats
        x, y = np.concatenate([xr, xf]), np.r_[np.zeros(len(xr)), np.ones(len(xf))]
        names = self.feature_names
        self.linear_ = LinearModel.fit(x, y, names, self.C, self.seed)
        self.trees_ = fit_boosting(x, y, self.n_estimators, self.max_depth, self.learning_rate,
                                   self.seed)
        vx, vy = np.concatenate([vr, vf]), np.r_[np.zeros(len(vr)), np.ones(len(vf))]
        aucs = {"logistic": float(roc_auc_score(vy, self.linear_.decision(vx))),
                "boosting": float(roc_auc_score(vy, self.trees_.decision(vx)))}
        if self.classifier == "auto":
            self.classifier_ = "boosting" if aucs["boosting"] > aucs["logistic"] else "logistic"
        else:
            self.classifier_ = self.classifier
        val_real_scores = self._decision(vr)
        self.threshold_ = calibrate_threshold(val_real_scores, self.target_fpr)
        self.region_threshold_ = self.threshold_  # a training-size image is one tile
        p_real = 1.0 / (1.0 + np.exp(-val_real_scores))
        self.map_threshold_ = max(0.5, float(np.quantile(p_real, 1.0 - self.map_fpr,
                                                         method="higher")))
        if self.use_likelihood:
            self.likelihood_probe_ = self._likelihood_rows(
                _probe_images(self._lik.image_size)).tolist()
        val_fake_scores = self._decision(vf)
        self.fit_info_ = {
            "train_real": len(data.real), "train_fake": len(data.fake),
            "val_real": len(data.val_real), "val_fake": len(data.val_fake),
            "val_given": data.val_given, "palette_colors": len(self.palette_),
            "val_auc": aucs, "classifier": self.classifier_,
            "val_tpr_at_threshold": float(np.mean(val_fake_scores > self.threshold_)),
        }
        return self

    def _decision(self, x: np.ndarray) -> np.ndarray:
        model = self.trees_ if self.classifier_ == "boosting" else self.linear_
        return model.decision(x)

    def score(self, images: Images) -> np.ndarray:
        """Mean log-odds over each image's tiles (higher = more likely synthetic)."""
        return self._run(images, maps=False)[0]

    def localize(self, images: Images) -> Localization:
        return self.score_and_localize(images)[1]

    def score_and_localize(self, images: Images) -> tuple[np.ndarray, Localization]:
        scores, loc = self._run(images, maps=True)
        return scores, loc

    def _run(self, images: Images, maps: bool):
        items = check_images(images)
        self._check_fitted()
        tiles, layouts, owner = self._tiles(items)
        logit = self._decision(self.tile_features(tiles))
        n = len(items)
        scores = np.bincount(owner, weights=logit, minlength=n) / np.bincount(owner, minlength=n)
        if not maps:
            return scores, None
        region = np.full(n, -np.inf)
        np.maximum.at(region, owner, logit)
        S = self.image_size_
        prob = 1.0 / (1.0 + np.exp(-logit))
        tile_maps = np.broadcast_to(prob[:, None, None], (len(prob), S, S))
        out_maps = [assemble_map(tile_maps[owner == i], layouts[i], S) for i in range(n)]
        masks = [m > self.map_threshold_ for m in out_maps]
        loc = Localization(maps=as_input_kind(out_maps, images),
                           masks=as_input_kind(masks, images), region_scores=region,
                           region_flags=region > self.region_threshold_)
        return scores, loc

    def feature_importances(self, model: str | None = None) -> list[tuple[str, float]]:
        """(feature, importance) pairs, largest first, summing to 1: impurity importance of
        the boosted trees, or |standardized coefficient| of the logistic regression
        (``model``: logistic or boosting; default the one that scores)."""
        self._check_fitted()
        model = model or self.classifier_
        if model == "boosting":
            imp = self.trees_.importances
        elif model == "logistic":
            imp = np.abs(self.linear_.coef)
        else:
            raise InputError(f"model must be logistic or boosting, got {model!r}")
        imp = imp / imp.sum() if imp.sum() > 0 else imp
        order = np.argsort(-imp, kind="stable")
        return [(self.feature_names[i], float(imp[i])) for i in order]

    # -- persistence
    def _learned_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        tree_state, arrays = self.trees_.to_state()
        state = {"threshold_": self.threshold_, "region_threshold_": self.region_threshold_,
                 "map_threshold_": self.map_threshold_, "image_size_": self.image_size_,
                 "classifier_": self.classifier_, "linear_": self.linear_.to_dict(),
                 "trees_": tree_state, "likelihood_probe_": self.likelihood_probe_,
                 "fit_info_": self.fit_info_}
        arrays["palette_"] = self.palette_
        return state, arrays

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], path: Path,
                 ) -> None:
        names = self.feature_names
        self.linear_ = LinearModel.from_dict(state["linear_"], names)
        self.trees_ = TreeEnsemble.from_state(state["trees_"], arrays)
        self.trees_.check(len(names), path)
        self.palette_ = np.asarray(arrays["palette_"], np.uint8)
        if self.palette_.ndim != 2 or self.palette_.shape[1] != 3 or len(self.palette_) < 1:
            raise InputError(f"{path}: bad palette array {self.palette_.shape}")
        for k in ("threshold_", "region_threshold_", "map_threshold_"):
            setattr(self, k, float(state[k]))
        self.image_size_ = int(state["image_size_"])
        self.classifier_ = str(state["classifier_"])
        if self.classifier_ not in ("logistic", "boosting"):
            raise InputError(f"{path}: unknown classifier {self.classifier_!r}")
        probe = state.get("likelihood_probe_")
        if self.use_likelihood and probe is None:
            raise InputError(f"{path}: uses likelihood features but recorded no probe")
        self.likelihood_probe_ = ([float_list(r, path, "probe") for r in probe]
                                  if probe is not None else None)
        self.fit_info_ = dict(state.get("fit_info_") or {})
        self._lik = None


def _probe_images(size: int, n: int = 4) -> np.ndarray:
    """Fixed images (smooth gradients plus seeded noise) whose likelihood statistics
    fingerprint a scoring model: a different model gives different numbers."""
    rng = np.random.default_rng(PROBE_SEED)
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1)
    base = np.stack([yy, xx, (yy + xx) / 2], -1) * 200 + 20
    out = base[None] + rng.normal(0, 20, (n, size, size, 3))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


__all__ = [
    "FEATURE_GROUPS",
    "HAND_FEATURES",
    "FeaturesDetector",
    "TreeEnsemble",
    "fit_boosting",
    "hand_features",
    "learn_palette",
]
