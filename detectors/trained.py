"""What the trained detectors (``cnn``, ``features``, ``fusion``) share.

- `TrainedDetector`: the base class. ``fit(real_images, fake_images, fake_masks=None,
  val=None, progress=None)``: real and fake uint8 batches, ``fake_masks`` bool ``(N, H, W)``
  (True = synthesized; None = wholly synthetic), ``val`` an optional ``(real, fake)`` pair (or
  ``(real, fake, fake_masks)``) held out from training, for early stopping and for the
  threshold, which is always calibrated on *real* images only (`calibrate_threshold`, to
  ``target_fpr``). Without ``val`` a fifth of the training images is held back for it.
- Integrity: a saved trained detector records the sha256 of everything it was saved with
  (parameters, learned state, every array); loading recomputes it and refuses a folder whose
  JSON or arrays were edited. Nothing is ever unpickled: networks are safetensors, scikit-learn
  models are stored as their numbers (coefficients, tree arrays) and evaluated by hand.
- `load_arrays`: one split of a labeled dataset (`igpt_forensics.splits`, the one split
  reader), stacked for training, each file of a generated dataset checked against its sha256.
- `SizeCalibrated`: thresholds per image side from real images (``calibrate_sizes``), for
  detectors whose scores grow with the image (``cnn``, and a ``fusion`` of such members).

``progress(advance, total, **info)``: ``advance`` units of work just done out of ``total``;
``info`` carries live fields (``stage``, ``loss``, ``val_auc``...) a progress bar may show.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from igpt_forensics import provenance as pv
from igpt_forensics.data import MAX_PATCH_SIZE
from igpt_forensics.errors import InputError
from igpt_forensics.splits import Split, layout, load_split, split_counts

from .base import (
    DEFAULT_TARGET_FPR,
    META_FILE,
    Detector,
    Images,
    calibrate_threshold,
    check_images,
)

Progress = Callable[..., None]  # progress(advance, total, **info)
DIGEST_KEY = "sha256"
VAL_FRACTION = 0.2


# -- inputs of fit -----------------------------------------------------------------------------

@dataclass
class FitData:
    """Checked training inputs: equal-size uint8 batches and boolean masks."""

    real: np.ndarray  # (Nr, S, S, 3) uint8
    fake: np.ndarray  # (Nf, S, S, 3) uint8
    fake_masks: np.ndarray  # (Nf, S, S) bool, True = synthesized
    val_real: np.ndarray
    val_fake: np.ndarray
    val_masks: np.ndarray
    val_given: bool  # False: val was split off the training images

    @property
    def size(self) -> tuple[int, int]:
        return self.real.shape[1], self.real.shape[2]


def _stack(images: Images, name: str) -> np.ndarray:
    items = check_images(images, name)
    shapes = {im.shape for im in items}
    if len(shapes) > 1:
        raise InputError(f"{name}: trained detectors fit on images of one size, got "
                         f"{len(shapes)} sizes ({', '.join(str(s[:2]) for s in sorted(shapes))}"
                         "); crop or resize them first")
    return np.stack(items)


def _masks(masks: Any, fake: np.ndarray, name: str) -> np.ndarray:
    if masks is None:
        return np.ones(fake.shape[:3], bool)
    masks = np.asarray(masks)
    if masks.shape != fake.shape[:3]:
        raise InputError(f"{name} must have shape {fake.shape[:3]} (one mask per fake image), "
                         f"got {masks.shape}")
    if masks.dtype != bool:
        raise InputError(f"{name} must be bool (True = synthesized), got {masks.dtype}")
    return masks


def prepare_fit(real_images: Images, fake_images: Images | None, fake_masks: Any = None,
                val: Sequence | None = None, seed: int = 0, min_each: int = 2) -> FitData:
    """Validate ``fit``'s inputs once; split off a validation part when ``val`` is None."""
    if fake_images is None:
        raise InputError("trained detectors need fake images: fit(real_images, fake_images)")
    real = _stack(real_images, "real_images")
    fake = _stack(fake_images, "fake_images")
    if real.shape[1:] != fake.shape[1:]:
        raise InputError(f"real images are {real.shape[1:3]} but fakes are {fake.shape[1:3]}")
    masks = _masks(fake_masks, fake, "fake_masks")
    if val is not None:
        if not isinstance(val, (tuple, list)) or len(val) not in (2, 3):
            raise InputError("val must be a (real_images, fake_images) or (real_images, "
                             "fake_images, fake_masks) pair")
        vr, vf = _stack(val[0], "val real images"), _stack(val[1], "val fake images")
        if vr.shape[1:] != real.shape[1:] or vf.shape[1:] != real.shape[1:]:
            raise InputError(f"validation images must be {real.shape[1:3]} like the training "
                             "images")
        vm = _masks(val[2] if len(val) == 3 else None, vf, "val fake_masks")
        data = FitData(real, fake, masks, vr, vf, vm, True)
    else:
        rng = np.random.default_rng([seed, 7])
        hr = rng.permutation(len(real)) < max(1, round(VAL_FRACTION * len(real)))
        hf = rng.permutation(len(fake)) < max(1, round(VAL_FRACTION * len(fake)))
        data = FitData(real[~hr], fake[~hf], masks[~hf], real[hr], fake[hf], masks[hf], False)
    for what, n in (("real", len(data.real)), ("fake", len(data.fake)),
                    ("validation real", len(data.val_real)),
                    ("validation fake", len(data.val_fake))):
        if n < min_each:
            raise InputError(f"need at least {min_each} {what} images to fit, got {n}")
    return data


