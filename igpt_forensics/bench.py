"""The benchmark harness: detectors x datasets x perturbations -> metrics.json, metrics.csv.

The harness is core: it never imports the detectors. It takes detector *objects* that honour
the detector contract (``score(images)`` higher = more synthetic, ``localize(images)`` with
``.maps`` and ``.masks``, ``threshold_``, ``describe()``), and optionally *factories* that
build a fresh detector from a training split for the cross-dataset protocol. The CLI turns
names and folders into those objects.

Protocols, each over the ``test`` split of every dataset (by source photo, so no photo the
detectors trained or calibrated on is scored):

- image level: for each perturbation, real vs fake and quantized-real vs fake ("format
  parity": both through the same palette, so counting colors cannot win), for all fakes and
  per mask kind: AUC with a bootstrap 95% interval, AP, EER, TPR at 1% and 5% FPR, and
  accuracy / TPR / FPR at the detector's calibrated threshold;
- region level on partial fakes (box, top-half): pixel AUC, and F1 / IoU of the predicted mask;
- cross-dataset: a detector trained (factory) or thresholded on dataset A's train/val split,
  tested on dataset B's test split, as a matrix.

``metrics.json`` follows `METRICS_SCHEMA` (checked by `validate`).
"""

from __future__ import annotations

import csv
import io
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from . import provenance as pv
from .assets import GENERATOR_NAMES
from .data import derive_seed
from .errors import InputError
from .files import atomic_write_text, inside, read_bounded
from .metrics import calibrate_threshold, image_metrics, pixel_metrics
from .perturb import parse as parse_perturbation
from .perturb import perturb, strength
from .splits import Split, load_split, negatives

PARTIAL_KINDS = ("top-half", "box")


def perturb_all(images: Sequence[np.ndarray], ids: Sequence[str], spec: str, seed: int,
                masks: Sequence[np.ndarray] | None = None):
    """Perturb every image (and mask) with a seed derived from its id: deterministic."""
    out_i, out_m = [], []
    for k, (image, iid) in enumerate(zip(images, ids)):
        im, m = perturb(image, spec, derive_seed(seed, iid, spec),
                        masks[k] if masks is not None else None)
        out_i.append(im)
        out_m.append(m)
    return out_i, out_m


