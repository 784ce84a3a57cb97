"""Labeled synthetic datasets on disk: the record schema, the manifest, ``dataset.json``.

A dataset folder holds::

    DS/dataset.json                          settings, source photos, counts, tool version
    DS/manifest.jsonl                        one JSON record per image (`RECORD_FIELDS`)
    DS/images/00000/00000042-real.png        the patch as photographed
    DS/images/00000/00000042-qreal.png       the same patch round-tripped through the palette
    DS/images/00000/00000042-fake.png        the generator's completion of the quantized patch
    DS/images/00000/00000042-mask.png        its mask: 255 = synthesized, 0 = given

``n`` counts *items*: item ``i`` is one source patch written in three *forms* (real, quantized
real, fake), so a dataset of ``n`` items has ``3 n`` images, ``n`` of them fake. Files are
bucketed 1000 items to a folder so no folder grows without bound.

Splits are by source photo, so no photo gives patches to two splits (`ImageSource.split_of`). Every
seed derives from (dataset seed, item) alone (`item_seed`), so shards, batch sizes and
resumes all produce the same bytes.

This module is core: it never imports the generators, the detectors or the CLI. It reads,
writes, checks, merges, exports and counts datasets; `generators.dataset` fills them.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from . import __version__
from .data import MAX_FILE_BYTES, derive_seed, load_image
from .errors import InputError
from .files import (
    atomic_write_bytes,
    atomic_write_text,
    check_plain_name,
    check_relative,
    inside,
    read_bounded,
    read_json,
)

FORMAT = "igpt-forensics-dataset-v1"
MAX_ITEMS = 10**8  # items a dataset may say it has (generate --n)
MANIFEST, INFO, IMAGES = "manifest.jsonl", "dataset.json", "images"
FORMS = ("real", "qreal", "fake")  # the three images of one item, in manifest order
LABEL_OF = {"real": "real", "qreal": "real", "fake": "fake"}
SPLITS = ("train", "val", "test")
ITEMS_PER_FOLDER = 1000
MIN_ID_DIGITS = 8


# Every record has every field, in this order; a field that does not apply to a form is null.
RECORD_FIELDS = (
    "id",                # "00000042-fake": item number and form
    "item",              # 42
    "form",              # real | qreal | fake
    "label",             # real | fake (qreal is real)
    "split",             # train | val | test, by source photo
    "path",              # image PNG, relative to the dataset folder
    "sha256",            # of the PNG file's bytes (null in the PNG's own stamp, see stamp.py)
    "pixels_sha256",     # data.image_sha256 of the decoded pixels (format-independent)
    "size",              # image side in pixels
    "photo_id",          # source photo (data spec id)
    "photo_sha256",      # data.image_sha256 of the decoded source photo
    "crop",              # [top, left, side] of the square cut from the photo
    "family",            # qreal, fake: the generator's family, pixel | vq
    "palette_sha256",    # qreal, fake (pixel family): the palette the pixels went through
    "tokenizer_sha256",  # fake (vq family): the tokenizer whose decoder made every pixel
    "mask_kind",         # fake: top-half | box | full | box:T,L,H,W | file:PATH | recon
    "box",               # fake: [top, left, height, width] for box masks
    "mask_path",         # fake: mask PNG, 255 = synthesized (the drawn tokens' pixels)
    "mask_sha256",       # fake: of the mask PNG's bytes
    "masked_pixels",     # fake: number of synthesized pixels
    "changed_path",      # fake (vq family): PNG, 255 = decoded pixel differs from the real
    "changed_sha256",    # fake (vq family): of the changed PNG's bytes
    "changed_pixels",    # fake (vq family): number of changed pixels
    "generator_sha256",  # fake: sha256 of the checkpoint's model.safetensors
    "generator_preset",  # fake: preset name (or "custom")
    "generator_shape",   # fake: the model's GPTConfig
    "temperature", "top_k", "top_p",  # fake: sampling parameters
    "seed",              # fake: the per-image sampling seed, item_seed(seed, item, "sample")
    "watermark",         # fake: WatermarkKey.describe() (key fingerprint, never the key) or null
)


# ----------------------------------------------------------------------------------------
# Names, splits, seeds


def id_digits(n: int) -> int:
    """Zero-padded width of item numbers: ids sort as numbers do."""
    return max(MIN_ID_DIGITS, len(str(max(n - 1, 0))))


def image_id(item: int, form: str, digits: int = MIN_ID_DIGITS) -> str:
    return f"{item:0{digits}d}-{form}"


def item_paths(item: int, digits: int = MIN_ID_DIGITS) -> dict[str, str]:
    """Relative POSIX paths of an item's files: one per form, ``mask`` and ``changed``."""
    folder = f"{IMAGES}/{item // ITEMS_PER_FOLDER:05d}"
    return {k: f"{folder}/{item:0{digits}d}-{k}.png" for k in (*FORMS, "mask", "changed")}


