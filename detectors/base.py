"""The one detector interface, a registry to find detectors by name, and their file format.

Every detector honours the same contract (scikit-learn's), so ``score``, ``bench`` and an
outside detector treat them all alike:

- the constructor stores parameters only (``get_params()`` returns them, JSON-able);
- ``fit(real_images, fake_images=None, **kw)`` learns and returns ``self``; learned state ends
  with an underscore (``threshold_``, ...);
- ``score(images)`` returns a float64 array, one number per image: **higher = more likely
  synthetic**. ``threshold_`` is calibrated on real images only, so that a fraction
  ``target_fpr`` (default 1%) of them score above it: ``score > threshold_`` is the verdict;
- ``localize(images)`` returns a `Localization`: per image a float32 map in [0, 1] at the
  image's own size (higher = more likely synthesized), a boolean mask of likely synthesized
  pixels, and a region score (the strongest local evidence, same direction);
- ``save(dir)`` / ``load_detector(dir)``: ``detector.json`` (kind, parameters, learned state as
  plain JSON) plus, for detectors with tensors, ``arrays.safetensors``. Never pickle.

Images are uint8 RGB: a batch ``(N, H, W, 3)`` or a list of ``(H, W, 3)`` of any sizes. They
are checked once here (`check_images`); inner code trusts them.

A detector is added by writing one class and decorating it with
``@register_detector("name")``; ``create_detector(name, **params)`` builds it,
``create_detector(name, pretrained=True)`` loads the calibration the package ships for it.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from igpt_forensics.errors import InputError
from igpt_forensics.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_regular,
    check_sha256sums,
    read_json,
    recover_folder,
    write_folder,
)
from igpt_forensics.metrics import calibrate_threshold  # noqa: F401  (part of this interface)

FORMAT = "igpt-forensics-detector-v1"
META_FILE, ARRAYS_FILE = "detector.json", "arrays.safetensors"
DEFAULT_TARGET_FPR = 0.01

Images = np.ndarray | Sequence[np.ndarray]


# -- inputs -----------------------------------------------------------------------------------

def check_images(images: Any, name: str = "images") -> list[np.ndarray]:
    """Validate uint8 RGB images once, at the boundary -> a list of ``(H, W, 3)`` arrays."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            raise InputError(f"{name}: got one image {images.shape}; pass a batch "
                             "(N, H, W, 3) or a list of images")
        if images.ndim != 4:
            raise InputError(f"{name} must be uint8 (N, H, W, 3) or a list of (H, W, 3), "
                             f"got shape {images.shape}")
        items = list(images)
    elif isinstance(images, (list, tuple)):
        items = [np.asarray(im) for im in images]
    else:
        raise InputError(f"{name} must be a uint8 array (N, H, W, 3) or a list of (H, W, 3) "
                         f"arrays, got {type(images).__name__}")
    if not items:
        raise InputError(f"{name}: no images")
    for i, im in enumerate(items):
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
            raise InputError(f"{name}[{i}] must be uint8 (H, W, 3), got {im.dtype} {im.shape}")
        if im.shape[0] < 1 or im.shape[1] < 1:
            raise InputError(f"{name}[{i}] has no pixels ({im.shape})")
    return items


# -- results ----------------------------------------------------------------------------------

@dataclass
class Localization:
    """Per image: ``maps[i]`` float32 (H, W) in [0, 1], ``masks[i]`` bool (H, W) (True = likely
    synthesized), ``region_scores[i]`` (higher = some region is more likely synthesized) and
    ``region_flags[i]`` (the region score is above the threshold calibrated on real images,
    for an image of this size).

    ``maps`` and ``masks`` are stacked arrays ``(N, H, W)`` when the images came as one array,
    lists when they came as a list.
    """

    maps: np.ndarray | list[np.ndarray]
    masks: np.ndarray | list[np.ndarray]
    region_scores: np.ndarray
    region_flags: np.ndarray

    def region_fractions(self) -> np.ndarray:
        """Fraction of each image's pixels in its mask."""
        return np.array([float(np.mean(m)) for m in self.masks])

    def verdicts(self, scores: np.ndarray, threshold: float) -> tuple[list[str], np.ndarray]:
        """The one verdict rule, and the region share that goes with it:

        - ``synthetic``: the image score is above the threshold (the whole image is judged);
        - ``region``: it is not, but the region score is above the region threshold (a part
          of the image looks synthesized);
        - ``real``: neither; its region share is then 0 (no region is reported).

        The share is the fraction of pixels in the mask (map above the map threshold) for
        ``synthetic`` and ``region``, so a verdict never contradicts the region it shows.
        """
        fractions = self.region_fractions()
        verdicts, shares = [], np.zeros(len(scores))
        for i, score in enumerate(np.asarray(scores, np.float64)):
            v = ("synthetic" if score > threshold else
                 "region" if self.region_flags[i] else "real")
            verdicts.append(v)
            shares[i] = fractions[i] if v != "real" else 0.0
        return verdicts, shares


