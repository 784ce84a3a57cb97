"""An outside detector: benchmark a detector this package does not ship.

Any class honouring the detector contract works with ``bench`` through its import path::

    igpt-forensics bench --dataset DS --detector examples.outside_detector:StreakDetector

The contract (see ``detectors/base.py``): built with no arguments; ``score(images)`` returns
one float per image, higher = more likely synthetic; ``threshold_`` is the verdict threshold
(calibrated on real images); optionally ``localize(images)`` returning an object with
``.maps`` (per-pixel scores in [0, 1] at each image's size) and ``.masks`` (bool).

This one is the trivial raster-order baseline of the field: a pixel-GPT draws a pixel right
after its left neighbour and long after the one above, so synthesized regions tend to be
smoother along rows than across them. Score = log of (column-difference energy /
row-difference energy); no training at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class _Maps:
    maps: list[np.ndarray]
    masks: list[np.ndarray]


class StreakDetector:
    threshold_ = 0.5  # uncalibrated: a ratio of energies, log scale

    def _energies(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = image.astype(np.float64).mean(-1)
        along_row = np.abs(np.diff(x, axis=1))  # neighbours in raster order
        across_rows = np.abs(np.diff(x, axis=0))
        return along_row, across_rows

    def score(self, images) -> np.ndarray:
        out = []
        for image in images:
            row, col = self._energies(np.asarray(image))
            out.append(np.log((col.mean() + 1.0) / (row.mean() + 1.0)))
        return np.array(out)

    def localize(self, images) -> _Maps:
        maps, masks = [], []
        for image in images:
            row, col = self._energies(np.asarray(image))
            h, w = np.asarray(image).shape[:2]
            r = np.pad(row, ((0, 0), (0, 1)), mode="edge")
            c = np.pad(col, ((0, 1), (0, 0)), mode="edge")
            m = 1.0 / (1.0 + np.exp(-(np.log((c + 1.0) / (r + 1.0)))))
            maps.append(m.astype(np.float32).reshape(h, w))
            masks.append(m > 0.5)
        return _Maps(maps, masks)
