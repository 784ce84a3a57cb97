"""Detectors of synthetic images behind one interface (see ``base``), found by name.

``create_detector("likelihood", pretrained=True)`` is the zero-shot likelihood detector with
the calibration shipped for the bundled default generator; ``load_detector(DIR)`` loads any
saved detector. Scores: higher = more likely synthetic.
"""

from . import baselines, cnn, features, fusion, likelihood  # noqa: F401  (register the detectors)
from .base import (
    Detector,
    Localization,
    calibrate_threshold,
    check_images,
    create_detector,
    list_detectors,
    load_detector,
    register_detector,
)
from .likelihood import LikelihoodDetector

__all__ = [
    "Detector",
    "LikelihoodDetector",
    "Localization",
    "calibrate_threshold",
    "check_images",
    "create_detector",
    "list_detectors",
    "load_detector",
    "register_detector",
]