MAX_BOXES = 20  # region boxes reported per image, largest first


def region_boxes(mask: np.ndarray, min_pixels: int = 4,
                 limit: int = MAX_BOXES) -> list[list[int]]:
    """Boxes ``[x0, y0, x1, y1]`` (pixels, ``x1``/``y1`` exclusive) around the connected parts
    (8-connected) of a mask of likely synthesized pixels, largest part first; parts under
    ``min_pixels`` are dropped, at most ``limit`` boxes."""
    from scipy import ndimage

    labels, n = ndimage.label(np.asarray(mask, bool), structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    slices = ndimage.find_objects(labels)
    order = sorted(range(n), key=lambda k: (-sizes[k], slices[k][0].start, slices[k][1].start))
    return [[slices[k][1].start, slices[k][0].start, slices[k][1].stop, slices[k][0].stop]
            for k in order if sizes[k] >= min_pixels][:limit]


def judge(detector: Any, images: Sequence[np.ndarray] | np.ndarray,
          **kwargs) -> tuple[list[dict], Localization]:
    """Score and localize images and apply the one verdict rule (`Localization.verdicts`):
    per image ``score``, ``verdict``, ``region_score``, ``region_fraction`` and ``boxes``
    (`region_boxes` of the mask; none for a ``real`` verdict, whose region share is 0).
    What ``score`` prints and the web page shows. ``kwargs`` go to ``score_and_localize``."""
    scores, loc = detector.score_and_localize(images, **kwargs)
    verdicts, shares = loc.verdicts(scores, detector.threshold_)
    rows = [{"score": float(scores[i]), "verdict": verdicts[i],
             "region_score": float(loc.region_scores[i]),
             "region_fraction": float(shares[i]),
             "boxes": region_boxes(loc.masks[i]) if verdicts[i] != "real" else []}
            for i in range(len(verdicts))]
    return rows, loc


def as_input_kind(items: list[np.ndarray], like: Any) -> np.ndarray | list[np.ndarray]:
    """Stack per-image results when the images came as one array; keep a list otherwise."""
    return np.stack(items) if isinstance(like, np.ndarray) else items


# -- the interface ----------------------------------------------------------------------------

class Detector(ABC):
    """Base class: subclasses implement ``fit``, ``score``, ``localize`` and the two state
    hooks ``_get_state`` / ``_set_state`` (JSON-able dict + named float arrays)."""

    name: ClassVar[str] = ""  # set by register_detector
    default_asset: ClassVar[Path | None] = None  # shipped calibration, for pretrained=True
    default_asset_command: ClassVar[str] = ""  # the command that makes it
    # parameters added after files were saved: the value a file without them meant
    legacy_params: ClassVar[dict[str, Any]] = {}
    # False when localize() only spreads a per-tile score over its tile (no pixel map):
    # benchmarks then report "no map" instead of region metrics of a constant map
    has_pixel_maps: ClassVar[bool] = True

    # parameters: whatever the subclass' __init__ takes, stored under the same names
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params) -> Detector:
        """Change parameters (scikit-learn's ``set_params``); learned state is kept, so only
        change what inference reads (e.g. ``tiling``, ``device``, ``batch_size``)."""
        bad = sorted(set(params) - set(self._param_names()))
        if bad:
            raise InputError(f"the {self.name} detector has no parameters {bad}")
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # the contract
    @abstractmethod
    def fit(self, real_images: Images, fake_images: Images | None = None, **kw) -> Detector:
        """Learn from real images (and fakes, if the detector needs them); return self."""

    @abstractmethod
    def score(self, images: Images) -> np.ndarray:
        """One float per image, higher = more likely synthetic."""

    @abstractmethod
    def localize(self, images: Images) -> Localization:
        """Per-pixel maps in [0, 1] at each image's size, masks and region scores."""

    @classmethod
    def ships_for(cls, model: str) -> bool:
        """Whether the shipped calibration was fitted for scoring model ``model`` (the same
        weights), so that ``score --model M`` can use it instead of calibrating again."""
        return False

    @classmethod
    def calibrated(cls, model: str, progress: Callable[[int, int], None] | None = None,
                   **params) -> Detector:
        """A detector fitted for scoring model ``model`` without outside data beyond the
        builtin photos (zero-shot detectors override this); others must be trained."""
        raise InputError(f"the {cls.name} detector cannot calibrate itself for a model: "
                         "train it and pass the saved folder as --detector")

    def score_and_localize(self, images: Images) -> tuple[np.ndarray, Localization]:
        """Both at once; detectors that share work between them override this."""
        return self.score(images), self.localize(images)

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "threshold_", None) is not None

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise InputError(f"the {self.name} detector is not fitted: call fit(...), or load "
                             "a saved one with load_detector(DIR)")

    def describe(self) -> dict[str, Any]:
        """What a report should say about this detector (kind, parameters, threshold)."""
        return {"kind": self.name, "params": self.get_params(),
                "threshold": getattr(self, "threshold_", None),
                "score": "higher = more likely synthetic"}

    # persistence
    @abstractmethod
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state: a JSON-able dict and named arrays (saved as safetensors)."""

    @abstractmethod
    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray], path: Path,
                   ) -> None:
        """Restore learned state saved by ``_get_state``; ``path`` is the folder, for errors."""

    def save(self, out_dir: str | Path) -> Path:
        """Write ``out_dir/detector.json`` (+ ``arrays.safetensors`` when there are tensors)
        and ``SHA256SUMS``, as a whole new folder swapped in for an older one (a kill at any
        point leaves the old detector or the new one, never a mix)."""
        self._check_fitted()
        return write_folder(out_dir, self._write_files, META_FILE)

    def _write_files(self, folder: Path) -> None:
        """The detector's files in ``folder`` (a fresh one); subclasses may add more."""
        state, arrays = self._get_state()
        meta = {"format": FORMAT, "kind": self.name, "params": self.get_params(),
                "state": state, "score": "higher = more likely synthetic"}
        if arrays:
            from safetensors.numpy import save as save_arrays

            atomic_write_bytes(folder / ARRAYS_FILE, save_arrays(
                {k: np.ascontiguousarray(v) for k, v in arrays.items()},
                metadata={"format": FORMAT}))
        atomic_write_text(folder / META_FILE, json.dumps(meta, indent=1))