def group_by_shape(items: list[np.ndarray]) -> dict[tuple[int, ...], list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(items):
        groups.setdefault(im.shape, []).append(i)
    return groups


# -- integrity ---------------------------------------------------------------------------------

def _canonical(obj: Any) -> Any:
    """What JSON gives back (tuples -> lists, ...), so a digest is the same before and after."""
    return json.loads(json.dumps(obj))


def state_digest(params: dict, state: dict, arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the parameters, the learned state (without its digest) and every array
    (name, dtype, shape and bytes), in a fixed order."""
    h = hashlib.sha256(b"igpt-forensics-trained-detector-v1\n")
    body = {k: v for k, v in state.items() if k != DIGEST_KEY}
    h.update(json.dumps(_canonical({"params": params, "state": body}), sort_keys=True,
                        separators=(",", ":")).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\n{name}:{a.dtype.str}:{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class TrainedDetector(Detector):
    """Base of the trained detectors: sealed save/load, ``fit_info_``, ``describe``.

    Subclasses implement ``_learned_state()`` -> (JSON dict, arrays) and
    ``_restore(state, arrays, path)``; this class adds and checks the digest.
    """

    target_fpr: float = DEFAULT_TARGET_FPR

    @abstractmethod
    def _learned_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state: a JSON-able dict and named arrays (sealed by ``_get_state``)."""

    @abstractmethod
    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], path: Path,
                 ) -> None:
        """Restore what ``_learned_state`` returned, after its digest was checked."""

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state, arrays = self._learned_state()
        state = _canonical(state)
        state[DIGEST_KEY] = state_digest(self.get_params(), state, arrays)
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray], path: Path,
                   ) -> None:
        try:
            saved_params = json.loads((Path(path) / META_FILE).read_text())["params"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: unreadable {META_FILE} ({e})") from None
        want = state.get(DIGEST_KEY)
        if not isinstance(want, str):
            raise InputError(f"{path}: no recorded sha256 in {META_FILE}: refusing a trained "
                             "detector that cannot be checked")
        got = state_digest(saved_params, state, arrays)
        if got != want:
            raise InputError(f"{path}: sha256 of the saved detector does not match the one "
                             "recorded when it was saved (files edited or corrupted): refusing "
                             "to load it")
        size = state.get("image_size_")  # the side every image is tiled or scaled to
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                                 or not 2 <= size <= MAX_PATCH_SIZE):
            raise InputError(f"{path}: image_size_ {size!r} is not a side in "
                             f"2..{MAX_PATCH_SIZE} pixels")
        self._restore(state, arrays, Path(path))

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({k: getattr(self, k, None) for k in ("region_threshold_", "map_threshold_",
                                                        "fit_info_")})
        return out