def _stack_or_list(images: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    shapes = {im.shape for im in images}
    return np.stack(images) if len(shapes) == 1 else images


def evaluate(detector, det_name: str, data: Split, perturbations: Sequence[str] = ("none",),
             seed: int = 0, bootstrap: int = 200, localize: bool = True,
             progress: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """Image- and region-level metrics of one detector on one split, per perturbation.

    Every image is scored once per perturbation: the fakes with ``score_and_localize`` when
    maps are wanted (the maps of partial fakes come from the same pass), so nothing is
    scored twice. Returns (rows, scores): rows are flat metric records; scores keeps the raw
    scores per perturbation (for plots and for the cross matrix): ``{spec: {"real": [...],
    "qreal": [...], "fake": [...], "kinds": [...], "maps": [...] (partial fakes of "none",
    for the report's examples)}}``.
    """
    rows: list[dict] = []
    raw: dict[str, dict] = {}
    threshold = getattr(detector, "threshold_", None)
    with_maps = (localize and hasattr(detector, "localize")
                 and getattr(detector, "has_pixel_maps", True))
    kinds = np.array(data.kinds)
    for spec in perturbations:
        if progress:
            progress(f"{det_name} on {data.name} [{spec}]")
        real, _ = perturb_all(data.real, data.ids["real"], spec, seed)
        qreal, _ = perturb_all(data.qreal, data.ids["qreal"], spec, seed)
        fake, fmasks = perturb_all(data.fake, data.ids["fake"], spec, seed, data.masks)
        s_neg = np.asarray(detector.score(_stack_or_list(real + qreal)), np.float64)
        s_real, s_qreal = s_neg[:len(real)], s_neg[len(real):]
        partial = [i for i, k in enumerate(data.kinds) if k in PARTIAL_KINDS]
        maps: dict[int, np.ndarray] = {}
        masks: dict[int, np.ndarray] = {}
        if with_maps and hasattr(detector, "score_and_localize"):  # one pass for both
            s_fake, loc = detector.score_and_localize(_stack_or_list(fake))
            maps = {i: loc.maps[i] for i in partial}
            masks = {i: loc.masks[i] for i in partial}
        else:  # an outside detector with score (and perhaps localize) only
            s_fake = detector.score(_stack_or_list(fake))
            if with_maps and partial:
                loc = detector.localize(_stack_or_list([fake[i] for i in partial]))
                maps, masks = dict(zip(partial, loc.maps)), dict(zip(partial, loc.masks))
        s_fake = np.asarray(s_fake, np.float64)
        raw[spec] = {"real": s_real.tolist(), "qreal": s_qreal.tolist(),
                     "fake": s_fake.tolist(), "kinds": list(data.kinds)}
        for real_form, s_n in (("real", s_real), ("qreal", s_qreal)):
            if len(s_n) == 0:
                continue
            for fakes in ("all", *sorted(set(data.kinds))):
                s_pos = s_fake if fakes == "all" else s_fake[kinds == fakes]
                labels = np.r_[np.zeros(len(s_n)), np.ones(len(s_pos))]
                m = image_metrics(labels, np.r_[s_n, s_pos], threshold, bootstrap, seed)
                rows.append({"level": "image", "detector": det_name, "dataset": data.name,
                             "perturbation": spec, "strength": strength(spec),
                             "real_form": real_form, "fakes": fakes, **m})
        for kind in PARTIAL_KINDS:
            idx = [i for i in partial if data.kinds[i] == kind]
            if not idx or not maps:
                continue
            m = pixel_metrics([fmasks[i] for i in idx], [maps[i] for i in idx],
                              [masks[i] for i in idx])
            rows.append({"level": "region", "detector": det_name, "dataset": data.name,
                         "perturbation": spec, "strength": strength(spec),
                         "fakes": kind, **m})
        if spec == "none" and maps:
            raw[spec]["maps"] = maps
    return rows, raw


ROW_FIELDS = ("level", "detector", "dataset", "perturbation", "strength", "real_form", "fakes")


def split_report(detector, data: Split, localize: bool = True) -> dict[str, dict]:
    """One detector on one split, unperturbed and without bootstrap: what `train-detector`
    and the benchmark scripts report, made by `evaluate` (the one evaluator). Keys:
    ``{real_form}_vs_fake`` per real form, ``all`` (every real image against the fakes) and,
    with maps, ``pixels_{kind}`` per partial mask kind."""
    rows, raw = evaluate(detector, data.name, data, ("none",), bootstrap=0, localize=localize)
    out: dict[str, dict] = {}
    for r in rows:
        m = {k: v for k, v in r.items() if k not in ROW_FIELDS}
        if r["level"] == "image" and r["fakes"] == "all":
            out[f"{r['real_form']}_vs_fake"] = m
        elif r["level"] == "region":
            out[f"pixels_{r['fakes']}"] = m
    s = raw["none"]
    neg, pos = np.r_[s["real"], s["qreal"]], np.asarray(s["fake"])
    out["all"] = image_metrics(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos],
                               getattr(detector, "threshold_", None), bootstrap=0)
    return out


def retarget(detector, real_scores: np.ndarray, target_fpr: float = 0.01):
    """The same detector with its threshold recalibrated on other real images."""
    from copy import copy

    det = copy(detector)
    det.threshold_ = calibrate_threshold(real_scores, target_fpr)
    return det


def val_scores(det, name: str, val: dict[str, Split], a: str,
               cache: dict[tuple[str, str], np.ndarray] | None) -> np.ndarray:
    """A fixed detector's scores of dataset A's validation reals (photos and quantized), from
    which its thresholds are taken: made once per (detector, dataset) when a ``cache`` is
    given (the cross matrix and leave-one-out share it), every time otherwise."""
    if cache is not None and (name, a) in cache:
        return cache[(name, a)]
    s = np.asarray(det.score(_stack_or_list(val[a].real + val[a].qreal)), np.float64)
    if cache is not None:
        cache[(name, a)] = s
    return s


def cross_matrix(detectors: dict[str, Any], trained: dict[tuple[str, str], Any],
                 val: dict[str, Split], test: dict[str, Split],
                 fit_seconds: dict[tuple[str, str], float] | None = None,
                 scored: dict[tuple[str, str], dict] | None = None,
                 val_scored: dict[tuple[str, str], np.ndarray] | None = None) -> list[dict]:
    """Detectors trained (``trained[(kind, A)]``) or thresholded on dataset A, tested on B.

    A fixed detector keeps its scores; its threshold is recalibrated to 1% FPR on A's
    validation reals, so the matrix shows whether a threshold transfers across generators.
    Negatives are quantized reals (format parity). ``scored[(detector key, B)]`` holds
    scores `evaluate` already made on B's test split (unperturbed), reused, not recomputed;
    the detector key is the fixed detector's name, or ``(kind, A)`` for a trained one.
    ``val_scored`` caches the fixed detectors' validation scores (`val_scores`).
    """
    fit_seconds, scored = fit_seconds or {}, scored or {}
    pairs = [(name, a, name, retarget(det, val_scores(det, name, val, a, val_scored)))
             for name, det in detectors.items() for a in val]
    pairs += [(kind, a, (kind, a), det) for (kind, a), det in trained.items()]
    rows = []
    for name, a, key, det in pairs:
        for b in test:
            row, _, _ = transfer_metrics(det, test[b], scored.get((key, b)))
            rows.append({"detector": name, "train": a, "test": b,
                         "fit_seconds": fit_seconds.get((name, a), 0.0), **row})
    return rows


TRANSFER_METRICS = ("auc", "ap", "tpr_at_1fpr", "accuracy", "tpr_at_threshold",
                    "fpr_at_threshold")


def transfer_metrics(det, split: Split, done: dict | None = None,
                     ) -> tuple[dict, np.ndarray, np.ndarray]:
    """One detector on one test split, unperturbed, at its own threshold: its negatives
    (`negatives`) against the fakes. ``done`` reuses the scores `evaluate` made. Returns the
    row's metrics and the two score arrays."""
    if done is not None:
        s_neg, s_pos = np.asarray(done["qreal"] or done["real"]), np.asarray(done["fake"])
    else:
        s_neg = np.asarray(det.score(_stack_or_list(negatives(split))), np.float64)
        s_pos = np.asarray(det.score(_stack_or_list(split.fake)), np.float64)
    labels = np.r_[np.zeros(len(s_neg)), np.ones(len(s_pos))]
    m = image_metrics(labels, np.r_[s_neg, s_pos], det.threshold_, bootstrap=0)
    row = {"real_form": "qreal" if split.qreal else "real",
           **{k: m[k] for k in TRANSFER_METRICS}}
    return row, s_neg, s_pos


def generator_key(split: Split) -> str:
    """Which generator made a dataset: its checkpoint's sha256; a dataset made elsewhere
    (no generator recorded) counts as a generator of its own."""
    return (split.info.get("generator") or {}).get("sha256") or f"dataset:{split.folder}"


def leave_one_out(detectors: dict[str, Any], factories: dict[str, Callable[[Split, Split], Any]],
                  val: dict[str, Split], test: dict[str, Split],
                  train: Callable[[str], Split],
                  progress: Callable[[str], None] | None = None,
                  scored: dict[tuple[str, str], dict] | None = None,
                  val_scored: dict[tuple[str, str], np.ndarray] | None = None) -> list[dict]:
    """Leave-one-generator-out: for each dataset B, every trained kind learns on the train
    splits of the datasets made by *other generators* (threshold from their val splits) and
    every fixed detector takes its threshold from their val reals; all are tested on B's
    test split (quantized reals vs B's fakes, no perturbation). Datasets of B's generator
    (the same checkpoint at another sampling setting) are left out of the pool too, so no
    detector is ever tested on a generator whose fakes it saw. Rows carry the pool they
    trained on and the held-out generator's sha256. ``scored`` and ``val_scored`` are the
    fixed detectors' scores made already (see `cross_matrix`), reused, not recomputed."""
    from sklearn.metrics import roc_auc_score

    scored = scored or {}
    gen = {name: generator_key(split) for name, split in test.items()}
    if len(set(gen.values())) < 2:
        raise InputError("leave_one_out needs datasets of 2 or more generators; these were "
                         f"all made by one ({', '.join(test)})")
    rows = []
    for b in test:
        pool = [a for a in test if gen[a] != gen[b]]
        # a threshold is a quantile of the pool's validation scores: their order is moot
        dets = [(name, retarget(det, np.concatenate(
            [val_scores(det, name, val, a, val_scored) for a in pool])), scored.get((name, b)))
            for name, det in detectors.items()]
        if factories:
            pool_val = Split.concat([val[a] for a in pool], "+".join(pool))
            pool_train = Split.concat([train(a) for a in pool], "+".join(pool))
            for kind, factory in factories.items():
                if progress:
                    progress(f"leave-one-out: training {kind} without {b}")
                dets.append((kind, factory(pool_train, pool_val), None))
        kinds = np.array(test[b].kinds)
        for name, det, done in dets:
            row, s_neg, s_pos = transfer_metrics(det, test[b], done)
            by_kind = {k: float(roc_auc_score(
                np.r_[np.zeros(len(s_neg)), np.ones(int((kinds == k).sum()))],
                np.r_[s_neg, s_pos[kinds == k]])) for k in sorted(set(test[b].kinds))}
            rows.append({"detector": name, "held_out": b, "trained_on": pool,
                         "held_out_generator": gen[b],
                         "auc_by_kind": by_kind, **row})
    return rows


# ----------------------------------------------------------------------------------------
# metrics.json

METRICS_SCHEMA: dict = {
    "type": "object",
    "required": ["format", "tool_version", "created", "machine", "settings", "datasets",
                 "detectors", "image", "region", "cross"],
    "properties": {
        "format": {"type": "string", "enum": ["igpt-forensics-metrics-v1"]},
        "tool_version": {"type": "string"},
        "created": {"type": "string"},
        "machine": {"type": "object"},
        "settings": {"type": "object", "required": ["split", "perturbations", "seed"]},
        "datasets": {"type": "array", "items": {
            "type": "object", "required": ["name", "path", "generator_sha256", "settings",
                                           "n_real", "n_fake"]}},
        "detectors": {"type": "array", "items": {
            "type": "object", "required": ["name", "kind", "threshold", "score"]}},
        "image": {"type": "array", "items": {
            "type": "object",
            # auc_lo and auc_hi, the bootstrap interval, only where --bootstrap is above 0
            "required": ["detector", "dataset", "perturbation", "real_form", "fakes", "auc",
                         "ap", "eer", "tpr_at_1fpr", "tpr_at_5fpr"],
            "properties": {"auc": {"type": "number"}, "ap": {"type": "number"},
                           "real_form": {"type": "string", "enum": ["real", "qreal"]}}}},
        "region": {"type": "array", "items": {
            "type": "object", "required": ["detector", "dataset", "perturbation", "fakes",
                                           "pixel_auc", "f1", "iou"]}},
        "cross": {"type": "array", "items": {
            "type": "object", "required": ["detector", "train", "test", "auc", "accuracy"]}},
    },
}
_TYPES = {"object": dict, "array": list, "string": str, "number": (int, float),
          "integer": int, "boolean": bool}


def validate(obj: Any, schema: dict = METRICS_SCHEMA, where: str = "metrics") -> None:
    """Check ``obj`` against the subset of JSON Schema used here (type, required,
    properties, items, enum); raise InputError naming the first offending path."""
    t = schema.get("type")
    if t and not isinstance(obj, _TYPES[t]):
        raise InputError(f"{where}: expected {t}, got {type(obj).__name__}")
    if "enum" in schema and obj not in schema["enum"]:
        raise InputError(f"{where}: {obj!r} not one of {schema['enum']}")
    if isinstance(obj, dict):
        for key in schema.get("required", []):
            if key not in obj:
                raise InputError(f"{where}: missing '{key}'")
        for key, sub in schema.get("properties", {}).items():
            if key in obj:
                validate(obj[key], sub, f"{where}.{key}")
    if isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            validate(item, schema["items"], f"{where}[{i}]")


def _clean(x: Any) -> Any:
    """JSON-safe: NaN and infinity become null (JSON has neither)."""
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def metrics_document(settings: dict, splits: dict[str, Split], detectors: dict[str, dict],
                     image_rows: list[dict], region_rows: list[dict], cross_rows: list[dict],
                     ) -> dict:
    import torch

    doc = {
        "format": "igpt-forensics-metrics-v1",
        "tool_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "settings": settings,
        "datasets": [{"name": s.name, "path": str(s.folder),
                      "generator_sha256": s.info.get("generator", {}).get("sha256"),
                      "family": pv.generator_family(s.info.get("generator") or {}),
                      "palette_sha256": s.info.get("generator", {}).get("palette_sha256"),
                      "settings": s.info.get("settings", {}),
                      "n_real": len(s.real) + len(s.qreal), "n_fake": len(s.fake),
                      "skipped": s.skipped} for s in splits.values()],
        "detectors": [{"name": k, **v} for k, v in detectors.items()],
        "image": image_rows, "region": region_rows, "cross": cross_rows,
    }
    doc = _clean(doc)
    validate(doc)
    return doc


CSV_FIELDS = ("level", "detector", "dataset", "perturbation", "real_form", "fakes", "auc",
              "auc_lo", "auc_hi", "ap", "eer", "tpr_at_1fpr", "tpr_at_5fpr", "accuracy",
              "tpr_at_threshold", "fpr_at_threshold", "pixel_auc", "f1", "iou", "n_real",
              "n_fake")


def write_outputs(out: str | Path, doc: dict) -> tuple[Path, Path]:
    out = Path(out)
    atomic_write_text(out / "metrics.json", json.dumps(doc, indent=1))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for row in doc["image"] + doc["region"]:
        w.writerow({"level": row.get("level", "image"), **row})
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    return out / "metrics.json", out / "metrics.csv"


# ----------------------------------------------------------------------------------------
# The whole benchmark


GENERATE_TYPES = {"model": (str,), "data": (str,), "n": (int,), "masks": (str,),
                  "temperature": (int, float), "top_k": (int,), "top_p": (int, float),
                  "seed": (int,)}
GENERATE_KEYS = tuple(GENERATE_TYPES)
# The top-level keys of a study file and what each must be (datasets are checked apart).
STUDY_TYPES = {"detectors": (dict, str), "train": (list, str), "perturbations": (list, str),
               "split": (str, None), "max_items": (int, None), "seed": (int, None),
               "bootstrap": (int, None), "out": (str, None), "leave_one_out": (bool, None)}
# Bootstrap resamples at most: their indices are drawn at once, (resamples x fakes) integers.
MAX_BOOTSTRAP = 10_000
MAX_STUDY_BYTES = 1 << 20


def _holds_nul(v: Any) -> bool:
    if isinstance(v, str):
        return "\0" in v
    if isinstance(v, dict):
        return any(_holds_nul(k) or _holds_nul(x) for k, x in v.items())
    return isinstance(v, list) and any(_holds_nul(x) for x in v)


def check_study_types(d: dict, path: Path) -> None:
    """Every top-level value of a study file has its type (one line naming the key if not):
    ``perturbations = "none"`` is not read letter by letter, ``seed = 1.5`` is refused."""
    for key, v in d.items():  # no path the study names can hold a NUL byte
        if _holds_nul(v):
            raise InputError(f"{path}: {key} holds a NUL byte")
    for key, (kind, item) in STUDY_TYPES.items():
        if key not in d:
            continue
        v = d[key]
        ok = isinstance(v, kind) and (kind is bool or not isinstance(v, bool))
        if ok and kind is dict:
            ok = all(isinstance(x, item) for x in v.values())
        elif ok and kind is list:
            ok = all(isinstance(x, item) for x in v)
        if not ok:
            want = {dict: f"a table of {item.__name__ if item else ''} values",
                    list: f"a list of {item.__name__ if item else ''}s",
                    str: "a string", int: "an integer", bool: "true or false"}[kind]
            raise InputError(f"{path}: {key} = {v!r} must be {want}")
    if d.get("split", "test") not in ("train", "val", "test"):
        raise InputError(f"{path}: split must be train, val or test, got {d['split']!r}")
    for key, low in (("max_items", 1), ("bootstrap", 0), ("seed", 0)):
        if key in d and d[key] < low:
            raise InputError(f"{path}: {key} must be >= {low}, got {d[key]}")
    if d.get("bootstrap", 0) > MAX_BOOTSTRAP:
        raise InputError(f"{path}: bootstrap must be <= {MAX_BOOTSTRAP:,}, got {d['bootstrap']}")
    for p in d.get("perturbations", []):
        parse_perturbation(p)  # an unknown perturbation is one line naming it


@dataclass
class Study:
    """What a benchmark runs: datasets (name -> folder), detectors (name -> spec), detector
    kinds trained per dataset for the cross protocol, perturbations and sizes."""

    datasets: dict[str, str]
    detectors: dict[str, str] = field(default_factory=dict)
    # name -> settings of `generate` that make the dataset when its folder is not complete
    # (model, n, masks, temperature, top_k, top_p, seed, data); a dataset made elsewhere has none
    generate: dict[str, dict] = field(default_factory=dict)
    train: list[str] = field(default_factory=list)
    perturbations: list[str] = field(default_factory=lambda: ["none"])
    split: str = "test"
    max_items: int | None = None
    seed: int = 0
    bootstrap: int = 200
    out: str = "report"
    # leave-one-generator-out: each dataset (one generator) is tested by detectors trained
    # (or thresholded) on all the others; needs 2+ datasets
    leave_one_out: bool = False

    @classmethod
    def from_toml(cls, path: str | Path) -> Study:
        """A study file; relative paths (datasets, models, out) are relative to the file,
        and what it writes (``out``, the folders of dataset recipes) stays below its folder.

        A dataset is a folder (``name = "folder"``) or a recipe that ``bench`` makes first,
        resuming if it was interrupted: ``[datasets.name]`` with ``path`` and any of
        GENERATE_KEYS (the options of ``igpt-forensics generate``).
        """
        import tomllib

        path = Path(path)
        data = read_bounded(path, MAX_STUDY_BYTES, "study file")  # a FIFO would hang
        try:
            d = tomllib.loads(data.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: not a valid TOML study file ({e})") from None
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"{path}: unknown keys {unknown} (known: {sorted(known)})")
        if not d.get("datasets") or not isinstance(d["datasets"], dict):
            raise InputError(f"{path}: a study needs [datasets] name = \"folder\"")
        if "generate" in d:
            raise InputError(f"{path}: give generation settings inside [datasets.NAME]")

        check_study_types(d, path)
        root = path.parent

        def here(v: str) -> str:  # what the study reads (a dataset made elsewhere, a model)
            return v if Path(v).is_absolute() else str((root / v).resolve())

        def written(v: str) -> str:  # the one path guard: it writes only below its folder
            return str(inside(root, v, f"{path}"))

        datasets, generate = {}, {}
        for name, v in d["datasets"].items():
            if isinstance(v, str):
                datasets[name] = here(v)
                continue
            if not isinstance(v, dict) or not isinstance(v.get("path"), str):
                raise InputError(f"{path}: dataset '{name}' needs a folder: name = \"folder\" "
                                 "or [datasets.NAME] with path = \"folder\"")
            bad = sorted(set(v) - {"path", *GENERATE_KEYS})
            if bad:
                raise InputError(f"{path}: dataset '{name}': unknown keys {bad} (known: path, "
                                 f"{', '.join(GENERATE_KEYS)})")
            if not isinstance(v.get("n"), int) or isinstance(v["n"], bool):
                raise InputError(f"{path}: dataset '{name}': a recipe needs n = ITEMS")
            for k, want in GENERATE_TYPES.items():
                if k in v and (not isinstance(v[k], want) or isinstance(v[k], bool)):
                    raise InputError(f"{path}: dataset '{name}': {k} = {v[k]!r} is not a "
                                     f"{' or '.join(t.__name__ for t in want)}")
            datasets[name] = written(v["path"])
            generate[name] = {k: v[k] for k in GENERATE_KEYS if k in v}
            if "model" in generate[name] and generate[name]["model"] not in GENERATOR_NAMES:
                generate[name]["model"] = here(generate[name]["model"])  # a folder
        d["datasets"], d["generate"] = datasets, generate
        if "out" in d:
            d["out"] = written(d["out"])
        return cls(**d)


def completion_examples(data: Split, n: int = 6, scale: int = 4) -> bytes | None:
    """Rows of (masked input, fake, original) for partial fakes of a split."""
    from .viz import completion_grid

    idx = [i for i, k in enumerate(data.kinds) if k in PARTIAL_KINDS][:n]
    if not idx:
        return None
    by_item = {iid.split("-")[0]: i for i, iid in enumerate(data.ids["real"])}
    rows = [(i, by_item.get(data.ids["fake"][i].split("-")[0])) for i in idx]
    rows = [(i, j) for i, j in rows if j is not None]
    if not rows:
        return None
    originals = np.stack([data.real[j] for _, j in rows])
    fakes = np.stack([data.fake[i] for i, _ in rows])[:, None]
    masks = np.stack([data.masks[i] for i, _ in rows])
    from .viz import png_bytes

    return png_bytes(completion_grid(originals, fakes, masks, scale=scale))


def run_benchmark(study: Study, detectors: dict[str, Any],
                  factories: dict[str, Callable[[Split, Split], Any]] | None = None,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Run every protocol of a study; write metrics.json, metrics.csv and report.html.

    ``detectors`` are ready objects (name -> detector); ``factories`` build one from a
    (train, val) pair of splits for the cross-dataset protocol. Returns the metrics document.
    """
    from .report import examples_strip, write_report

    factories = factories or {}
    if not detectors and not factories:
        raise InputError("name at least one --detector")
    test = {name: load_split(path, study.split, study.max_items, name)
            for name, path in study.datasets.items()}
    need_val = bool(factories) or len(test) > 1 or study.leave_one_out
    val = {n: load_split(p, "val", study.max_items, n)
           for n, p in study.datasets.items()} if need_val else {}
    for name in study.datasets:  # an outside folder naming its generators: one test set each
        test.update(test[name].by_generator())
    # trained kinds: one detector per (kind, dataset), fitted on that dataset's train split
    trained: dict[tuple[str, str], Any] = {}
    fit_seconds: dict[tuple[str, str], float] = {}
    for kind, factory in factories.items():
        for name, path in study.datasets.items():
            if progress:
                progress(f"training {kind} on {name}")
            t0 = time.perf_counter()
            trained[(kind, name)] = factory(load_split(path, "train", study.max_items, name),
                                            val[name])
            fit_seconds[(kind, name)] = time.perf_counter() - t0
    image_rows, region_rows, raw = [], [], {}
    examples: dict[str, bytes] = {}
    runs = [(name, name, det, ds) for name, det in detectors.items() for ds in test]
    runs += [((kind, ds), kind, det, ds)  # in distribution
             for (kind, ds), det in trained.items()]
    scored: dict = {}  # (detector key, dataset) -> unperturbed test scores, for the cross matrix
    for det_key, det_name, det, ds_name in runs:
        data = test[ds_name]
        rows, scores = evaluate(det, det_name, data, study.perturbations, study.seed,
                                study.bootstrap, progress=progress)
        image_rows += [r for r in rows if r["level"] == "image"]
        region_rows += [r for r in rows if r["level"] == "region"]
        if "none" in scores:
            scored[(det_key, ds_name)] = scores["none"]
        maps = scores.get("none", {}).pop("maps", {})
        raw.setdefault(det_name, {})[ds_name] = scores
        idx = sorted(maps)[:6]
        if idx:
            examples[f"{det_name} on {ds_name}"] = examples_strip(
                [data.fake[i] for i in idx], [data.masks[i] for i in idx],
                [maps[i] for i in idx])
    val_scored: dict = {}  # (fixed detector, dataset) -> validation scores, for thresholds
    cross_rows = (cross_matrix(detectors, trained, val, test, fit_seconds, scored, val_scored)
                  if need_val else [])
    loo_rows = []
    if study.leave_one_out:
        if len(study.datasets) < 2:
            raise InputError("leave_one_out needs 2 or more datasets (one per generator)")
        loo_rows = leave_one_out(
            detectors, factories, val, {n: test[n] for n in study.datasets},
            lambda a: load_split(study.datasets[a], "train", study.max_items, a), progress,
            scored, val_scored)
    described = {name: (det.describe() if hasattr(det, "describe") else
                        {"kind": type(det).__name__, "threshold": getattr(det, "threshold_",
                                                                            None),
                         "score": "higher = more likely synthetic"})
                 for name, det in detectors.items()}
    for (kind, ds), det in trained.items():
        described[f"{kind}@{ds}"] = {**det.describe(), "name_in_tables": kind,
                                     "trained_on": ds, "fit_seconds": fit_seconds[(kind, ds)]}
    for key, det in [*detectors.items(), *((f"{k}@{d}", v) for (k, d), v in trained.items())]:
        described[key]["pixel_maps"] = bool(hasattr(det, "localize")
                                            and getattr(det, "has_pixel_maps", True))
    settings = {"split": study.split, "perturbations": list(study.perturbations),
                "seed": study.seed, "bootstrap": study.bootstrap, "max_items": study.max_items,
                "detector_specs": study.detectors, "train": study.train,
                "leave_one_out": study.leave_one_out}
    doc = metrics_document(settings, test, described, image_rows, region_rows, cross_rows)
    if loo_rows:
        doc["leave_one_out"] = _clean(loo_rows)
        means: dict[str, list[float]] = {}
        for r in loo_rows:
            means.setdefault(r["detector"], []).append(r["auc"])
        doc["leave_one_out_mean_auc"] = {k: float(np.mean(v)) for k, v in means.items()}
    write_outputs(study.out, doc)
    first = next(iter(test.values()))
    write_report(study.out, doc, raw, examples, completion_examples(first))
    return doc
