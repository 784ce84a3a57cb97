"""The one split reader: the images of one split (train, val or test) of a labeled dataset,
with their ground truth, for `bench`, `train-detector` and the benchmark scripts.

Three layouts are read with no conversion step:

- a dataset written by ``generate`` (``dataset.json`` + ``manifest.jsonl``): real photos,
  their quantized twins (``qreal``: the same palette as the fakes, for format parity) and the
  fakes with their masks;
- another project's ``0_real/ 1_fake/`` folders (CNNDetection, UniversalFakeDetect), nested
  as deep as they like: a ``train``/``val``/``test`` folder on the path gives the split, a
  folder above the label that is not a split names the generator
  (``progan/test/cat/1_fake/x.png``: generator ``progan``);
- a CSV or JSONL list with ``path,label[,mask][,generator][,split]`` (label ``0``/``real``
  or ``1``/``fake``; paths relative to the list's folder and kept inside it).

Without a split folder or column the split comes from the hash of the path (the photo-hash
rule of `data.photo_split`). Integrity is explicit: ``verify=True`` (training: a detector
must not learn from an altered dataset) checks each file of a generated dataset against its
manifest's sha256 and refuses on the first bad file; ``verify=False`` (scoring) skips a bad
file with one line in ``skipped`` and goes on.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import provenance as pv
from .data import MAX_LIST_BYTES, find_images, load_image, photo_split
from .errors import InputError
from .files import inside, read_bounded

LABEL_DIRS = {"0_real": "real", "1_fake": "fake"}
LABELS = {"0": "real", "real": "real", "1": "fake", "fake": "fake"}
LIST_SUFFIXES = (".csv", ".jsonl")
FORMS = ("real", "qreal", "fake")


@dataclass
class Split:
    """The images of one split of one dataset, decoded (uint8 HxWx3) with ground truth."""

    name: str
    folder: Path
    split: str
    real: list[np.ndarray] = field(default_factory=list)
    qreal: list[np.ndarray] = field(default_factory=list)
    fake: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)  # per fake, True = synthesized
    kinds: list[str] = field(default_factory=list)  # per fake: mask kind
    generators: list[str] = field(default_factory=list)  # per fake: the generator's name
    ids: dict[str, list[str]] = field(default_factory=lambda: {"real": [], "qreal": [],
                                                                 "fake": []})
    # the form of each real image in reading order ("real" or "qreal"): training keeps the
    # manifest's order, so the same dataset gives the same detector bytes
    real_order: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.fake)

    def add(self, form: str, image: np.ndarray, item_id: str, mask: np.ndarray | None = None,
            kind: str = "full", generator: str = "") -> None:
        getattr(self, form).append(image)
        self.ids[form].append(item_id)
        if form == "fake":
            self.masks.append(np.ones(image.shape[:2], bool) if mask is None else mask)
            self.kinds.append(kind)
            self.generators.append(generator)
        else:
            self.real_order.append(form)

    def reals(self, forms: Sequence[str] = ("real", "qreal")) -> tuple[list[np.ndarray],
                                                                       list[str], list[str]]:
        """(images, forms, ids) of the real images of ``forms``, in reading order."""
        at = {"real": 0, "qreal": 0}
        images, kept, ids = [], [], []
        for form in self.real_order:
            i = at[form]
            at[form] += 1
            if form in forms:
                images.append(getattr(self, form)[i])
                kept.append(form)
                ids.append(self.ids[form][i])
        return images, kept, ids

    def by_generator(self) -> dict[str, Split]:
        """One split per generator named in the data, each with all the reals (the rows of a
        cross-generator matrix); ``{}`` when the data names fewer than two."""
        names = sorted(set(self.generators) - {""})
        if len(names) < 2:
            return {}
        out = {}
        for g in names:
            part = Split(f"{self.name}:{g}", self.folder, self.split, list(self.real),
                         list(self.qreal), ids={"real": list(self.ids["real"]),
                                                "qreal": list(self.ids["qreal"]), "fake": []},
                         real_order=list(self.real_order),
                         info={**self.info, "generator": {"name": g}})
            for i, name in enumerate(self.generators):
                if name == g:
                    part.fake.append(self.fake[i])
                    part.masks.append(self.masks[i])
                    part.kinds.append(self.kinds[i])
                    part.generators.append(g)
                    part.ids["fake"].append(self.ids["fake"][i])
            out[part.name] = part
        return out

    @classmethod
    def concat(cls, parts: Sequence[Split], name: str) -> Split:
        """Several datasets' splits as one (a pool of generators)."""
        out = cls(name, parts[0].folder, parts[0].split)
        for p in parts:
            for attr in ("real", "qreal", "fake", "masks", "kinds", "generators", "real_order",
                         "skipped"):
                getattr(out, attr).extend(getattr(p, attr))
            for form in out.ids:
                out.ids[form].extend(f"{p.name}/{i}" for i in p.ids[form])
        return out


