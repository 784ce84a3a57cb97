"""Real images: safe loading, data sources named by a short spec, and seeded patches.

A *data spec* names where real photos come from; every command takes it as ``--data``:

- ``builtin``: photos that ship inside installed packages (scikit-image, scikit-learn,
  matplotlib). No download, ever.
- a folder: every image below it (png, jpg, webp, bmp, tiff, gif first frame), recursively.
- an ``.npz`` file of uint8 arrays (HxWx3, HxW, or a stack NxHxWx3).

Photos are split *by source photo* into ``train``, ``val`` and ``test`` (``heldout`` is val and
test together), so no photo contributes patches to two splits. For ``builtin`` the split is
fixed (`BUILTIN_SPLITS`); for folders and ``.npz`` files a photo is held out when the hash of
its id falls in the lowest ``HELDOUT_FRACTION`` of the range (val in the lower half of that,
test in the upper), which is deterministic and stable when files are added; a source of 3 or
more photos always holds out at least one val and one test photo (with few photos the hash
rule may hold out none; then the train photos nearest the held-out range move). Explicit
splits: ``train/ val/ test/`` subfolders, or a ``split`` column in a photo list. Generators
train on ``train``; detectors calibrate on ``val`` and are measured on ``test``.

Images are always ``uint8`` arrays of shape ``(H, W, 3)`` (a batch: ``(N, H, W, 3)``).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import InputError
from .files import check_regular, inside, read_bounded

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)
# A photo larger than this is refused before it is decoded (Pillow's decompression-bomb guard
# uses a similar limit; we make it an error instead of a warning).
MAX_PIXELS = 8192 * 8192
# default cap of what is scored (`score --max-pixels`, the web page): scoring time grows with
# the pixels, about 2 minutes per megapixel on 2 CPU cores with the likelihood detector
MAX_SCORE_PIXELS = 2048 * 2048
HELDOUT_FRACTION = 0.2
CACHE_BYTES = 512 * 2**20  # decoded photos kept in memory while sampling patches
MAX_FILE_BYTES = 1 << 30  # an image file larger than this is refused before it is read
MAX_LIST_BYTES = 64 << 20  # a list file larger than this is refused before it is read
# The smallest side the models here work at: a smaller image is upscaled to it, so a thin
# image (1 x 6000 pixels) would become 32 x 192,000. Its pixels after that count against
# ``max_pixels`` too (beyond one WORK_SIDE x WORK_SIDE square, which any image may become).
WORK_SIDE = 32
# What ``load_image`` decodes: the formats of IMAGE_EXTENSIONS, and no other, whatever a
# file's name says (EPS would call Ghostscript, where it is installed). MPO (camera JPEGs)
# only where this Pillow opens it as a format of its own (Pillow 13 reads them as JPEG).
Image.init()
IMAGE_FORMATS = tuple(f for f in ("PNG", "JPEG", "MPO", "WEBP", "BMP", "TIFF", "GIF")
                      if f in Image.OPEN)
MAX_PATCH_SIZE = 4096
MAX_PATCH_BYTES = 8 * 2**30  # one call's patches, checked before they are allocated

# Never accept a truncated file as if it were whole.
ImageFile.LOAD_TRUNCATED_IMAGES = False


# ----------------------------------------------------------------------------------------
# Safe loading


def upscaled_shape(h: int, w: int, side: int = WORK_SIDE) -> tuple[int, int]:
    """(H, W) of an ``h`` x ``w`` image once its shorter side is brought up to ``side`` (as
    is when it is that long already): what the detectors score."""
    f = side / max(1, min(h, w))
    return (h, w) if f <= 1.0 else (max(side, round(h * f)), max(side, round(w * f)))


def load_image(source: str | Path | bytes, name: str | None = None,
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode one image file to uint8 RGB ``(H, W, 3)``.

    EXIF orientation is applied; every Pillow mode is converted to 8-bit RGB (alpha is
    composited onto white, 16-bit and float images are rescaled, not clipped). Only
    `IMAGE_FORMATS` are decoded. An image over ``max_pixels``, also once upscaled to
    `WORK_SIDE` (a thin strip), is refused before it is decoded. Any failure raises
    `InputError` with one line naming the file.
    """
    name = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    if isinstance(source, bytes):
        if not source:
            raise InputError(f"{name}: empty file")
        fp = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"{name}: no such file")
        if path.is_dir():
            raise InputError(f"{name}: is a folder, not an image file")
        if not path.is_file():  # a FIFO would hang the decoder, a device never end
            raise InputError(f"{name}: not a regular file (expected an image file)")
        if path.stat().st_size == 0:
            raise InputError(f"{name}: empty file (0 bytes)")
        fp = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp, formats=IMAGE_FORMATS) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise InputError(
                        f"{name}: image too large ({w}x{h} pixels, limit {max_pixels})")
                if w == 0 or h == 0:
                    raise InputError(f"{name}: image has no pixels ({w}x{h})")
                work = np.prod(upscaled_shape(h, w))
                if work > max(max_pixels, WORK_SIDE * WORK_SIDE):
                    raise InputError(
                        f"{name}: image too thin ({w}x{h} pixels: upscaled to a shorter side "
                        f"of {WORK_SIDE} to be scored it would have {work:,}, limit "
                        f"{max_pixels:,})")
                im.seek(0)  # first frame of an animation or a multi-page file
                im.load()
                im = ImageOps.exif_transpose(im)
                return to_rgb(im)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{name}: image too large (decompression-bomb guard: {e})") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image file (unrecognised format; read are "
                         f"{', '.join(IMAGE_FORMATS)})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{name}: corrupt or truncated image ({msg})") from None