# -- registry ---------------------------------------------------------------------------------

_DETECTORS: dict[str, type[Detector]] = {}
# The detectors this package brings, and the module of this package that registers each. A
# module is imported when its name is first looked up, so that listing the names (``score
# --help``) imports no torch. Where a calibration ships for one, it is ASSETS/NAME-default.
BUILTIN = {"likelihood": "likelihood", "cnn": "cnn", "features": "features",
           "fusion": "fusion", "rowcol": "baselines", "laplacian": "baselines",
           "colors": "baselines"}


def shipped_asset(name: str) -> Path:
    """Where the calibration a builtin detector ships with lives (present or not)."""
    from igpt_forensics.assets import ASSETS

    return ASSETS / f"{name}-default"


def register_detector(name: str):
    """Class decorator: ``@register_detector("likelihood")`` makes the class findable by name."""
    def register(cls: type[Detector]) -> type[Detector]:
        if name in _DETECTORS:
            raise ValueError(f"detector {name!r} is already registered")
        cls.name = name
        _DETECTORS[name] = cls
        return cls
    return register


def list_detectors() -> list[str]:
    """Every detector name: the builtin ones (imported or not) and those registered."""
    return sorted(set(BUILTIN) | set(_DETECTORS))


def ready_detectors() -> list[str]:
    """Detectors that score with no training: a calibration ships for them. Answered without
    importing the builtin detectors."""
    def asset(n: str) -> Path | None:
        return _DETECTORS[n].default_asset if n in _DETECTORS else shipped_asset(n)

    return [n for n in list_detectors() if asset(n) is not None
            and (asset(n) / META_FILE).exists()]


def detector_class(name: str) -> type[Detector]:
    if name not in _DETECTORS and name in BUILTIN:
        import importlib

        importlib.import_module(f"{__package__}.{BUILTIN[name]}")  # registers it
    if name not in _DETECTORS:
        raise InputError(f"unknown detector '{name}'; known detectors: "
                         f"{', '.join(list_detectors()) or 'none'} (or a saved detector folder)")
    return _DETECTORS[name]


def create_detector(name: str, pretrained: bool = False, **params) -> Detector:
    """A new detector by name, ``params`` passed to its constructor. ``pretrained=True``
    loads the calibration the package ships for it instead (``params`` then override saved
    parameters, e.g. ``device``)."""
    cls = detector_class(name)
    if not pretrained:
        return cls(**params)
    if cls.default_asset is None:
        raise InputError(f"the {name} detector ships no pretrained calibration: train one "
                         f"first (igpt-forensics train-detector --kind {name} --dataset DS "
                         "--out DET) and pass --detector DET")
    if not (cls.default_asset / META_FILE).exists():
        how = f"; make it with: {cls.default_asset_command}" if cls.default_asset_command else ""
        raise InputError(f"the {name} detector's shipped calibration is missing "
                         f"({cls.default_asset}){how}")
    return load_detector(cls.default_asset, **params)