SIZE_KEYS = ("sides", "image", "region", "map", "n")
FEW_KEYS = ("few_image", "few_region", "few_n")  # with "few_colors": the band of few colors


def distinct_colors(image: np.ndarray, limit: int | None = None) -> int:
    """Distinct colors of an image (H, W, C) uint8. With ``limit``, a large image is first
    counted on a regular sample of 65,536 of its pixels, and a sample count above ``limit``
    is returned as it is (then a lower bound: enough to know the image has more)."""
    flat = np.ascontiguousarray(image.reshape(-1, image.shape[-1] if image.ndim == 3 else 1))
    packed = np.zeros(len(flat), np.uint32)
    for c in range(min(flat.shape[1], 4)):
        packed |= flat[:, c].astype(np.uint32) << np.uint32(8 * c)
    if limit is not None and packed.size > 1 << 16:
        sample = np.unique(packed[::packed.size // (1 << 16)])
        if sample.size > limit:
            return int(sample.size)
    return int(np.unique(packed).size)


class SizeCalibrated(TrainedDetector):
    """A trained detector with thresholds for every image size (``calibrate_sizes``).

    Its scores, region scores and maps, before any size term (`_unshifted_outputs`), are
    measured on real images of several sides; per side the image and region thresholds at
    ``target_fpr`` and the map threshold at ``map_fpr`` (at least 0.5) make a table, saved
    as ``size_calibration_``. Scores and region scores are then shifted by the difference
    to the smallest side's thresholds and masks read the side's map threshold, interpolated
    in log side between calibrated sides and clamped at the ends (`_size_terms`), so that
    ``threshold_`` and ``region_threshold_`` stay one number each.

    Images of few colors (``few_colors``): real images through a palette of a few dozen
    colors score higher than photographs and rich palettes, so one threshold over all real
    crops, most of them photographs (about none above it), let through 2% of real test crops
    through palettes fitted the way a generator fits its own (5.6% at 32 colors; measured,
    docs/results.md). With ``few_colors=K`` an image of at most K distinct colors is judged
    by thresholds calibrated on the real images of at most K colors alone (by side, like
    the rest), never below those over all real images, which judge every other image as
    before. Not thresholds from the others alone: a palette image saved as JPEG has hundreds
    of colors and still scores like a palette image, and those let 8.9% of a held-out
    generator's quantized reals through after JPEG 75 (3.2% with the thresholds over all).
    So no image's threshold is below what it was, and the few colors' hold the target on
    their own. Tables saved without it judge every image alike.
    """

    size_calibration_: dict | None = None

    @abstractmethod
    def _unshifted_outputs(self, items: list[np.ndarray],
                           ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Scores (N,), region scores (N,) and the maps the map threshold applies to, with
        no size term of this detector's own."""

    def calibrate_sizes(self, views: dict[int, Sequence[np.ndarray]],
                        progress: Any = None, few_colors: int | None = None,
                        ) -> SizeCalibrated:
        """Thresholds for every image size from real images (``side -> images of that side``,
        e.g. `igpt_forensics.data.real_views`); the smallest side's become ``threshold_``,
        ``region_threshold_`` and ``map_threshold_``. Replaces any earlier size calibration.
        ``few_colors``: images of at most this many distinct colors get thresholds of their
        own, at least those over all (see the class; ``few_n`` of the ``n`` images of a side
        are of few colors; a side with none gives them those over all).
        ``progress(images, total)`` after each side."""
        self._check_fitted()
        if not views:
            raise InputError("no real images to calibrate the sizes on")
        if few_colors is not None and (isinstance(few_colors, bool)
                                       or not 1 <= int(few_colors) <= 1 << 24):
            raise InputError(f"few_colors must be 1 to 2**24 distinct colors, got {few_colors}")
        table: dict[str, Any] = {k: [] for k in SIZE_KEYS}
        if few_colors is not None:
            table.update({"few_colors": int(few_colors), **{k: [] for k in FEW_KEYS}})
        total = sum(len(v) for v in views.values())
        for side in sorted(views):
            items = check_images(list(views[side]))
            scores, region, maps = self._unshifted_outputs(items)
            pixels = np.concatenate([m.ravel() for m in maps])
            table["sides"].append(int(side))
            table["image"].append(calibrate_threshold(scores, self.target_fpr))
            table["region"].append(calibrate_threshold(region, self.target_fpr))
            table["map"].append(max(0.5, float(np.quantile(pixels, 1.0 - self.map_fpr,
                                                           method="higher"))))
            table["n"].append(len(items))
            if few_colors is not None:
                few = np.array([distinct_colors(im, few_colors) <= few_colors for im in items])
                for key, values, main in (("few_image", scores, "image"),
                                          ("few_region", region, "region")):
                    own = (calibrate_threshold(values[few], self.target_fpr) if few.any()
                           else -np.inf)
                    table[key].append(max(own, table[main][-1]))
                table["few_n"].append(int(few.sum()))
            if progress is not None:  # images scored, side by side
                progress(len(items), total)
        self.size_calibration_ = table
        self.threshold_ = table["image"][0]
        self.region_threshold_ = table["region"][0]
        self.map_threshold_ = table["map"][0]
        return self

    def _size_terms(self, image: np.ndarray) -> tuple[float, float, float]:
        """(score shift, region shift, map threshold) for this image (by its size, and by
        its colors when the table has a band of few colors)."""
        table = self.size_calibration_
        if not table:
            return 0.0, 0.0, float(getattr(self, "map_threshold_", 0.5))
        shape = image.shape[:2]
        at = np.log2(np.sqrt(float(shape[0]) * float(shape[1])))
        sides = np.log2(np.asarray(table["sides"], np.float64))
        few = ("few_colors" in table
               and distinct_colors(image, table["few_colors"]) <= table["few_colors"])
        image_key, region_key = ("few_image", "few_region") if few else ("image", "region")

        def interp(key: str) -> float:
            return float(np.interp(at, sides, np.asarray(table[key], np.float64)))

        return (interp(image_key) - table["image"][0], interp(region_key) - table["region"][0],
                interp("map"))


def checked_size_table(table: Any, path: Path) -> dict | None:
    """A saved size calibration, checked: equal-length lists of finite numbers, sides
    increasing and positive; and, when it has a band of few colors, its count and lists."""
    if table is None:
        return None
    keys = SIZE_KEYS + (FEW_KEYS if isinstance(table, dict) and "few_colors" in table else ())
    try:
        cols = {k: [float(v) for v in table[k]] for k in keys}
        n = len(cols["sides"])
        few = table.get("few_colors")
        ok = (n >= 1 and all(len(c) == n for c in cols.values())
              and all(np.isfinite(v) for c in cols.values() for v in c)
              and all(a > 0 for a in cols["sides"])
              and all(a < b for a, b in zip(cols["sides"], cols["sides"][1:]))
              and (few is None or (isinstance(few, int) and not isinstance(few, bool)
                                   and 1 <= few <= 1 << 24)))
    except (TypeError, KeyError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise InputError(f"{path}: size_calibration_ is not a valid table of thresholds")
    out: dict[str, Any] = {k: ([int(v) for v in cols[k]] if k in ("sides", "n", "few_n")
                               else cols[k]) for k in keys}
    if "few_colors" in table:
        out["few_colors"] = int(table["few_colors"])
    return out


def float_list(values: Any, path: Path, name: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise InputError(f"{path}: empty {name}")
    return out


# -- datasets ----------------------------------------------------------------------------------

@dataclass
class SplitData:
    """The images of one split of a generated dataset."""

    real: np.ndarray  # (Nr, S, S, 3) uint8, the forms asked for
    fake: np.ndarray  # (Nf, S, S, 3) uint8
    fake_masks: np.ndarray  # (Nf, S, S) bool
    real_forms: list[str] = field(default_factory=list)  # form of each real image
    fake_kinds: list[str] = field(default_factory=list)  # mask kind of each fake
    real_ids: list[str] = field(default_factory=list)
    fake_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.real) + len(self.fake)

    def as_split(self, name: str = "split") -> Split:
        """The same images as a `splits.Split` (lists, reading order kept): what the one
        evaluator (`igpt_forensics.bench.split_report`) reads."""
        out = Split(name, Path(name), "test")
        for image, form, i in zip(self.real, self.real_forms, self.real_ids):
            out.add(form, image, i)
        for image, mask, kind, i in zip(self.fake, self.fake_masks, self.fake_kinds,
                                        self.fake_ids):
            out.add("fake", image, i, mask, kind)
        return out

    @classmethod
    def concat(cls, parts: Sequence[SplitData]) -> SplitData:
        """One split of several datasets (a pool of generators), in the order given."""
        if len(parts) == 1:
            return parts[0]
        sizes = {p.real.shape[1:] for p in parts} | {p.fake.shape[1:] for p in parts}
        if len(sizes) != 1:
            raise InputError(f"the datasets hold images of different sizes {sorted(sizes)}; "
                             "train on datasets of one size")
        return cls(np.concatenate([p.real for p in parts]),
                   np.concatenate([p.fake for p in parts]),
                   np.concatenate([p.fake_masks for p in parts]),
                   sum((p.real_forms for p in parts), []), sum((p.fake_kinds for p in parts), []),
                   sum((p.real_ids for p in parts), []), sum((p.fake_ids for p in parts), []))

    def with_splices(self, per_fake: int, rng: np.random.Generator) -> SplitData:
        """These images plus ``per_fake`` spliced fakes for each fake that has its item's
        quantized real (``ITEM-fake`` and ``ITEM-qreal``, as ``generate`` names them): the
        quantized real with the fake's pixels inside a random box (`masks.random_box`, a
        quarter to a half of each side) cut down to the fake's synthesized pixels; the mask
        is that cut. Same crop, same palette: only the generator's pixels differ, in boxes
        of every size and place, with real pixels on all four sides (what box completions
        look like to a map). A fake with no synthesized pixel in its mask (a VQ ``recon``)
        gets none. Raises when no fake has its quantized real."""
        from igpt_forensics.masks import box_mask, random_box

        qreal = {name.removesuffix("-qreal"): i for i, name in enumerate(self.real_ids)
                 if name.endswith("-qreal")}
        size = self.fake.shape[1]
        images, masks, ids = [], [], []
        for j, name in enumerate(self.fake_ids):
            k = qreal.get(name.removesuffix("-fake")) if name.endswith("-fake") else None
            if k is None or self.fake[j].shape[:2] != (size, size):  # generate's are square
                continue
            for c in range(per_fake):
                for _ in range(16):  # a box that meets the synthesized pixels
                    cut = box_mask(size, random_box(size, rng)) & self.fake_masks[j]
                    if cut.any():
                        break
                else:
                    continue
                images.append(np.where(cut[..., None], self.fake[j], self.real[k]))
                masks.append(cut)
                ids.append(f"{name}-splice{c}")
        if per_fake > 0 and not images:
            raise InputError("--splices needs fakes paired with their quantized reals "
                             "(ITEM-fake and ITEM-qreal, as 'generate' writes them, with "
                             "qreal among the real forms); these images have none")
        if not images:
            return self
        return SplitData(self.real, np.concatenate([self.fake, np.stack(images)]),
                         np.concatenate([self.fake_masks, np.stack(masks)]), self.real_forms,
                         [*self.fake_kinds, *["splice"] * len(images)], self.real_ids,
                         [*self.fake_ids, *ids])


REAL_FORMS = ("real", "qreal")
MAX_SPLICES = 8  # spliced fakes per fake (`SplitData.with_splices`)


def parse_real_forms(text: str | Sequence[str]) -> tuple[str, ...]:
    forms = [f.strip() for f in (text.split(",") if isinstance(text, str) else text)
             if f.strip()]
    if not forms or any(f not in REAL_FORMS for f in forms):
        raise InputError(f"real forms must be among {', '.join(REAL_FORMS)}, got {text!r}")
    return tuple(dict.fromkeys(forms))


def _center_crop(image: np.ndarray, h: int, w: int) -> np.ndarray:
    top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return image[top:top + h, left:left + w]


def stack_split(data: Split, real_forms: Sequence[str] = REAL_FORMS) -> SplitData:
    """A split as arrays for training: reals of ``real_forms`` in reading order, fakes, masks.

    Images of several sizes (an outside folder) are center-cropped to the most common size;
    an image smaller than it is left out with one line in ``data.skipped``.
    """
    real, forms, real_ids = data.reals(parse_real_forms(real_forms))
    sizes = Counter(im.shape[:2] for im in [*real, *data.fake])
    h, w = max(sizes, key=lambda s: (sizes[s], s)) if sizes else (0, 0)

    def fit(images: list[np.ndarray], ids: list[str]) -> list[int]:
        keep = []
        for i, (im, name) in enumerate(zip(images, ids)):
            if im.shape[0] >= h and im.shape[1] >= w:
                keep.append(i)
            else:
                data.skipped.append(f"{name}: {im.shape[1]}x{im.shape[0]}, smaller than the "
                                    f"{w}x{h} the other images are cropped to (left out)")
        return keep

    rk, fk = fit(real, real_ids), fit(data.fake, data.ids["fake"])
    if not rk or not fk:
        raise InputError(f"{data.folder}: split '{data.split}' needs both real and fake "
                         f"images (has {len(rk)} real, {len(fk)} fake)")
    return SplitData(
        _stack([_center_crop(real[i], h, w) for i in rk], f"{data.folder} real images"),
        _stack([_center_crop(data.fake[i], h, w) for i in fk], f"{data.folder} fake images"),
        np.stack([_center_crop(data.masks[i], h, w) for i in fk]),
        [forms[i] for i in rk], [data.kinds[i] for i in fk], [real_ids[i] for i in rk],
        [data.ids["fake"][i] for i in fk])


def load_arrays(dataset: str | Path, split: str, real_forms: Sequence[str] = REAL_FORMS,
                max_items: int | None = None, mask_kinds: Sequence[str] | None = None,
                progress: Progress | None = None) -> SplitData:
    """Images of ``split`` (train, val or test) of a labeled dataset (`splits.load_split`:
    one written by ``generate``, a ``0_real/ 1_fake`` folder or a CSV/JSONL list), stacked
    for training (`stack_split`).

    ``real_forms``: which real images (``real`` as photographed, ``qreal`` through the
    generator's palette, or both); ``max_items``: at most this many items (the first ones);
    ``mask_kinds``: only fakes of these kinds (``box`` covers every box). Each file of a
    generated dataset is checked against the manifest's sha256, so an altered dataset is
    refused, not learned from.
    """
    forms = parse_real_forms(real_forms)
    data = load_split(dataset, split, max_items, verify=True, forms=(*forms, "fake"),
                      mask_kinds=mask_kinds, progress=progress)
    return stack_split(data, forms)


TRAINED_KINDS = ("cnn", "features", "fusion")


def check_splits(dataset: str | Path, splits: Sequence[str]) -> None:
    """Refuse before any work when a split the job needs has no images (counted without
    decoding one): e.g. a folder of few photos whose test split is empty."""
    counts = split_counts(dataset)
    for split in splits:
        if not counts.get(split):
            raise InputError(f"{dataset}: no images in split '{split}' (its images: "
                             f"{', '.join(f'{k} {v}' for k, v in counts.items()) or 'none'}); "
                             "generate from more photos, or give the split explicitly with "
                             "train/ val/ test/ subfolders")


def check_splices(splices: Any, kind: str) -> None:
    """Refuse a bad ``splices`` count (`train_on_dataset`) before any data is read."""
    if isinstance(splices, bool) or not isinstance(splices, int) or not (
            0 <= splices <= MAX_SPLICES):
        raise InputError(f"--splices must be an integer from 0 to {MAX_SPLICES}, got {splices}")
    if splices and kind != "cnn":
        raise InputError(f"--splices is for --kind cnn (its maps learn from them), not {kind}")


def new_detector(kind: str, params: dict[str, Any] | None = None) -> Detector:
    """A ``kind`` detector with ``params``, checked before any data is read (a bad parameter
    is one clear error, not a failure after loading a pool)."""
    from .base import detector_class

    det = detector_class(kind)(**(params or {}))
    if hasattr(det, "_check_params"):
        det._check_params()
    return det


def train_on_dataset(dataset: str | Path | Sequence[str | Path], kind: str,
                     params: dict[str, Any] | None = None,
                     real_forms: Sequence[str] = REAL_FORMS, max_items: int | None = None,
                     progress: Progress | None = None, splices: int = 0) -> Detector:
    """Train a ``kind`` detector on one generated dataset or several (a pool of generators:
    their splits are joined); what ``train-detector`` runs.

    ``cnn`` and ``features`` learn on the train split and stop early / calibrate on the
    validation split. ``fusion`` stacks its members on the validation split (held out from
    the members, which learned on train) and calibrates its threshold out of fold.

    ``splices`` (``cnn``): that many spliced fakes per fake of each train split
    (`SplitData.with_splices`, seeded by the detector's seed and the dataset's place).
    """
    datasets = [dataset] if isinstance(dataset, (str, Path)) else list(dataset)
    if not datasets:
        raise InputError("name at least one --dataset")
    if kind not in TRAINED_KINDS:
        raise InputError(f"--kind must be one of {', '.join(TRAINED_KINDS)}, got '{kind}'")
    det = new_detector(kind, params)
    check_splices(splices, kind)
    for d in datasets:
        check_splits(d, ("val",) if kind == "fusion" else ("train", "val"))

    def load(split: str) -> SplitData:
        report = ((lambda n, total: progress(n, total, stage=f"loading {split}"))
                  if progress else None)
        parts = [load_arrays(d, split, real_forms, max_items, progress=report)
                 for d in datasets]
        if split == "train" and splices:
            for i, d in enumerate(datasets):  # only a cnn takes splices (check_splices)
                try:
                    parts[i] = parts[i].with_splices(splices,
                                                     np.random.default_rng([det.seed, i]))
                except InputError as e:
                    raise InputError(f"{d}: {e}") from None
        return SplitData.concat(parts)

    val = load("val")
    if kind == "fusion":
        det.fit(val.real, val.fake, val.fake_masks, progress=progress)
    else:
        train = load("train")
        det.fit(train.real, train.fake, train.fake_masks,
                val=(val.real, val.fake, val.fake_masks), progress=progress)
    det.fit_info_["trained_on"] = [trained_on(d) for d in datasets]
    if splices:  # the spliced fakes among the train fakes (fakes without a qreal have none)
        det.fit_info_["splices_per_fake"] = splices
        det.fit_info_["spliced_fakes"] = sum(k == "splice" for k in train.fake_kinds)
    return det


def split_trainer(kind: str) -> Callable[[Split, Split], Detector]:
    """A factory for the cross-dataset and leave-one-out protocols of `bench`: a fresh
    ``kind`` detector fitted on a train split (reals of both forms, fakes with their masks)
    and thresholded on the validation split. An unknown kind fails here, before any work."""
    from .base import create_detector

    create_detector(kind)

    def fit(train: Split, val: Split) -> Detector:
        det = create_detector(kind)
        return det.fit(train.real + train.qreal, train.fake, fake_masks=train.masks,
                       val=(val.real + val.qreal, val.fake))

    return fit


def trained_on(folder: str | Path) -> dict[str, Any]:
    """What a detector learned from, as its saved ``fit_info_`` keeps it: the dataset's
    folder name, the generator (sha256, family) and the sampling and mask settings, so that
    every figure can say which generators trained it. An outside folder or list names only
    itself and its layout."""
    kind = layout(folder)
    if kind != "generated":
        return {"dataset": Path(folder).name, "layout": kind}
    info = pv.read_info(folder)
    g, st = info.get("generator") or {}, info.get("settings") or {}
    return {"dataset": Path(folder).name, "generator_sha256": g.get("sha256"),
            "family": pv.generator_family(g),
            **{k: st[k] for k in ("n", "masks", "temperature", "top_k", "top_p", "seed")
               if k in st}}


__all__ = [
    "MAX_SPLICES",
    "FitData",
    "Progress",
    "REAL_FORMS",
    "SplitData",
    "TRAINED_KINDS",
    "TrainedDetector",
    "check_splices",
    "group_by_shape",
    "load_arrays",
    "stack_split",
    "parse_real_forms",
    "prepare_fit",
    "split_trainer",
    "state_digest",
    "train_on_dataset",
]
