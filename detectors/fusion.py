"""The ``fusion`` detector: a calibrated combination of other detectors' scores.

``members`` names the detectors to combine, as ``score --detector`` does: saved detector
folders (a calibrated ``likelihood`` detector, trained ``cnn`` and ``features`` detectors)
or a registered name (its shipped calibration). ``fit`` stacks a logistic regression
(standardized member scores, balanced classes, scikit-learn) on the images it is given, so
these must be *held out* from every member's training (``train-detector --kind fusion`` uses
the dataset's validation split while the members learned on its train split): the
regression then learns how far each member's score can be trusted on unseen images, and its
output is a calibrated log-odds. With ``combine="mean"`` nothing is fitted but the scaler:
the score is the members' mean z-score, for members alike in kind and strength (several
trainings of one recipe), which a regression fitted on the validation splits the members
early-stopped on weighs by noise. The threshold is calibrated on real images the regression
did not see: ``val``'s real images when given, otherwise out-of-fold scores (``folds``-fold
cross-fitting) of the real images fitted on.

Maps: the members' maps averaged with weights proportional to the regression's positive
(standardized) coefficients, so a member the regression ignores does not paint the map;
members without dense maps (``features``: one value per tile) are left out of the map; or,
when ``map_members`` names them, the maps of those members with equal weights. The
region score is the fused map's maximum. Masks (``masks="vote"``, the default since
2026-12-05) are a weighted vote of the members' own masks, with the same weights: a pixel is
in the mask when members holding at least half the weight put it in theirs (2 of 3 equal
members); region flags likewise, so that each member's thresholds by image size hold (one
threshold on the fused map's maximum is calibrated at the validation images' size only), or
of ``mask_members`` when named (equal weights).
Each member's mask is calibrated on real pixels its own way (the cnn's relative maps keep an
absolute threshold besides the image's median), and one threshold on the mean of such maps
is not: measured leave-one-generator-out, thresholding the fused map
(``masks="threshold"``, what files saved before load with) cut the IoU of the cnn's masks on
VQ completions from 0.63-0.71 to 0.00-0.01 (docs/results.md).

Members for maps alone (``score_members``): a member not named there draws maps (or masks)
but its score does not enter the combination, and is not computed when only scores are asked
for. Measured on three held-out pixel-GPTs: the shipped map member's maps averaged with those
of a cnn with full-resolution context layers lift box maps (0.764 / 0.813 / 0.826 -> 0.804 /
0.851 / 0.849), but that cnn scores images below the six score members, and the vote of two
equal map members is their union, which flagged 12.5% of 512 px real crops where one member
flagged 6%: so it draws maps and nothing else (docs/results.md).

Images of other sizes and palettes (``calibrate_sizes``, `SizeCalibrated`; ``calibrate
--detector FUSION``): the threshold from the validation split holds for images like those
(32x32, photographed or through the bundled palette), not for real photos of other sizes or
palettes, although each cnn member's own thresholds do (measured: the first shippable fusion
flagged 20% of 32x32 real crops through palettes of 24-200 colors and 31% at 128 px, its
members 0-2%). Calibrated like a cnn, on the same crops, its thresholds per side replace it;
the shipped one gives images of at most 64 colors thresholds of their own (``few_colors``,
`SizeCalibrated`: one threshold over all real crops, half of them photographs it never flags,
let 2.1% of real test crops through generator-fitted palettes; 0.65% now).

Saved self-contained: every member is saved again under ``members/`` of the fusion folder,
and the sha256 of each of their files is recorded with the fusion's own state, so an edited
member is refused as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from igpt_forensics.errors import InputError, check_choice
from igpt_forensics.files import inside, sha256_file

from .base import (
    DEFAULT_TARGET_FPR,
    META_FILE,
    Detector,
    Images,
    Localization,
    as_input_kind,
    calibrate_threshold,
    check_images,
    load_detector,
    open_detector,
    register_detector,
    shipped_asset,
)
from .config import FUSION_COMBINES
from .linear import LinearModel
from .trained import Progress, SizeCalibrated, checked_size_table

MEMBERS_DIR = "members"
MASK_RULES = ("vote", "threshold")
SCORE_CLIP = 1e6  # member scores are finite log-odds; this only guards the scaler
CALIBRATION_CHUNK = 32  # images whose member maps are held at once while calibrating sizes


def _member_files(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder/members``, keyed by POSIX path relative to it."""
    root = folder / MEMBERS_DIR
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def _nth(per_member: list[list[np.ndarray] | None], i: int) -> list[np.ndarray | None]:
    """Image ``i``'s map (or mask) from each member's list; None for a member that drew none."""
    return [None if m is None else m[i] for m in per_member]