# The files a record names, as (path field, sha256 field): the image, and a fake's maps.
FILE_FIELDS = (("path", "sha256"), ("mask_path", "mask_sha256"),
               ("changed_path", "changed_sha256"))


def record_files(record: dict) -> list[tuple[str, str | None]]:
    """(relative path, sha256) of every file a record names."""
    return [(record[p], record.get(h)) for p, h in FILE_FIELDS if record.get(p)]


def item_seed(seed: int, item: int, stream: str) -> int:
    """A seed in [0, 2^44) from (dataset seed, item, purpose) only: the same in any shard,
    batch or resume. Streams ("sample", "mask") give unrelated numbers."""
    return derive_seed(seed, FORMAT, item, stream)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        a, b = text.split("/")
        index, count = int(a), int(b)
    except ValueError:
        raise InputError(f"--shard '{text}': expected INDEX/COUNT, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard '{text}': need 0 <= INDEX < COUNT")
    return index, count


def shard_items(n: int, shard: tuple[int, int]) -> range:
    """Items of a shard: ``item % count == index``."""
    index, count = shard
    return range(index, n, count)


def canonical_key(record: dict) -> tuple[int, int]:
    """The manifest's canonical order: by item, then real, qreal, fake."""
    return record["item"], FORMS.index(record["form"])


def make_record(**fields) -> dict:
    """A full record in `RECORD_FIELDS` order; unknown fields are a bug, missing ones null."""
    unknown = set(fields) - set(RECORD_FIELDS)
    if unknown:
        raise ValueError(f"unknown record fields {sorted(unknown)}")
    return {k: fields.get(k) for k in RECORD_FIELDS}


def record_line(record: dict) -> bytes:
    """One manifest line: compact JSON in field order, newline-terminated (deterministic)."""
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


# ----------------------------------------------------------------------------------------
# The manifest: append-only, one fsynced line per record


class ManifestWriter:
    """Appends records, each as one ``write`` of a whole line followed by ``fsync``: after a
    crash the file holds complete lines, except perhaps a final partial one that
    `repair_manifest` cuts off."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict) -> None:
        data = memoryview(record_line(record))
        while data:
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def repair_manifest(path: str | Path) -> int:
    """Cut a final partial line (a write interrupted by a crash); return bytes removed.

    Only the last line may be partial: a bad line before it means the file was damaged
    otherwise, and is an error.
    """
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    with open(path, "rb") as f:
        # the last complete line ends at the last newline; look backwards in blocks
        end, pos = 0, size
        while pos > 0:
            step = min(pos, 1 << 16)
            f.seek(pos - step)
            block = f.read(step)
            k = block.rfind(b"\n")
            if k >= 0:
                end = pos - step + k + 1
                break
            pos -= step
    if end < size:
        os.truncate(path, end)
    return size - end


def read_manifest(path: str | Path) -> Iterator[dict]:
    """Stream the records of a manifest (never the whole file in memory)."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, not UTF-8, a huge number, too deep
                partial = not line.endswith(b"\n")
                raise InputError(f"{path}:{lineno}: {'partial' if partial else 'corrupt'} "
                                 "manifest line") from None
            if not isinstance(record, dict) or "id" not in record:
                raise InputError(f"{path}:{lineno}: not a manifest record")
            yield check_record(record, f"{path}:{lineno}")