def open_detector(spec: str | Path, model: str | Path | None = None,
                  progress: Callable[[int, int], None] | None = None, **overrides) -> Detector:
    """What ``score --detector SPEC [--model M]`` means.

    - ``module:Class``: an outside detector (`load_plugin`);
    - a folder: a saved detector (``model`` replaces the scoring model it names, checked);
    - a registered name without ``model``: the calibration the package ships for it;
    - a registered name with ``model``: the class calibrates itself for that model
      (``Detector.calibrated``; zero-shot detectors only), unless the shipped calibration was
      fitted for the same weights (``Detector.ships_for``).
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    path = Path(spec)
    if ":" in str(spec) and not path.exists():
        return load_plugin(str(spec))
    if path.is_dir():
        if model is not None:
            overrides["model"] = str(model)
        return load_detector(path, **overrides)
    cls = detector_class(str(spec))
    if model is None or cls.ships_for(str(model)):
        return create_detector(str(spec), pretrained=True, **overrides)
    return cls.calibrated(model=str(model), progress=progress, **overrides)


def load_plugin(spec: str) -> Any:
    """An outside detector ``module:Class``: a class honouring the detector contract, built
    with no arguments and already fitted (``score`` and ``threshold_``)."""
    import importlib

    module, _, cls_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError, ValueError) as e:
        raise InputError(f"--detector {spec}: cannot import ({e})") from None
    try:
        det = cls()
    except Exception as e:  # an outside class: anything may go wrong in it
        raise InputError(f"--detector {spec}: cannot build it with no arguments "
                         f"({type(e).__name__}: {e})") from None
    for need in ("score", "threshold_"):
        if not hasattr(det, need):
            raise InputError(f"--detector {spec}: has no '{need}' (see the detector "
                             "contract in detectors/base.py)")
    return det


def load_detector(path: str | Path, **overrides) -> Detector:
    """Load a folder written by ``Detector.save``; its kind picks the class.

    ``overrides`` replace saved parameters (e.g. ``model=`` when a checkpoint moved); each
    detector checks that what it loads still matches what it was fitted with. A saved
    ``device`` is where it was trained, not part of it: one this machine lacks (``cuda``
    without a GPU) loads as ``auto`` (the best device here) unless ``device`` is overridden;
    a ``device`` override is dropped for a detector that runs no model (a fusion's
    baseline member).
    """
    path = Path(path)
    recover_folder(path)  # a save that a kill interrupted
    meta_path = path / META_FILE
    if not path.is_dir():
        raise InputError(f"{path}: not a saved detector folder (expected {META_FILE})")
    meta = read_json(meta_path, f"{meta_path}: missing (not a saved detector folder?)",
                     f"{meta_path}: unreadable detector file", FORMAT)
    check_sha256sums(path)  # calibrated and shipped detectors list their files' hashes
    cls = detector_class(str(meta.get("kind")))
    for key in ("params", "state"):
        if not isinstance(meta.get(key) or {}, dict):
            raise InputError(f"{meta_path}: '{key}' must be an object")
    params = dict(meta.get("params") or {})
    unknown = sorted(set(params) - set(cls._param_names()))
    if unknown:
        raise InputError(f"{meta_path}: unknown parameters {unknown} for the {cls.name} "
                         "detector")
    for k, v in cls.legacy_params.items():  # a file saved before parameter k existed
        params.setdefault(k, v)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    saved = params.get("device")
    if isinstance(saved, str) and saved not in ("auto", "cpu") and "device" not in overrides:
        # where it ran is not what it learned: one trained on a GPU runs where there is none
        from igpt_forensics.device import pick_device

        try:
            pick_device(saved)
        except InputError:
            params["device"] = "auto"
    if "device" not in cls._param_names():
        overrides.pop("device", None)  # where to run: moot for one that runs no model
    bad = sorted(set(overrides) - set(cls._param_names()))
    if bad:
        raise InputError(f"the {cls.name} detector has no parameters {bad}")
    params.update(overrides)
    try:
        det = cls(**params)
    except TypeError as e:
        raise InputError(f"{meta_path}: bad parameters ({e})") from None
    arrays: dict[str, np.ndarray] = {}
    if (path / ARRAYS_FILE).exists():
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        check_regular(path / ARRAYS_FILE, "safetensors arrays file")  # not a FIFO: it hangs
        try:
            arrays = load_file(path / ARRAYS_FILE)
        except (SafetensorError, OSError, ValueError) as e:
            raise InputError(f"{path / ARRAYS_FILE}: corrupt arrays file ({e})") from None
    try:
        det._set_state(meta.get("state") or {}, arrays, path)
    except (KeyError, TypeError, ValueError, OverflowError) as e:  # int(1e400): Overflow
        if isinstance(e, InputError):
            raise
        raise InputError(f"{meta_path}: bad detector state ({type(e).__name__}: {e})") from None
    return det
