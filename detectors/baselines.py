"""Trivial single-feature baselines, so a report shows what a real detector adds over them.

What the field knows: raster-order generation leaves row-wise traces, palette images have few colors,
and synthesized regions differ in local texture. Each baseline here is one hand-made pixel
statistic, nothing learned but its direction and its thresholds:

- ``rowcol``: log((|difference across rows| + 1) / (|difference along the row| + 1)); raster
  order makes a pixel-GPT's rows smoother than its columns (streaks);
- ``laplacian``: log(1 + |Laplacian|), local texture energy;
- ``colors``: distinct colors per pixel in 4x4 blocks.

``fit(real, fake)`` picks the direction (higher = more synthetic on the training images) and
calibrates ``threshold_`` on real images only (the validation reals when ``val`` is given);
``localize`` maps each pixel's windowed statistic to its quantile among real pixels, so a map
value of 0.99 means "stranger than 99% of real pixels" in the synthetic direction.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from igpt_forensics.errors import InputError

from .base import (
    DEFAULT_TARGET_FPR,
    Detector,
    Images,
    Localization,
    as_input_kind,
    calibrate_threshold,
    check_images,
    register_detector,
)

WINDOW = 4  # pixels: statistics are averaged over WINDOW x WINDOW blocks
QUANTILES = np.linspace(0.0, 1.0, 201)


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _box_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Mean over the w x w window around each pixel (edge-padded), same shape as ``x``."""
    p = np.pad(x, ((w // 2, w - 1 - w // 2), (w // 2, w - 1 - w // 2)), mode="edge")
    c = np.pad(p.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, wd = x.shape
    return (c[w:w + h, w:w + wd] - c[:h, w:w + wd] - c[w:w + h, :wd] + c[:h, :wd]) / (w * w)


def _region(pixel_map: np.ndarray) -> float:
    """Region score: the strongest 2*WINDOW-wide patch of the map (one odd pixel is not a
    region; every real image has a few)."""
    return float(_box_mean(pixel_map.astype(np.float64), 2 * WINDOW).max())


class BaselineDetector(Detector):
    """One pixel statistic, its direction and its real-image calibration."""

    statistic: ClassVar[str] = ""

    def __init__(self, target_fpr: float = DEFAULT_TARGET_FPR, map_fpr: float = 0.05):
        self.target_fpr = target_fpr
        self.map_fpr = map_fpr

    @abstractmethod
    def pixel_values(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float: the statistic around each pixel (before the direction)."""

    def image_value(self, image: np.ndarray) -> float:
        return float(self.pixel_values(image).mean())

    # -- the contract
    def fit(self, real_images: Images, fake_images: Images | None = None,
            val: Any = None, **kw) -> BaselineDetector:
        from sklearn.metrics import roc_auc_score

        real = check_images(real_images, "real_images")
        calib = check_images(val[0], "val real images") if val is not None else real
        self.sign_ = 1.0
        if fake_images is not None:
            fake = check_images(fake_images, "fake_images")
            values = [self.image_value(im) for im in real + fake]
            labels = np.r_[np.zeros(len(real)), np.ones(len(fake))]
            if roc_auc_score(labels, values) < 0.5:
                self.sign_ = -1.0
        self.threshold_ = calibrate_threshold(self._scores(calib), self.target_fpr)
        pix = np.concatenate([self.sign_ * self.pixel_values(im).ravel() for im in calib])
        self.pixel_quantiles_ = np.quantile(pix, QUANTILES).tolist()
        regions = [_region(self._pixel_map(im)) for im in calib]
        self.region_threshold_ = calibrate_threshold(np.asarray(regions), self.target_fpr)
        return self

    def score(self, images: Images) -> np.ndarray:
        self._check_fitted()
        return self._scores(check_images(images))

    def _scores(self, items: list[np.ndarray]) -> np.ndarray:
        return np.array([self.sign_ * self.image_value(im) for im in items])

    def _pixel_map(self, image: np.ndarray) -> np.ndarray:
        v = self.sign_ * self.pixel_values(image)
        return np.interp(v, self.pixel_quantiles_, QUANTILES).astype(np.float32)

    def localize(self, images: Images) -> Localization:
        self._check_fitted()
        maps = [self._pixel_map(im) for im in check_images(images)]
        region = np.array([_region(m) for m in maps], dtype=np.float64)
        return Localization(maps=as_input_kind(maps, images),
                            masks=as_input_kind([m > 1.0 - self.map_fpr for m in maps], images),
                            region_scores=region, region_flags=region > self.region_threshold_)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"sign_": self.sign_, "threshold_": self.threshold_,
                "region_threshold_": self.region_threshold_,
                "pixel_quantiles_": self.pixel_quantiles_}, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray], path: Path,
                   ) -> None:
        try:
            self.sign_ = float(state["sign_"])
            self.threshold_ = float(state["threshold_"])
            self.region_threshold_ = float(state["region_threshold_"])
            self.pixel_quantiles_ = [float(q) for q in state["pixel_quantiles_"]]
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: broken {self.name} detector state ({e})") from None
        if len(self.pixel_quantiles_) != len(QUANTILES):
            raise InputError(f"{path}: broken {self.name} detector state (quantiles)")


@register_detector("rowcol")
class RowColBaseline(BaselineDetector):
    def pixel_values(self, image: np.ndarray) -> np.ndarray:
        x = _luma(image)
        along = np.abs(np.diff(x, axis=1, append=x[:, -1:]))  # raster order's neighbours
        across = np.abs(np.diff(x, axis=0, append=x[-1:]))
        return np.log((_box_mean(across, WINDOW) + 1.0) / (_box_mean(along, WINDOW) + 1.0))

    def image_value(self, image: np.ndarray) -> float:
        x = _luma(image)
        return float(np.log((np.abs(np.diff(x, axis=0)).mean() + 1.0)
                            / (np.abs(np.diff(x, axis=1)).mean() + 1.0)))


@register_detector("laplacian")
class LaplacianBaseline(BaselineDetector):
    def pixel_values(self, image: np.ndarray) -> np.ndarray:
        x = np.pad(_luma(image), 1, mode="edge")
        lap = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
        return _box_mean(np.log1p(np.abs(lap)), WINDOW)


@register_detector("colors")
class ColorCountBaseline(BaselineDetector):
    def pixel_values(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        code = (image.astype(np.int64) * np.array([65536, 256, 1])).sum(-1)
        out = np.empty((h, w))
        for i in range(0, h, WINDOW):
            for j in range(0, w, WINDOW):
                block = code[i:i + WINDOW, j:j + WINDOW]
                out[i:i + WINDOW, j:j + WINDOW] = len(np.unique(block)) / block.size
        return out

    def image_value(self, image: np.ndarray) -> float:
        code = (image.astype(np.int64) * np.array([65536, 256, 1])).sum(-1)
        return len(np.unique(code)) / code.size


BASELINES = ("rowcol", "laplacian", "colors")