@register_detector("fusion")
class FusionDetector(SizeCalibrated):
    """Logistic regression stacked on member detectors' scores (see the module docstring).

    Parameters: ``members`` detector folders or names; ``C`` the regression's inverse
    regularization; ``folds`` for out-of-fold threshold calibration; ``target_fpr``,
    ``map_fpr`` (for ``masks="threshold"``); ``seed``; ``device`` passed to members that run
    models (None: as saved); ``masks``, how masks are made (`MASK_RULES`: ``vote`` of the
    members' masks, or ``threshold`` on the fused map); ``combine`` (`FUSION_COMBINES`), how
    scores are combined: the fitted ``regression`` (members of different kinds and strengths), or
    the ``mean`` of the standardized scores (like members, e.g. one recipe trained several
    times: measured leave-one-generator-out on the five held-out pixel-GPTs, three cnns of
    one recipe averaged 0.908 image AUC where the regression, fitted on the validation
    splits their training had early-stopped on, gave 0.903 and the best member 0.900);
    ``map_members``, the members (by position, 0 first) whose maps, masks and region flags
    make the fusion's (None: every member with dense maps), so that members can score images
    together while the one trained for maps draws them; ``mask_members``, those whose masks
    and region flags vote (None: as ``map_members``); ``score_members``, those whose scores
    enter the combination (None: all).

    ``score --detector fusion`` is the one the package ships (``make fusion-default``): six
    cnns trained apart, four on the pool (the shipped cnn, its recipe at seed 1, and its recipe
    with the dense loss on relative maps, ``relative_weight=1``, at seeds 0 and 1) and two on
    the photo pool and its generator's box completions (its recipe on datasets made over 28
    photos, seeds 0 and 1), each calibrated by size, their scores averaged
    (``combine="mean"``, ``score_members`` the six); a seventh and an eighth, the map recipe
    with full-resolution context layers on those datasets and a second pixel-GPT's box
    completions at seeds 0 and 1, for maps alone: the third, the seventh and the eighth draw
    the maps (``map_members=[2, 6, 7]``), the third alone votes masks and region flags
    (``mask_members=[2]``); then calibrated by size itself.
    """

    default_asset = shipped_asset("fusion")
    default_asset_command = "make fusion-default"
    legacy_params = {"masks": "threshold"}

    def __init__(self, members: Sequence[str] = ("likelihood",), C: float = 1.0,
                 folds: int = 5, target_fpr: float = DEFAULT_TARGET_FPR,
                 map_fpr: float = 0.05, seed: int = 0, device: str | None = None,
                 masks: str = "vote", combine: str = "regression",
                 map_members: Sequence[int] | None = None,
                 mask_members: Sequence[int] | None = None,
                 score_members: Sequence[int] | None = None):
        self.members = members
        self.C = C
        self.folds = folds
        self.target_fpr = target_fpr
        self.map_fpr = map_fpr
        self.seed = seed
        self.device = device
        self.masks = masks
        self.combine = combine
        self.map_members = map_members
        self.mask_members = mask_members
        self.score_members = score_members

    def _open_members(self) -> list[Detector]:
        specs = [str(m) for m in self.members]
        if not specs:
            raise InputError("fusion needs at least one member detector")
        out = [open_detector(s, device=self.device) for s in specs]
        for s, m in zip(specs, out):
            if isinstance(m, FusionDetector):
                raise InputError(f"member {s}: a fusion detector cannot be a member")
        return out

    def _scoring(self) -> list[int]:
        """Positions of the members whose scores enter the combination."""
        n = len(self.members)
        return list(range(n)) if self.score_members is None else sorted(set(self.score_members))

    def _drawing(self) -> list[int]:
        """Positions of the members whose maps, masks or region flags may be used: the named
        map and mask members, or (unnamed: ``mask_members`` needs ``map_members``) every
        member with dense maps (all of them when none has)."""
        if self.map_members is not None:
            return sorted(set(self.map_members) | set(self.mask_members or ()))
        dense = [i for i, m in enumerate(self.members_) if getattr(m, "dense_maps", True)]
        return dense or list(range(len(self.members_)))

    def member_outputs(self, images: list[np.ndarray], maps: bool,
                       progress: Progress | None = None, total: int = 0):
        """(N, S) scores of the score members (`_scoring`), and when ``maps`` every member's
        maps and masks (per member, a list each; None for a member that draws nothing) and
        region flags (M, N; False for such a member). A member is run only when its output is
        used."""
        scoring, drawing = set(self._scoring()), set(self._drawing()) if maps else set()
        cols, all_maps, all_masks, flags = [], [], [], []
        for i, m in enumerate(self.members_):
            loc = None
            if i in drawing:
                s, loc = m.score_and_localize(images)
            elif i in scoring:
                s = m.score(images)
            if maps:
                all_maps.append(None if loc is None else
                                [np.asarray(a, np.float32) for a in loc.maps])
                all_masks.append(None if loc is None else
                                 [np.asarray(a, bool) for a in loc.masks])
                flags.append(np.zeros(len(images), bool) if loc is None
                             else np.asarray(loc.region_flags, bool))
            if i in scoring:
                s = np.asarray(s, np.float64)
                if not np.all(np.isfinite(s)):
                    raise InputError(f"member {m.name} gave non-finite scores")
                cols.append(np.clip(s, -SCORE_CLIP, SCORE_CLIP))
            if progress is not None and (i in scoring or i in drawing):
                progress(len(images), total, stage="scoring with members")
        return np.stack(cols, axis=1), all_maps, all_masks, np.array(flags, bool)

    def _names(self) -> list[str]:
        """The score members' names, as the combination knows them."""
        return [f"{i}:{self.members_[i].name}" for i in self._scoring()]

    def _coef_by_member(self) -> list[float | None]:
        """Each member's coefficient in the combination (None: a member for maps alone)."""
        coef = dict(zip(self._scoring(), self.model_.coef.tolist()))
        return [coef.get(i) for i in range(len(self.members_))]

    # -- the contract
    def fit(self, real_images: Images, fake_images: Images | None = None,
            fake_masks: Any = None, val: Sequence | None = None,
            progress: Progress | None = None) -> FusionDetector:
        """Stack on held-out images (see the module docstring); ``fake_masks`` is unused (the
        members' maps are combined as they are)."""
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold

        if fake_images is None:
            raise InputError("fusion needs fake images: fit(real_images, fake_images)")
        real = check_images(real_images, "real_images")
        fake = check_images(fake_images, "fake_images")
        self._check_params()
        if val is not None and (not isinstance(val, (tuple, list)) or len(val) not in (2, 3)):
            raise InputError("val must be a (real_images, fake_images) pair")
        if min(len(real), len(fake)) < self.folds:
            raise InputError(f"fusion needs at least {self.folds} real and {self.folds} fake "
                             f"images, got {len(real)} and {len(fake)}")
        self.threshold_ = None
        self.size_calibration_ = None  # a new regression: calibrate_sizes again
        self.members_ = self._open_members()
        vreal = check_images(val[0], "val real images") if val is not None else []
        vfake = check_images(val[1], "val fake images") if val is not None else []
        used = len(set(self._scoring()) | set(self._drawing()))
        total = used * (len(real) + len(vreal)) + len(self._scoring()) * (len(fake) + len(vfake))
        xr, real_maps, _, _ = self.member_outputs(real, maps=val is None, progress=progress,
                                                  total=total)
        xf = self.member_outputs(fake, maps=False, progress=progress, total=total)[0]
        x, y = np.concatenate([xr, xf]), np.r_[np.zeros(len(xr)), np.ones(len(xf))]
        names = self._names()
        self.model_ = self._combiner(x, y, names)
        if val is None:  # out-of-fold decisions of the real images calibrate the threshold
            oof = np.zeros(len(x))
            kfold = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
            for tr, te in kfold.split(x, y):
                oof[te] = self._combiner(x[tr], y[tr], names).decision(x[te])
            cal_scores, cal_fake, cal_maps = oof[: len(xr)], oof[len(xr):], real_maps
            how = f"out-of-fold ({self.folds} folds)"
        else:
            vxr, cal_maps, _, _ = self.member_outputs(vreal, maps=True, progress=progress,
                                                      total=total)
            vxf = self.member_outputs(vfake, maps=False, progress=progress, total=total)[0]
            cal_scores, cal_fake = self.model_.decision(vxr), self.model_.decision(vxf)
            how = "validation images"
        self.threshold_ = calibrate_threshold(cal_scores, self.target_fpr)
        self.map_weights_ = self._map_weights()
        self.mask_weights_ = self._mask_weights()
        fused = [self._fuse(_nth(cal_maps, i)) for i in range(len(cal_scores))]
        self.region_threshold_ = calibrate_threshold(np.array([f.max() for f in fused]),
                                                     self.target_fpr)
        pixels = np.concatenate([f.ravel() for f in fused])
        self.map_threshold_ = max(0.5, float(np.quantile(pixels, 1.0 - self.map_fpr,
                                                         method="higher")))
        cal_y = np.r_[np.zeros(len(cal_scores)), np.ones(len(cal_fake))]
        member_auc = {n: float(roc_auc_score(y, x[:, j])) for j, n in enumerate(names)}
        self.fit_info_ = {
            "real": len(real), "fake": len(fake), "threshold_from": how,
            "members": [{"name": f"{i}:{m.name}", "spec": str(s), "coef": c,
                         "map_weight": float(w), "mask_weight": float(k)}
                        for i, (m, s, c, w, k) in enumerate(zip(
                            self.members_, self.members, self._coef_by_member(),
                            self.map_weights_, self.mask_weights_))],
            "member_auc_on_fit_images": member_auc,
            "heldout_auc": float(roc_auc_score(cal_y, np.r_[cal_scores, cal_fake])),
            "heldout_tpr_at_threshold": float(np.mean(cal_fake > self.threshold_)),
        }
        self._member_hashes = None
        return self

    def _check_params(self) -> None:
        """Every parameter's type and range, before any data is read."""
        for name in ("target_fpr", "map_fpr"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise InputError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        check_choice("masks", self.masks, MASK_RULES)
        check_choice("combine", self.combine, FUSION_COMBINES)
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise InputError(f"folds must be an integer >= 2, got {self.folds!r}")
        for name in ("map_members", "mask_members", "score_members"):
            value = getattr(self, name)
            if value is not None and (
                    not isinstance(value, (list, tuple)) or not value
                    or not all(isinstance(i, int) and not isinstance(i, bool)
                               and 0 <= i < len(self.members) for i in value)):
                raise InputError(f"{name} must name members by position (0 to "
                                 f"{len(self.members) - 1}), got {value!r}")
            if value is not None and len(set(value)) < len(value):
                # equal weights: naming a member again would not weigh it more
                again = next(i for k, i in enumerate(value) if i in value[:k])
                raise InputError(f"{name} names member {again} twice: each member counts "
                                 "once, with equal weights")
        if self.mask_members is not None and self.map_members is None:
            raise InputError("mask_members needs map_members: name the members that draw "
                             "the maps too")

    def _combiner(self, x: np.ndarray, y: np.ndarray, names: list[str]) -> LinearModel:
        if self.combine == "mean":
            return LinearModel.mean_of(x, names)
        return LinearModel.fit(x, y, names, self.C, self.seed)

    def _map_weights(self) -> list[float]:
        """Equal weights on ``map_members`` when named (a member for maps alone has no
        coefficient to weigh it by); otherwise positive coefficients, among members whose maps
        are dense (a member with ``dense_maps = False``, like ``features``, paints whole tiles
        with its image probability: it would only blur the map); uniform over those if none is
        positive."""
        drawn = np.isin(np.arange(len(self.members_)), self._drawing())
        if self.map_members is not None:
            w = np.isin(np.arange(len(self.members_)), list(self.map_members)).astype(float)
        else:
            coef = np.array([c if c is not None else 0.0 for c in self._coef_by_member()])
            w = np.where(drawn, np.maximum(coef, 0.0), 0.0)
        w = w / w.sum() if w.sum() > 0 else drawn / drawn.sum()
        return [float(v) for v in w]

    def _mask_weights(self) -> list[float]:
        """Equal weights on ``mask_members`` when named, otherwise the map weights."""
        if self.mask_members is None:
            return list(self.map_weights_)
        w = np.isin(np.arange(len(self.members_)), list(self.mask_members)).astype(float)
        return [float(v) for v in w / w.sum()]

    @staticmethod
    def _weighted(weights: list[float], maps: list[np.ndarray | None]) -> np.ndarray:
        out = None
        for w, m in zip(weights, maps):
            if w > 0:
                out = w * m.astype(np.float64) if out is None else out + w * m
        return out

    def _fuse(self, maps: list[np.ndarray | None]) -> np.ndarray:
        return np.clip(self._weighted(self.map_weights_, maps), 0.0, 1.0).astype(np.float32)

    def _fused(self, items: list[np.ndarray]):
        """Before this detector's size terms: the combined scores, the fused maps, region
        scores (their maxima), masks and region flags."""
        x, member_maps, member_masks, member_flags = self.member_outputs(items, maps=True)
        scores = self.model_.decision(x)
        fused = [self._fuse(_nth(member_maps, i)) for i in range(len(items))]
        region = np.array([float(f.max()) for f in fused])
        masks, flags = [], np.zeros(len(items), bool)
        if self.masks == "vote":  # members holding at least half the weight agree
            masks = [self._weighted(self.mask_weights_, _nth(member_masks, i))
                     >= 0.5 for i in range(len(items))]
            # so do region flags: each member's are calibrated on real images, by image size
            # for the cnn; one threshold on the fused map's maximum is set at one size only
            flags = np.asarray(self.mask_weights_) @ member_flags.astype(np.float64) >= 0.5
        return scores, fused, region, masks, flags

    def _unshifted_outputs(self, items: list[np.ndarray]):
        """For `calibrate_sizes`, in chunks of `CALIBRATION_CHUNK` images (the members' maps
        of hundreds of large crops at once would not fit in memory)."""
        scores, region, fused = [], [], []
        for s in range(0, len(items), CALIBRATION_CHUNK):
            sc, fu, rg, _, _ = self._fused(items[s:s + CALIBRATION_CHUNK])
            scores.append(sc)
            region.append(rg)
            fused += fu
        return np.concatenate(scores), np.concatenate(region), fused

    def score(self, images: Images) -> np.ndarray:
        """The combined score (the regression's log-odds, or the members' mean z-score with
        ``combine="mean"``), less its size term (higher = more likely synthetic)."""
        items = check_images(images)
        self._check_fitted()
        scores = self.model_.decision(self.member_outputs(items, maps=False)[0])
        return scores - np.array([self._size_terms(im)[0] for im in items])

    def localize(self, images: Images) -> Localization:
        return self.score_and_localize(images)[1]

    def score_and_localize(self, images: Images) -> tuple[np.ndarray, Localization]:
        items = check_images(images)
        self._check_fitted()
        scores, fused, region, masks, flags = self._fused(items)
        terms = np.array([self._size_terms(im) for im in items]).reshape(-1, 3)
        scores, region = scores - terms[:, 0], region - terms[:, 1]
        if self.masks != "vote":
            masks = [f > t for f, t in zip(fused, terms[:, 2])]
            flags = region > self.region_threshold_
        loc = Localization(maps=as_input_kind(fused, images), masks=as_input_kind(masks, images),
                           region_scores=region, region_flags=flags)
        return scores, loc

    # -- persistence
    def _write_files(self, folder: Path) -> None:
        """Every member under ``members/``, then the fusion itself (with their hashes)."""
        self._member_dirs = []
        for i, m in enumerate(self.members_):
            rel = f"{MEMBERS_DIR}/{i}-{m.name}"
            (folder / rel).mkdir(parents=True)
            m._write_files(folder / rel)
            self._member_dirs.append(rel)
        self._member_hashes = _member_files(folder)
        super()._write_files(folder)

    def _learned_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if getattr(self, "_member_hashes", None) is None:
            raise InputError("save the fusion detector with its save(DIR) method")
        state = {"threshold_": self.threshold_, "region_threshold_": self.region_threshold_,
                 "map_threshold_": self.map_threshold_, "model_": self.model_.to_dict(),
                 "map_weights_": self.map_weights_, "mask_weights_": self.mask_weights_,
                 "member_dirs": self._member_dirs,
                 "member_files": self._member_hashes, "fit_info_": self.fit_info_}
        if self.size_calibration_:
            state["size_calibration_"] = self.size_calibration_
        return state, {}

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], path: Path,
                 ) -> None:
        try:
            self._check_params()
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
        recorded = dict(state["member_files"])
        found = _member_files(path)
        if found != recorded:
            changed = sorted(set(found) ^ set(recorded)
                             | {k for k in found if k in recorded and found[k] != recorded[k]})
            raise InputError(f"{path}: member files differ from the ones saved with this fusion "
                             f"detector ({', '.join(changed[:3])}): refusing to load it")
        dirs = [str(d) for d in state["member_dirs"]]
        if len(dirs) != len(list(self.members)):
            raise InputError(f"{path}: {len(dirs)} saved members for {len(self.members)} "
                             "member specs")
        # each member is a folder of members/ (never the fusion itself, nor outside it)
        where = f"{path / META_FILE}: member_dirs"
        targets = [inside(path, d, where) for d in dirs]
        for d, t in zip(dirs, targets):
            if t.parent != (path / MEMBERS_DIR).resolve():
                raise InputError(f"{where}: {d!r} is not a folder of {MEMBERS_DIR}/")
        self.members_ = [load_detector(t, **({"device": self.device}
                                             if self.device else {})) for t in targets]
        self.model_ = LinearModel.from_dict(state["model_"], self._names())
        self.map_weights_ = [float(w) for w in state["map_weights_"]]
        # files saved before mask_members vote with the map weights
        self.mask_weights_ = [float(w) for w in state.get("mask_weights_", self.map_weights_)]
        drawing = set(self._drawing())
        for name, w in (("map", self.map_weights_), ("mask", self.mask_weights_)):
            if len(w) != len(self.members_):
                raise InputError(f"{path}: wrong number of {name} weights")
            if not all(np.isfinite(v) and v >= 0 for v in w) or not sum(w) > 0:
                raise InputError(f"{path}: {name} weights must be finite, >= 0, not all 0")
            if any(v > 0 and i not in drawing for i, v in enumerate(w)):
                raise InputError(f"{path}: {name} weights on a member that draws nothing")
        for k in ("threshold_", "region_threshold_", "map_threshold_"):
            setattr(self, k, float(state[k]))
        self.fit_info_ = dict(state.get("fit_info_") or {})
        self.size_calibration_ = checked_size_table(state.get("size_calibration_"), path)
        self._member_dirs, self._member_hashes = dirs, recorded

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.is_fitted:
            out["members"] = [m.describe() for m in self.members_]
            out["weights"] = dict(zip(self._names(), self.model_.coef.tolist()))
            out["map_weights"] = dict(zip((f"{i}:{m.name}" for i, m in enumerate(self.members_)),
                                          self.map_weights_))
        return out


__all__ = ["MASK_RULES", "FusionDetector"]