def generator_family(generator: dict) -> str | None:
    """A dataset's generator family from its ``dataset.json`` generator: None when none is
    recorded (an outside folder); datasets made before the VQ family existed are pixel."""
    return generator.get("family", "pixel") if generator.get("sha256") else None


def mask_kind(record: dict) -> str:
    """A fake's mask kind as detectors group them: every box is ``box``; no kind is full."""
    kind = str(record.get("mask_kind") or "full")
    return "box" if kind.startswith("box") else kind


def split_rows(folder: str | Path, split: str, max_items: int | None = None,
               forms: Iterable[str] = ("real", "qreal", "fake"),
               mask_kinds: Iterable[str] | None = None) -> list[dict]:
    """The manifest rows of ``split``, in manifest order: the first ``max_items`` items (by
    item number), the images of ``forms``, fakes of ``mask_kinds`` only (`mask_kind`)."""
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    forms = set(forms)
    rows = [r for r in read_manifest(Path(folder) / MANIFEST) if r.get("split") == split]
    if max_items is not None:
        keep = set(sorted({r["item"] for r in rows})[:max_items])
        rows = [r for r in rows if r["item"] in keep]
    return [r for r in rows if r["form"] in forms and (
        r["form"] != "fake" or mask_kinds is None or mask_kind(r) in mask_kinds)]


def read_rows(folder: str | Path, rows: Iterable[dict], verify: bool = True,
              skipped: list[str] | None = None,
              ) -> Iterator[tuple[dict, np.ndarray, np.ndarray | None]]:
    """The one reader of a dataset's images: (row, image, mask or None) per row of
    `split_rows`; every path stays inside ``folder``.

    Integrity, explicitly: ``verify=True`` (for training: a detector must not learn from an
    altered dataset) checks each file's sha256 against the manifest and refuses on the first
    mismatch or missing file; ``verify=False`` (for scoring) reads what it can and appends
    one line per unreadable file to ``skipped``, so one bad file costs one image.
    """
    folder = Path(folder)
    where = f"{folder / MANIFEST}"

    def read(rel: str, sha: str | None) -> np.ndarray:
        p = inside(folder, rel, where)
        if not os.path.lexists(p):
            raise InputError(f"{p}: missing (listed in the manifest)")
        data = read_bounded(p, MAX_FILE_BYTES, "image file")  # a FIFO or a huge file: one line
        if verify and hashlib.sha256(data).hexdigest() != sha:
            raise InputError(f"{p}: sha256 does not match the manifest (file altered?)")
        return load_image(data, name=str(p))

    for r in rows:
        try:
            image = read(r["path"], r.get("sha256"))
            mask = (read(r["mask_path"], r.get("mask_sha256")).max(-1) > 127
                    if r["form"] == "fake" else None)
        except InputError as e:
            if verify:
                raise
            if skipped is not None:
                skipped.append(str(e))
            continue
        yield r, image, mask


def check_record(record: dict, where: str) -> dict:
    """The fields that name files and folders are safe before anything opens or writes one:
    ``id`` a plain name, ``split`` and ``form`` known, ``item`` a count, ``path`` and
    ``mask_path`` and ``changed_path`` relative paths without ``..``. A crafted manifest is one clear line."""
    check_plain_name(record.get("id"), where, "id")
    if record.get("split") not in SPLITS:
        raise InputError(f"{where}: split {record.get('split')!r} is not one of "
                         f"{', '.join(SPLITS)}")
    if record.get("form") not in FORMS:
        raise InputError(f"{where}: form {record.get('form')!r} is not one of {', '.join(FORMS)}")
    item = record.get("item")
    if isinstance(item, bool) or not isinstance(item, int) or item < 0:
        raise InputError(f"{where}: item {item!r} is not a non-negative integer")
    check_relative(record.get("path"), where)
    for field, _ in FILE_FIELDS[1:]:
        if record.get(field) is not None:
            check_relative(record[field], where)
    return record


