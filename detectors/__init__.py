"""Detectors of synthetic images behind one interface (see ``base``), found by name.

``create_detector("likelihood", pretrained=True)`` is the zero-shot likelihood detector with
the calibration shipped for the bundled default generator; ``load_detector(DIR)`` loads any
saved detector. Scores: higher = more likely synthetic.

Importing this package imports no torch: each detector's module is imported when its name is
first looked up (`base.BUILTIN`), and ``LikelihoodDetector`` when it is first used.
"""

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


def __getattr__(name: str):
    if name == "LikelihoodDetector":
        from .likelihood import LikelihoodDetector

        return LikelihoodDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