def negatives(split: Split) -> list[np.ndarray]:
    """The reals a fake is compared with: quantized reals (format parity) when the dataset
    has them, the reals as they are otherwise (an outside folder)."""
    return split.qreal or split.real


def layout(folder: str | Path) -> str:
    """``generated``, ``0_real/1_fake`` or ``list`` (a CSV / JSONL file); a clear line
    otherwise."""
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() in LIST_SUFFIXES:
        return "list"
    if not folder.is_dir():
        raise InputError(f"{folder}: not a dataset folder or a .csv/.jsonl list")
    if (folder / pv.INFO).exists():
        return "generated"
    if any(p.is_dir() and p.name in LABEL_DIRS for p in folder.rglob("*_*")):
        return "0_real/1_fake"
    raise InputError(f"{folder}: neither a dataset written by 'generate' (no {pv.INFO}) nor "
                     "a labeled folder (no 0_real/ or 1_fake/ folder below it)")


def is_labeled_folder(folder: str | Path) -> bool:
    """An outside ``0_real/ 1_fake`` folder (not one ``generate`` wrote)."""
    folder = Path(folder)
    return folder.is_dir() and not (folder / pv.INFO).exists() and any(
        p.is_dir() and p.name in LABEL_DIRS for p in folder.rglob("*_*"))


@dataclass
class _Entry:
    """One image of an outside layout: where it is, its label and what else the data says."""

    path: Path
    rel: str
    label: str
    split: str
    generator: str = ""
    mask: Path | None = None


def _folder_entries(folder: Path, skipped: list[str]) -> list[_Entry]:
    files, errors = find_images([folder])
    skipped.extend(errors)
    out = []
    for f in files:
        try:  # a symlink that leads out of the folder is not its data
            inside(folder, f.relative_to(folder).as_posix(), str(folder))
        except InputError as e:
            skipped.append(str(e))
            continue
        parts = f.relative_to(folder).parts
        labels = [LABEL_DIRS[p] for p in parts[:-1] if p in LABEL_DIRS]
        if not labels:
            continue
        at = max(i for i, p in enumerate(parts[:-1]) if p in LABEL_DIRS)
        named = [p for p in parts[:at] if p in pv.SPLITS]
        others = [p for p in parts[:at] if p not in pv.SPLITS]
        rel = f.relative_to(folder).as_posix()
        out.append(_Entry(f, rel, labels[-1], named[0] if named else photo_split(rel),
                          others[0] if others else ""))
    return out


def _list_rows(path: Path) -> list[dict]:
    try:
        text = read_bounded(path, MAX_LIST_BYTES, "list of images").decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: cannot read ({e})") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        try:
            rows = list(reader)
        except csv.Error as e:  # a field over csv's limit, a stray quote: one line, no traceback
            raise InputError(f"{path}:{reader.reader.line_num}: not a CSV row ({e})") from None
        if rows and not {"path", "label"} <= set(rows[0]):
            raise InputError(f"{path}: a CSV list needs the columns path,label (has "
                             f"{','.join(k for k in rows[0] if k)})")
        return rows
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as e:  # also a 5000-digit number, deep nesting
            raise InputError(f"{path}:{n}: not JSON ({getattr(e, 'msg', e)})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{n}: each line must be a JSON object")
        rows.append(row)
    return rows


def _list_entries(path: Path, skipped: list[str]) -> list[_Entry]:
    root, out = path.parent, []
    for n, row in enumerate(_list_rows(path), 2 if path.suffix.lower() == ".csv" else 1):
        where = f"{path}:{n}"
        try:
            rel = row.get("path")
            if not isinstance(rel, str) or not rel:
                raise InputError(f"{where}: no path")
            label = LABELS.get(str(row.get("label", "")).strip().lower())
            if label is None:
                raise InputError(f"{where}: label must be 0/real or 1/fake, got "
                                 f"{row.get('label')!r}")
            split = str(row.get("split") or "").strip() or photo_split(rel)
            if split not in pv.SPLITS:
                raise InputError(f"{where}: split must be one of {', '.join(pv.SPLITS)}, got "
                                 f"{split!r}")
            image = inside(root, rel, where)
            mask = row.get("mask") or None
            mask = inside(root, str(mask), where) if mask else None
            generator = str(row.get("generator") or "")
        except InputError as e:
            skipped.append(str(e))
            continue
        out.append(_Entry(image, rel, label, split, generator, mask))
    return out