def write_manifest(path: str | Path, records: Iterable[dict]) -> int:
    """Write records as a whole new manifest (temporary file, then rename); return the count.

    Streams: the records may come from a generator as large as the dataset.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.rewrite.tmp")
    count = 0
    try:
        with open(tmp, "wb") as f:
            for record in records:
                f.write(record_line(record))
                count += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def is_canonical(path: str | Path) -> bool:
    """True when the manifest is in canonical order without duplicates (one streaming pass)."""
    last = None
    for record in read_manifest(path):
        key = canonical_key(record)
        if last is not None and key <= last:
            return False
        last = key
    return True


def sort_manifest(path: str | Path) -> None:
    """Rewrite a manifest in canonical order. Holds the records in memory: only needed after
    a repair re-appended rows out of order, which a plain resume never does."""
    records = sorted(read_manifest(path), key=canonical_key)
    write_manifest(path, records)


# ----------------------------------------------------------------------------------------
# dataset.json


DESCRIPTION = ("n items; item i is one source patch written as real (as photographed), qreal "
               "(round-tripped through the generator's palette) and fake (the generator's "
               "completion of qreal under the item's mask, masks cycling through settings.masks)."
               " Splits by source photo; see manifest.jsonl for one record per image.")


def new_info(settings: dict, data: str, generator: dict, photos: list[dict],
             skipped: list[str]) -> dict:
    """dataset.json of a dataset being written: ``settings`` decide every byte (a resume must
    match them), the rest describes where things came from; ``counts`` come at the end."""
    return {"format": FORMAT, "tool_version": __version__, "description": DESCRIPTION,
            "complete": False, "settings": settings, "data": data, "generator": generator,
            "photos": photos, "skipped": skipped, "counts": None}


def info_text(info: dict) -> str:
    """dataset.json's bytes are a function of its content: merge == one run, byte for byte."""
    return json.dumps(info, indent=1, ensure_ascii=False) + "\n"


def write_info(folder: str | Path, info: dict) -> None:
    atomic_write_text(Path(folder) / INFO, info_text(info))


def read_info(folder: str | Path) -> dict:
    path = Path(folder) / INFO
    if not Path(folder).is_dir():
        raise InputError(f"{folder}: no such dataset folder")
    info = read_json(path, f"{folder}: not a dataset ({INFO} missing)", f"{path}: unreadable",
                     FORMAT)
    # what merge, stats and resume read from it, checked before any of it is used (merge
    # allocates one counter per item)
    settings = info.get("settings")
    if not isinstance(settings, dict):
        raise InputError(f"{path}: 'settings' must be an object")
    n, shard = settings.get("n"), settings.get("shard")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ITEMS:
        raise InputError(f"{path}: settings.n must be a whole number of items from 1 to "
                         f"{MAX_ITEMS:,}, got {n!r}")
    if (not isinstance(shard, list) or len(shard) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in shard)
            or not 0 <= shard[0] < shard[1]):
        raise InputError(f"{path}: settings.shard must be [index, count] with 0 <= index < "
                         f"count, got {shard!r}")
    return info