def to_rgb(im: Image.Image) -> np.ndarray:
    """Convert any Pillow image to uint8 RGB, scaling high bit depths instead of clipping."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        if mode == "F":
            top = 1.0 if a.size and np.nanmax(a) <= 1.0 else 255.0
        elif mode.startswith("I;16"):
            top = 65535.0
        else:  # 32-bit integer: 16-bit PNGs open as "I" in some Pillow versions
            top = 65535.0 if a.size and a.max() > 255 else 255.0
        a = np.clip(np.rint(np.nan_to_num(a) / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=-1)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def display_name(path: str | Path) -> str:
    """A path as text that can always be printed and written to JSON: bytes that are not
    UTF-8 (a file name from another system) become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


def find_images(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Expand files and folders (recursively) into image files, sorted.

    Returns ``(files, errors)``: a path that does not exist is an error line, not an
    exception, so a batch command can go on with the rest. A file whose name is not valid
    UTF-8 is skipped with a line too: ids, manifests, CSV and JSON all need text.
    """
    files: list[Path] = []
    errors: list[str] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")  # a FIFO named .png: reported when read
                           if not f.is_dir() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            found = [p]
        else:
            errors.append(f"{display_name(p)}: no such file or folder")
            continue
        for f in found:
            if display_name(f) != str(f):
                errors.append(f"{display_name(f)}: file name is not valid UTF-8 (skipped; "
                              "rename the file)")
            else:
                files.append(f)
    return files, errors


@dataclass
class LoadReport:
    """What a batch load skipped, one line per bad file."""

    bad: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.bad.append(line)

    def __bool__(self) -> bool:  # truthy when something was skipped
        return bool(self.bad)


def iter_images(paths: Iterable[str | Path], report: LoadReport,
                ) -> Iterator[tuple[Path, np.ndarray]]:
    """Yield ``(path, image)`` for every readable image; bad files go to ``report``."""
    files, errors = find_images(paths)
    for e in errors:
        report.add(e)
    for f in files:
        try:
            yield f, load_image(f)
        except InputError as e:
            report.add(str(e))


# ----------------------------------------------------------------------------------------
# Data sources


def _pkg_file(module: str, *parts: str) -> Path:
    import importlib

    return Path(importlib.import_module(module).__file__).parent.joinpath(*parts)


# id -> (package, relative path). Real photographs only: synthetic test patterns, grayscale
# scans and the right half of the stereo motorcycle pair (same scene as the left) are left out.
BUILTIN_PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage.data", "astronaut.png"),
    "chelsea": ("skimage.data", "chelsea.png"),
    "coffee": ("skimage.data", "coffee.png"),
    "rocket": ("skimage.data", "rocket.jpg"),
    "motorcycle": ("skimage.data", "motorcycle_left.png"),
    "retina": ("skimage.data", "retina.jpg"),
    "hubble": ("skimage.data", "hubble_deep_field.jpg"),
    "immunohistochemistry": ("skimage.data", "ihc.png"),
    "china": ("sklearn.datasets", "images/china.jpg"),
    "flower": ("sklearn.datasets", "images/flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}
# Held out from training, for bits/dim and detector evaluation: a portrait, an indoor
# still life and a nature close-up, each unlike the others.
BUILTIN_HELDOUT = ("coffee", "flower", "grace_hopper")
BUILTIN_SPLITS = {"coffee": "val", "flower": "test", "grace_hopper": "test"}

SPLITS = ("train", "val", "test", "heldout", "all")


def hash_fraction(text: str) -> float:
    """A stable number in [0, 1) from a string (used to split photos deterministically)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def photo_split(photo_id: str) -> str:
    """train / val / test of a folder or .npz photo, from the hash of its id."""
    h = hash_fraction(photo_id)
    if h < HELDOUT_FRACTION / 2:
        return "val"
    return "test" if h < HELDOUT_FRACTION else "train"


def derive_seed(seed: int, *keys: object) -> int:
    """A per-item seed in [0, 2^44) from a run seed and an item's keys (e.g. its id), so an
    item's randomness does not depend on batch, shard or resume point."""
    text = "/".join(str(k) for k in (seed, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 20


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Center-crop a photo to a square and resample it to ``size x size`` (Lanczos): how a
    user's image of any shape is shown to a model trained on ``size x size`` patches."""
    h, w = image.shape[:2]
    side = min(h, w)
    return cut(image, Crop("", (h - side) // 2, (w - side) // 2, side), size)


class ImageSource:
    """Photos named by one data spec or several. ``ids`` are stable photo ids; ``load(id)``
    decodes one.

    A spec is ``builtin``, a folder, an ``.npz`` file, one image file, or a photo list
    (``.txt``: one path per line; ``.tsv``: a header with a ``path`` column and optionally
    ``sha256`` and ``split``). Several specs make one source: each keeps its own splits and
    its ids are prefixed with ``SPEC:``. Folders are listed lazily (no photo is decoded until
    asked for); bad files are found when loaded, reported in ``report`` and skipped.
    """

    def __init__(self, spec: str | Path | Sequence[str | Path]):
        specs = [str(s) for s in ([spec] if isinstance(spec, (str, Path)) else spec)]
        if not specs:
            raise InputError("no data source given (a --data spec is 'builtin', a folder, "
                             "an .npz file or a photo list)")
        if len(set(specs)) != len(specs):
            raise InputError(f"--data names the same source twice: {specs}")
        self.specs = specs
        self.spec = specs[0] if len(specs) == 1 else " + ".join(specs)
        self.report = LoadReport()
        self._loaders: dict[str, Callable[[], np.ndarray]] = {}
        self._split: dict[str, str] = {}
        self._files: dict[str, str] = {}  # id -> file it is read from, as named in the spec
        self._sha256: dict[str, str] = {}  # id -> sha256 of the file's bytes, once read
        for one in specs:
            prefix = f"{one}:" if len(specs) > 1 else ""
            part = _SingleSource(one, prefix, self._sha256)
            for line in part.skipped:
                self.report.add(line)
            for pid in part.loaders:
                self._loaders[prefix + pid] = part.loaders[pid]
                self._split[prefix + pid] = part.split[pid]
                if pid in part.files:
                    self._files[prefix + pid] = part.files[pid]

    @property
    def ids(self) -> list[str]:
        return list(self._loaders)

    def photo_ids(self, split: str = "all") -> list[str]:
        """The photos of ``split``: train, val, test, heldout (val + test), all, or several
        joined by commas (``train,val``), in the source's order."""
        want: set[str] = set()
        for one in split.split(","):
            one = one.strip()
            if one not in SPLITS:
                raise InputError(f"unknown split '{one}' in '{split}' (choose from "
                                 f"{', '.join(SPLITS)}, or several joined by commas)")
            want |= ({"train", "val", "test"} if one == "all"
                     else {"val", "test"} if one == "heldout" else {one})
        return [pid for pid in self._loaders if self._split[pid] in want]

    def split_of(self, photo_id: str) -> str:
        """train, val or test: the one place a photo's split is decided."""
        return self._split[photo_id]

    def load(self, photo_id: str) -> np.ndarray:
        return self._loaders[photo_id]()

    def photos(self, split: str = "all") -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(id, image)`` for every readable photo of the split; bad ones reported."""
        for pid in self.photo_ids(split):
            try:
                yield pid, self.load(pid)
            except InputError as e:
                self.report.add(str(e))

    def describe(self, photo_ids: Iterable[str]) -> list[dict]:
        """What a checkpoint records of the photos it saw: id, split, file and the sha256 of
        the file's bytes (of the decoded pixels for arrays, which have no file)."""
        rows = []
        for pid in photo_ids:
            row = {"id": pid, "split": self._split[pid]}
            if pid in self._files:
                row["file"] = self._files[pid]
            if pid not in self._sha256:
                self._sha256[pid] = image_sha256(self.load(pid))
            row["sha256"] = self._sha256[pid]
            rows.append(row)
        return rows


def _check_npz_headers(path: Path, z) -> None:
    """Every array of an open .npz is uint8 and, all together, at most `MAX_FILE_BYTES`:
    read from each member's header, before any array is decompressed (a compressed .npz of
    a few MB can hold many GB of zeros)."""
    total = 0
    for info in z.zip.infolist():
        key = info.filename.removesuffix(".npy")
        with z.zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(f)
        if dtype != np.uint8:
            raise InputError(f"{path}: array '{key}' has dtype {dtype}, expected uint8")
        total += int(np.prod(shape, dtype=object))
        if total > MAX_FILE_BYTES:
            raise InputError(f"{path}: its arrays hold more than {MAX_FILE_BYTES:,} bytes "
                             f"(array '{key}' has shape {tuple(shape)})")


PROBE_FILES = 64  # sources of at most this many files have their headers opened when listed


def _opens(path: Path) -> bool:
    """Whether an image file's header opens (nothing decoded; a FIFO is never opened)."""
    if not path.is_file():
        return False
    try:
        with Image.open(path, formats=IMAGE_FORMATS):
            return True
    except Exception:  # any failure: the file is reported when it is loaded
        return False


class _SingleSource:
    """The photos of one data spec: ``loaders``, ``split`` and ``files``, keyed by id.
    Reading a file records its sha256 in ``sha256`` under ``prefix + id``."""

    def __init__(self, spec: str, prefix: str, sha256: dict[str, str]):
        self.spec, self.prefix, self.sha256 = spec, prefix, sha256
        self.loaders: dict[str, Callable[[], np.ndarray]] = {}
        self.split: dict[str, str] = {}
        self.files: dict[str, str] = {}
        self.skipped: list[str] = []  # files found but not usable (e.g. their names)
        self.explicit: set[str] = set()  # photos whose split the spec gives
        self.paths: dict[str, Path] = {}  # where each file photo is (probed by _ensure_heldout)
        if spec == "builtin":
            for pid, (module, rel) in BUILTIN_PHOTOS.items():
                self._add_file(pid, _pkg_file(module, rel), f"builtin:{pid}",
                               f"{module}/{rel}", BUILTIN_SPLITS.get(pid, "train"))
            return
        path = Path(spec)
        if not path.exists():
            raise InputError(f"{spec}: no such file or folder (a --data spec is 'builtin', a "
                             "folder of images, an .npz file or a photo list .txt/.tsv)")
        if path.is_dir():
            files, self.skipped = find_images([path])
            for f in files:
                pid = f.relative_to(path).as_posix()
                top = pid.split("/", 1)[0]
                # train/ val/ test/ subfolders assign their photos explicitly
                split = top if "/" in pid and top in ("train", "val", "test") else None
                self._add_file(pid, f, str(f), pid, split)
        elif path.suffix.lower() == ".npz":
            self._load_npz(path)
        elif path.suffix.lower() in (".txt", ".tsv"):
            self._load_list(path)
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            self._add_file(path.name, path, str(path), path.name, None)
        else:
            raise InputError(f"{spec}: not a data source (expected 'builtin', a folder, an "
                             ".npz file, an image or a photo list .txt/.tsv)")
        if not self.loaders:
            raise InputError(f"{spec}: no images found")
        self._ensure_heldout()

    def _ensure_heldout(self) -> None:
        """At least one val and one test photo whenever there are 3 or more: with few photos
        the hash rule may hold none out. The train photo whose hash lies nearest the held-out
        range moves (only photos whose split was not given explicitly). With few files
        (`PROBE_FILES`), only those whose image header opens count, so that a text file named
        .jpg cannot be a folder's only test photo."""
        usable = self.split.keys()
        if len(self.paths) <= PROBE_FILES:
            usable = [pid for pid in usable if pid not in self.paths
                      or _opens(self.paths[pid])]
        if len(usable) < 3:
            return
        for want in ("val", "test"):
            if any(self.split[pid] == want for pid in usable):
                continue
            movable = sorted((hash_fraction(pid), pid) for pid in usable
                             if self.split[pid] == "train" and pid not in self.explicit)
            if len(movable) > 1:
                self.split[movable[0][1]] = want

    def _add_file(self, pid: str, path: Path, name: str, rel: str, split: str | None,
                  sha256: str | None = None) -> None:
        def load() -> np.ndarray:
            try:
                data = read_bounded(path, MAX_FILE_BYTES, "image file")
            except InputError as e:  # named as the spec names it
                raise InputError(str(e).replace(str(path), name, 1)) from None
            digest = hashlib.sha256(data).hexdigest()
            if sha256 is not None and digest != sha256:
                raise InputError(f"{name}: sha256 {digest[:12]}... differs from the list's "
                                 f"{sha256[:12]}... (a different file)")
            self.sha256[self.prefix + pid] = digest
            return load_image(data, name=name)

        self.loaders[pid] = load
        self.paths[pid] = path
        self.split[pid] = split or photo_split(pid)
        if split:
            self.explicit.add(pid)
        self.files[pid] = rel

    def _load_list(self, path: Path) -> None:
        """A photo list: paths relative to its folder, or to a ``# root: DIR`` line; every
        path must stay inside that root (no absolute paths, no ``..``)."""
        try:
            lines = read_bounded(path, MAX_LIST_BYTES, "photo list").decode(
                "utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise InputError(f"{path}: unreadable photo list ({e})") from None
        root = path.parent
        header = ["path"]
        tsv = path.suffix.lower() == ".tsv"
        rows = []
        for n, line in enumerate(lines, 1):
            if line.startswith("#"):
                key, _, value = line[1:].partition(":")
                if key.strip() == "root":
                    root = (path.parent / value.strip()).resolve()
                continue
            if not line.strip():
                continue
            cells = line.split("\t") if tsv else [line.strip()]
            if tsv and header == ["path"] and not rows and cells[0] == "path":
                header = cells
                continue
            if len(cells) != len(header):
                raise InputError(f"{path}:{n}: {len(cells)} columns, header has {len(header)}")
            rows.append((n, dict(zip(header, cells))))
        for n, row in rows:
            rel = row["path"]
            where = f"{path}:{n}"
            target = inside(root, rel, where)
            split = row.get("split") or None
            if split is not None and split not in ("train", "val", "test"):
                raise InputError(f"{where}: split must be train, val or test, got {split!r}")
            sha = row.get("sha256") or None
            if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise InputError(f"{where}: sha256 must be 64 lowercase hex digits")
            if rel in self.loaders:
                raise InputError(f"{where}: {rel} is listed twice")
            self._add_file(rel, target, str(target), rel, split, sha)

    def _load_npz(self, path: Path) -> None:
        check_regular(path, ".npz of photos")
        try:
            # allow_pickle=False: an .npz holding object arrays is refused, never unpickled.
            with np.load(path, allow_pickle=False) as z:
                _check_npz_headers(path, z)  # before anything is decompressed
                arrays = {k: z[k] for k in z.files}
        except InputError:
            raise
        except Exception as e:  # zipfile.BadZipFile, ValueError (pickled objects), OSError
            raise InputError(f"{path}: not a readable .npz of uint8 arrays ({e})") from None
        for key, a in arrays.items():
            if a.ndim == 2:
                a = np.repeat(a[..., None], 3, axis=-1)
            if a.ndim == 3 and a.shape[-1] == 3:
                self._add_array(f"{path.name}:{key}", a)
            elif a.ndim == 4 and a.shape[-1] == 3:
                for i in range(a.shape[0]):
                    self._add_array(f"{path.name}:{key}[{i}]", a[i])
            else:
                raise InputError(f"{path}: array '{key}' has shape {a.shape}, expected "
                                 "HxW, HxWx3 or NxHxWx3")

    def _add_array(self, pid: str, a: np.ndarray) -> None:
        def load() -> np.ndarray:
            if a.shape[0] == 0 or a.shape[1] == 0:  # one bad array is skipped, not the file
                raise InputError(f"{self.spec}: array {pid} has no pixels ({a.shape})")
            return a

        self.loaders[pid] = load
        self.split[pid] = photo_split(pid)


# ----------------------------------------------------------------------------------------
# Patches


@dataclass(frozen=True)
class Crop:
    """Where a patch came from: photo, top-left corner and side of the square crop."""

    photo_id: str
    top: int
    left: int
    side: int


def plan_crop(rng: np.random.Generator, photo_id: str, shape: tuple[int, int],
              size: int) -> Crop:
    """A square crop at a random scale (log-uniform between ``size`` and the shorter side)."""
    h, w = shape
    short = min(h, w)
    lo = min(size, short)
    side = int(round(np.exp(rng.uniform(np.log(lo), np.log(short))))) if short > lo else short
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return Crop(photo_id, top, left, side)


def cut(image: np.ndarray, crop: Crop, size: int) -> np.ndarray:
    """Cut a crop out of a photo and resample it to ``size x size`` (antialiased)."""
    region = image[crop.top:crop.top + crop.side, crop.left:crop.left + crop.side]
    if crop.side == size:
        return np.ascontiguousarray(region)
    im = Image.fromarray(region).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(im, dtype=np.uint8)


class PatchSampler:
    """The readable photos of a split, decoded once, and the patch of any item id.

    ``ids`` (optional) names the photos instead of ``split``.
    Patch ``i`` is a random square crop (`plan_crop`) of a random photo, both drawn from
    ``(seed, i)`` alone, so ``patches(items)`` cuts any subset (a batch, a shard, a resume)
    without touching the other items. Photos are kept while they fit in ``CACHE_BYTES``; the
    rest are decoded again for each batch that needs them, so memory is bounded by the photos,
    never by the number of patches. Bad photos are reported in ``source.report`` and skipped.
    """

    def __init__(self, source: ImageSource, size: int = 32, seed: int = 0, split: str = "all",
                 ids: Sequence[str] | None = None):
        if not 2 <= size <= MAX_PATCH_SIZE:
            raise InputError(f"patch size must be in 2..{MAX_PATCH_SIZE}, got {size}")
        self.source, self.size, self.seed = source, size, seed
        self.shapes: dict[str, tuple[int, int]] = {}
        self.sha256: dict[str, str] = {}
        self._cache: dict[str, np.ndarray] = {}
        cached = 0
        for pid in (source.photo_ids(split) if ids is None else ids):
            try:
                image = source.load(pid)
            except InputError as e:
                source.report.add(str(e))
                continue
            self.shapes[pid] = image.shape[:2]
            self.sha256[pid] = image_sha256(image)
            if cached + image.nbytes <= CACHE_BYTES:
                self._cache[pid] = image
                cached += image.nbytes
        self.good = list(self.shapes)
        if not self.good:
            raise InputError(f"{source.spec}: no readable photos in split '{split}'")

    @property
    def fingerprint(self) -> str:
        """Hash of the readable photos (ids and pixels): a different folder is refused."""
        text = "\n".join(f"{pid} {self.sha256[pid]}" for pid in self.good)
        return hashlib.sha256(text.encode()).hexdigest()

    def crop(self, item: int) -> Crop:
        rng = np.random.default_rng([self.seed, item])
        pid = self.good[int(rng.integers(len(self.good)))]
        return plan_crop(rng, pid, self.shapes[pid], self.size)

    def patches(self, items: Iterable[int], progress: Callable[[int], None] | None = None,
                ) -> tuple[np.ndarray, list[Crop]]:
        items = list(items)
        if len(items) * self.size**2 * 3 > MAX_PATCH_BYTES:
            raise InputError(f"{len(items):,} patches of {self.size}x{self.size} need "
                             f"{len(items) * self.size**2 * 3 / 2**30:.1f} GiB; the limit is "
                             f"{MAX_PATCH_BYTES / 2**30:.0f} GiB (ask for fewer or smaller)")
        crops = [self.crop(i) for i in items]
        out = np.empty((len(crops), self.size, self.size, 3), dtype=np.uint8)
        by_photo: dict[str, list[int]] = {}
        for k, c in enumerate(crops):
            by_photo.setdefault(c.photo_id, []).append(k)
        for pid, ks in by_photo.items():
            image = self._cache[pid] if pid in self._cache else self.source.load(pid)
            for k in ks:
                out[k] = cut(image, crops[k], self.size)
            if progress is not None:
                progress(len(ks))
        return out, crops


def sample_patches(source: ImageSource, n: int, size: int = 32, seed: int = 0,
                   split: str = "train", progress: Callable[[int], None] | None = None,
                   ) -> tuple[np.ndarray, list[Crop]]:
    """``n`` random square patches, ``(n, size, size, 3)`` uint8, and where each came from.

    Patch ``i`` depends only on ``(seed, i)`` and the good photos of the split, not on ``n``:
    asking for more patches extends the list.
    """
    if n <= 0:
        raise InputError(f"number of patches must be positive, got {n}")
    return PatchSampler(source, size, seed, split).patches(range(n), progress)


def real_views(source: ImageSource, sides: Sequence[int], per_photo: int, seed: int = 0,
               split: str = "val", progress: Callable[[int, int], None] | None = None,
               ) -> dict[int, list[np.ndarray]]:
    """Real photos as users hand them to a detector, at several sizes: for each side ``S``,
    ``per_photo`` random square crops of every photo of the split whose shorter side is at
    least ``S`` (the crop's side drawn between ``min(2S, shorter side)`` and the shorter
    side), resized to ``SxS`` (Lanczos). What the size calibration of a detector's thresholds
    reads. Crop ``k`` of a photo at side ``S`` depends only on ``(seed, photo, S, k)``."""
    if per_photo <= 0:
        raise InputError(f"crops per photo must be positive, got {per_photo}")
    photos = list(source.photos(split))
    if not photos:
        raise InputError(f"no readable photos in split '{split}' of {source.spec}")
    out: dict[int, list[np.ndarray]] = {int(s): [] for s in sorted(set(sides))}
    total = len(out) * len(photos)
    for side, views in out.items():
        for pid, image in photos:
            short = min(image.shape[:2])
            if short >= side:
                rng = np.random.default_rng(derive_seed(seed, pid, side))
                h, w = image.shape[:2]
                for _ in range(per_photo):
                    c = int(rng.integers(min(2 * side, short), short + 1))
                    y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
                    crop = Image.fromarray(image[y:y + c, x:x + c])
                    view = np.asarray(crop.resize((side, side), Image.Resampling.LANCZOS)
                                      if c != side else crop, dtype=np.uint8)
                    views.append(view)
            if progress is not None:
                progress(1, total)
    return {s: v for s, v in out.items() if v}


def load_patches(spec: str, n: int, size: int = 32, seed: int = 0,
                 split: str = "train") -> np.ndarray:
    """Convenience: patches from a data spec."""
    return sample_patches(ImageSource(spec), n, size, seed, split)[0]


def image_sha256(image: np.ndarray) -> str:
    """Content hash of decoded pixels (shape and bytes), independent of the file format."""
    h = hashlib.sha256()
    h.update(f"{image.shape}{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()