def load_outside(source: Path, split: str, max_items: int | None = None,
                 name: str | None = None) -> Split:
    """One split of an outside labeled folder or list: no quantized twins (reals are compared
    as they are: no format parity unless the data provides it); a fake without a mask counts
    as fully synthesized (mask kind ``full``), with a mask as ``region``."""
    if split not in pv.SPLITS:
        raise InputError(f"split must be one of {', '.join(pv.SPLITS)}, got '{split}'")
    kind = layout(source)
    out = Split(name or source.stem, source, split,
                info={"layout": kind, "generator": {}, "settings": {}})
    entries = (_list_entries if kind == "list" else _folder_entries)(source, out.skipped)
    counts = {"real": 0, "fake": 0}
    for e in entries:
        if e.split != split or (max_items is not None and counts[e.label] >= max_items):
            continue
        try:
            image = load_image(e.path)
            mask = None
            if e.mask is not None:
                mask = load_image(e.mask).max(-1) > 127
                if mask.shape != image.shape[:2]:
                    raise InputError(f"{e.mask}: mask {mask.shape[1]}x{mask.shape[0]} does "
                                     f"not match its image {image.shape[1]}x{image.shape[0]}")
        except InputError as err:
            out.skipped.append(str(err))
            continue
        counts[e.label] += 1
        out.add(e.label, image, e.rel, mask, "full" if mask is None else "region", e.generator)
    if not out.fake or not out.real:
        raise InputError(f"{source}: the '{split}' split has no real/fake images to score "
                         f"({counts['real']} real, {counts['fake']} fake)")
    return out


def load_split(folder: str | Path, split: str = "test", max_items: int | None = None,
               name: str | None = None, *, verify: bool = False,
               forms: Iterable[str] = FORMS, mask_kinds: Iterable[str] | None = None,
               progress: Callable[[int, int], None] | None = None) -> Split:
    """Read one split of any labeled layout (see the module docstring).

    ``max_items``: the first items only; ``forms`` / ``mask_kinds``: which images of a
    generated dataset (``box`` covers every box); ``verify``: the integrity mode;
    ``progress(advance, total)`` per image read.
    """
    folder = Path(folder)
    if layout(folder) != "generated":
        return load_outside(folder, split, max_items, name)
    info = pv.read_info(folder)
    if verify and not info.get("complete"):
        raise InputError(f"{folder}: incomplete dataset (finish it with its generate command)")
    out = Split(name or folder.name, folder, split, info=info)
    rows = pv.split_rows(folder, split, max_items, forms, mask_kinds)
    if not rows:
        raise InputError(f"{folder}: no images in split '{split}'")
    for r, image, mask in pv.read_rows(folder, rows, verify=verify, skipped=out.skipped):
        out.add(r["form"], image, r["id"], mask, pv.mask_kind(r) if mask is not None else "")
        if progress is not None:
            progress(1, len(rows))
    if not out.fake or not (out.real or out.qreal):
        raise InputError(f"{folder}: split '{split}' needs both real and fake images (has "
                         f"{len(out.real) + len(out.qreal)} real, {len(out.fake)} fake)")
    return out


def split_counts(folder: str | Path) -> dict[str, int]:
    """Images per split without decoding any: fakes of a generated dataset (from its
    ``dataset.json``), every labeled image of an outside layout."""
    folder = Path(folder)
    kind = layout(folder)
    if kind == "generated":
        info = pv.read_info(folder)
        if not info.get("complete"):
            raise InputError(f"{folder}: incomplete dataset (run its generate command again)")
        return dict((info.get("counts") or {}).get("by_split") or {})
    skipped: list[str] = []
    entries = (_list_entries if kind == "list" else _folder_entries)(folder, skipped)
    counts = dict.fromkeys(pv.SPLITS, 0)
    for e in entries:
        counts[e.split] += 1
    return counts


__all__ = ["FORMS", "LABEL_DIRS", "Split", "is_labeled_folder", "layout", "load_outside",
           "load_split", "negatives", "split_counts"]
