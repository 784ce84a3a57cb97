"""Atomic writes, file hashes and checked JSON reads: a killed run never leaves a half-written
file, and a bad file the user names is one clear line."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import InputError

MAX_JSON_BYTES = 256 << 20  # a JSON file (config, detector, dataset.json) at most
_UMASK = os.umask(0)
os.umask(_UMASK)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would hang, /dev/zero never ends
        raise InputError(f"{path}: not a regular file")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _a(what: str) -> str:
    return ("an " if what[:1].lower() in "aeiou" else "a ") + what


def check_regular(path: str | Path, what: str) -> os.stat_result:
    """The stat of ``path`` if it is a regular file (symlinks followed); else one line naming
    it and ``what`` it should be: a FIFO would hang a reader, /dev/zero never ends."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}") from None
    except OSError as e:
        raise InputError(f"{path}: unreadable {what} ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a folder, not {_a(what)}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file (expected {_a(what)})")
    return st


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, checked before reading: a
    missing, unreadable, non-regular (a FIFO would hang, /dev/zero never ends) or oversized
    file is one line naming it and ``what`` it should be."""
    path = Path(path)
    st = check_regular(path, what)
    if st.st_size > limit:
        raise InputError(f"{path}: {st.st_size:,} bytes, more than {_a(what)} may have "
                         f"({limit:,})")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise InputError(f"{path}: unreadable {what} ({e.strerror or e})") from None
    if len(data) > limit:  # it grew while we looked
        raise InputError(f"{path}: more than {_a(what)} may have ({limit:,} bytes)")
    return data


def check_writable(path: str | Path, what: str, folder: bool = False) -> Path:
    """``path`` if a file (``folder``: a folder) can be written there: not an existing folder
    (a file), and the nearest existing path above it a folder; else one line naming it, so
    that a command can refuse an output before its work rather than after."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise InputError(f"{path}: " + ("exists and is not a folder" if folder else
                                        "is a folder") + f" (the {what})")
    for parent in path.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise InputError(f"{path}: cannot write the {what} there ({parent} is not a "
                                 "folder)")
            break
    return path


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    path = check_writable(path, "file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path, missing: str, unreadable: str, fmt: str | None = None) -> Any:
    """The JSON in ``path``, or one clear line: ``missing`` when there is no such file,
    ``unreadable`` (followed by the reason) when it cannot be read or parsed, and, with
    ``fmt``, when it is not a JSON object whose "format" is ``fmt``. Read with a bound: a
    FIFO, a device or an oversized file is refused before it is read."""
    if not os.path.lexists(path):
        raise InputError(missing)
    data = read_bounded(path, MAX_JSON_BYTES, "JSON file")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:  # ValueError: also a 5000-digit number
        raise InputError(f"{unreadable} ({e})") from None
    if fmt is not None and (not isinstance(doc, dict) or doc.get("format") != fmt):
        raise InputError(f"{path}: not a {fmt} file")
    return doc


# ----------------------------------------------------------------------------------------
# The one path guard: every path read from a manifest, a study file, a photo list or a record
# stays inside its root.

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_relative(rel: Any, where: str) -> str:
    """``rel`` if it is a relative POSIX path with no ``..``, no backslash and no NUL; else
    one line naming ``where``. A pure string check, for records read before any file is."""
    if (not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel
            or "\0" in rel or ".." in PurePosixPath(rel).parts
            or re.match(r"[A-Za-z]:", rel)):
        raise InputError(f"{where}: path {rel!r} must be relative, inside its folder, "
                         "without '..'")
    return rel


def inside(root: str | Path, rel: Any, where: str) -> Path:
    """``root / rel`` resolved (symlinks followed), refused unless it stays inside ``root``."""
    root = Path(root).resolve()
    target = (root / check_relative(rel, where)).resolve()
    if not target.is_relative_to(root):
        raise InputError(f"{where}: path {rel!r} leads outside {root}")
    return target


def check_plain_name(value: Any, where: str, what: str = "name") -> str:
    """A name used as a file or folder name: letters, digits, '.', '_', '-'; no separators."""
    if not isinstance(value, str) or not _PLAIN.fullmatch(value) or value in (".", ".."):
        raise InputError(f"{where}: {what} {value!r} must be a plain name (letters, digits, "
                         "'.', '_', '-')")
    return value


# ----------------------------------------------------------------------------------------
# SHA256SUMS: what a packaged folder (a bundled model, a calibrated detector) holds

SUMS = "SHA256SUMS"


def write_sha256sums(folder: str | Path) -> Path:
    """``folder/SHA256SUMS`` over every regular, non-hidden file of the folder (sorted)."""
    folder = Path(folder)
    lines = "".join(f"{sha256_file(f)}  {f.name}\n" for f in sorted(folder.iterdir())
                    if f.is_file() and f.name != SUMS and not f.name.startswith("."))
    atomic_write_text(folder / SUMS, lines)
    return folder / SUMS


def check_sha256sums(folder: str | Path) -> bool:
    """Check every file ``folder/SHA256SUMS`` lists; False when there is no such file.

    A listed file that is missing or altered is one line naming it (a tampered package)."""
    folder = Path(folder)
    sums = folder / SUMS
    if not sums.is_file():
        return False
    try:
        text = sums.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{sums}: unreadable ({e})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not m:
            raise InputError(f"{sums}:{n}: not a 'sha256  name' line")
        name = check_plain_name(m.group(2), f"{sums}:{n}", "file name")
        try:
            actual = sha256_file(folder / name)
        except FileNotFoundError:
            raise InputError(f"{folder / name}: missing (listed in {SUMS})") from None
        if actual != m.group(1):
            raise InputError(f"{folder / name}: sha256 does not match {SUMS} (file altered?)")
    return True


# ----------------------------------------------------------------------------------------
# Replacing a whole folder: a kill at any moment leaves the old folder or the new one


def _sides(out: Path) -> tuple[Path, Path]:
    return out.parent / f".{out.name}.new", out.parent / f".{out.name}.old"


def recover_folder(out: str | Path) -> None:
    """Finish or undo a `write_folder` that a kill interrupted: a complete new folder (its
    SHA256SUMS is written last) takes the place of a missing one, else the old one returns;
    leftovers are removed once ``out`` is whole."""
    out = Path(out)
    new, old = _sides(out)
    if not out.exists():
        if (new / SUMS).is_file():
            os.replace(new, out)
        elif old.is_dir():
            os.replace(old, out)
    if out.exists():
        for side in (new, old):
            if side.exists():
                shutil.rmtree(side, ignore_errors=True)


def write_folder(out: str | Path, fill: Callable[[Path], None], marker: str) -> Path:
    """Write a folder anew: ``fill(tmp)`` writes the files into a fresh sibling, SHA256SUMS
    seals it, then it is swapped in for ``out``. An existing ``out`` is replaced only when it
    holds ``marker`` (what this kind of folder always holds) or nothing: a folder of other
    files is refused, never deleted."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / marker).exists())):
        raise InputError(f"{out}: exists and is not a folder of this kind (no {marker}); "
                         "choose a new folder")
    new, old = _sides(out)
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    try:
        fill(new)
        write_sha256sums(new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(new, out)  # between the two renames recover_folder puts either side back
    shutil.rmtree(old, ignore_errors=True)
    return out