def settings_diff(ours: dict, theirs: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """``["seed: 0 vs 1", ...]`` for settings that differ (keys in ``ignore`` skipped)."""
    out = []
    for k in sorted(set(ours) | set(theirs)):
        if k in ignore:
            continue
        a, b = ours.get(k, "<unset>"), theirs.get(k, "<unset>")
        if a != b:
            a, b = (f"{v[:12]}..." if isinstance(v, str) and len(v) == 64 else v for v in (a, b))
            out.append(f"{k}: {a} vs {b}")
    return out


# ----------------------------------------------------------------------------------------
# Counting


def count_records(records: Iterable[dict]) -> dict:
    """Counts per split, label, form and mask kind, and one row per combination.

    The same function fills dataset.json's ``counts`` and ``dataset stats``: they agree.
    """
    combos: Counter = Counter()
    for r in records:
        combos[(r["split"], r["label"], r["form"], r["mask_kind"])] += 1

    def by(i: int, order: tuple[str, ...] = ()) -> dict[str, int]:
        c: Counter = Counter()
        for key, v in combos.items():
            c[key[i]] += v
        return {k: c[k] for k in sorted(c, key=lambda k: (order.index(k) if k in order
                                                          else len(order), str(k)))}

    rows = [{"split": s, "label": lab, "form": f, "mask_kind": m, "images": v}
            for (s, lab, f, m), v in sorted(
                combos.items(), key=lambda kv: (SPLITS.index(kv[0][0]) if kv[0][0] in SPLITS
                                                else len(SPLITS), kv[0][0],
                                                FORMS.index(kv[0][2]), str(kv[0][3])))]
    kinds: Counter = Counter()
    for (_, _, f, m), v in combos.items():
        if f == "fake":
            kinds[m] += v
    return {
        "images": sum(combos.values()),
        "by_split": by(0, SPLITS),
        "by_label": by(1, ("real", "fake")),
        "by_form": by(2, FORMS),
        "fakes_by_mask_kind": {k: kinds[k] for k in sorted(kinds)},
        "rows": rows,
    }


def check_complete(folder: str | Path, items: Iterable[int], digits: int) -> None:
    """Exactly the records of ``items`` (3 per item, no more, no less) in canonical order."""
    want = ((item, f) for item in items for f in FORMS)
    path = Path(folder) / MANIFEST
    for record in read_manifest(path):
        expected = next(want, None)
        got = (record["item"], record["form"])
        if got != expected or record["id"] != image_id(*got, digits):
            raise InputError(f"{path}: record {record['id']} where "
                             f"{image_id(*expected, digits) if expected else 'the end'} "
                             "was expected (gap, duplicate or stray row)")
    missing = next(want, None)
    if missing is not None:
        raise InputError(f"{path}: ends before {image_id(*missing, digits)}")


# ----------------------------------------------------------------------------------------
# Locking: one writer per dataset folder


@contextlib.contextmanager
def locked(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` itself (no lock file is left behind; the OS
    releases it when the process dies, even by SIGKILL)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, one writer per folder is the user's job
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{folder}: another process is writing this dataset") from None
        yield
    finally:
        os.close(fd)


def remove_temporaries(folder: str | Path) -> int:
    """Delete the temporary files of atomic writes a killed run left behind."""
    n = 0
    for p in Path(folder).rglob(".*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def is_empty_folder(path: Path) -> bool:
    """A folder with nothing in it but the temporary files of atomic writes (``.NAME.*.tmp``)
    that a kill left behind: a run killed while writing its first dataset.json may start
    again there."""
    return path.is_dir() and all(p.is_file() and p.name.startswith(".") and
                                 p.name.endswith(".tmp") for p in path.iterdir())


def check_new_folder(path: Path, what: str) -> None:
    if path.exists() and not is_empty_folder(path):
        raise InputError(f"{path}: already exists and is not empty (the {what} needs a new "
                         "folder)")


# ----------------------------------------------------------------------------------------
# Copying files with their hashes checked (merge, export)


def copy_checked(src: Path, dst: Path, sha256: str) -> None:
    if not os.path.lexists(src):
        raise InputError(f"{src}: missing (listed in the manifest)")
    data = read_bounded(src, MAX_FILE_BYTES, "image file")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InputError(f"{src}: sha256 does not match the manifest (file altered?)")
    atomic_write_bytes(dst, data)


def merge_datasets(folders: list[str | Path], out: str | Path,
                   progress: Callable[[int], None] | None = None) -> dict:
    """Join complete shards of one dataset into the dataset one run would have made.

    The shards must share every setting but ``shard``, and their items must together be
    0..n-1, each exactly once. Every file is copied with its sha256 checked; the manifest is
    a streaming merge of the shards' (canonical) manifests. Returns the new dataset.json.
    """
    if not folders:
        raise InputError("merge: name at least one dataset")
    out = Path(out)
    infos = [read_info(f) for f in folders]
    for f, info in zip(folders, infos):
        if not info.get("complete"):
            raise InputError(f"{f}: incomplete (run its generate command again to finish it)")
    base = infos[0]["settings"]
    for f, info in zip(folders[1:], infos[1:]):
        diff = settings_diff(base, info["settings"], ignore=("shard",))
        if diff:
            raise InputError(f"{f}: not a shard of the same dataset as {folders[0]} "
                             f"({'; '.join(diff)})")
    n = base["n"]
    seen = np.zeros(n, dtype=np.int64)
    for info in infos:
        index, count = info["settings"]["shard"]
        seen[index::count] += 1
    if (seen > 1).any():
        raise InputError(f"merge: item {int(np.argmax(seen > 1))} is in more than one shard")
    if (seen == 0).any():
        raise InputError(f"merge: item {int(np.argmax(seen == 0))} is in no shard (missing "
                         "shards?)")
    for f in folders:  # every row checked (canonical order, safe paths) before any write
        if not is_canonical(Path(f) / MANIFEST):
            raise InputError(f"{f}: manifest is not in canonical order")
    check_new_folder(out, "merge")
    out.mkdir(parents=True, exist_ok=True)
    info = {**infos[0], "settings": {**base, "shard": [0, 1]}, "complete": False,
            "counts": None}
    write_info(out, info)

    def checked_rows(folder: Path) -> Iterator[dict]:
        for r in read_manifest(folder / MANIFEST):
            where = f"{folder / MANIFEST}: {r['id']}"
            for rel, sha in record_files(r):
                copy_checked(inside(folder, rel, where), inside(out, rel, where), sha)
            if progress is not None:
                progress(1)
            yield r

    rows = heapq.merge(*(checked_rows(Path(f)) for f in folders), key=canonical_key)
    write_manifest(out / MANIFEST, rows)
    check_complete(out, range(n), id_digits(n))
    return finish_info(out, info)


def finish_info(folder: str | Path, info: dict) -> dict:
    """Count the manifest, mark the dataset complete and write dataset.json."""
    folder = Path(folder)
    info = {**info, "complete": True, "counts": count_records(read_manifest(folder / MANIFEST))}
    write_info(folder, info)
    return info


# ----------------------------------------------------------------------------------------
# Export and stats


EXPORT_LAYOUTS = ("folders",)
EXPORT_REALS = ("both", "real", "qreal")


def export_folders(folder: str | Path, out: str | Path, real: str = "both",
                   progress: Callable[[int], None] | None = None) -> dict[str, dict[str, int]]:
    """CNNDetection's layout: ``OUT/<split>/0_real/<id>.png`` and ``OUT/<split>/1_fake/...``.

    ``real`` picks which real form goes into 0_real: ``both`` (as photographed and quantized),
    ``real`` or ``qreal`` (same palette as the fakes: format parity). Files keep their ids, so
    the manifest still describes them. Returns counts per split and class folder.
    """
    if real not in EXPORT_REALS:
        raise InputError(f"--real must be one of {', '.join(EXPORT_REALS)}, got '{real}'")
    folder, out = Path(folder), Path(out)
    info = read_info(folder)
    if not info.get("complete"):
        raise InputError(f"{folder}: incomplete dataset (finish it before exporting)")
    check_new_folder(out, "export")
    for _ in read_manifest(folder / MANIFEST):  # every row checked before anything is written
        pass
    forms = {"both": ("real", "qreal"), "real": ("real",), "qreal": ("qreal",)}[real] + ("fake",)
    counts: dict[str, Counter] = {}
    for r in read_manifest(folder / MANIFEST):
        if r["form"] not in forms:
            continue
        cls = "1_fake" if r["label"] == "fake" else "0_real"
        copy_checked(inside(folder, r["path"], f"{folder / MANIFEST}: {r['id']}"),
                     out / r["split"] / cls / f"{r['id']}.png", r["sha256"])
        counts.setdefault(r["split"], Counter())[cls] += 1
        if progress is not None:
            progress(1)
    return {s: dict(sorted(counts[s].items())) for s in SPLITS if s in counts}


def dataset_stats(folder: str | Path) -> dict:
    """Counts per split, label, form and mask kind, from the manifest itself."""
    folder = Path(folder)
    info = read_info(folder)
    counts = count_records(read_manifest(folder / MANIFEST))
    return {"dataset": str(folder), "complete": bool(info.get("complete")),
            "n": info["settings"]["n"], "shard": info["settings"]["shard"], **counts}


