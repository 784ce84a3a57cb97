"""Atomic writes, file hashes and checked JSON reads: a killed run never leaves a half-written
file, and a bad file the user names is one clear line."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import InputError

_UMASK = os.umask(0)
os.umask(_UMASK)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    path = Path(path)
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
    ``fmt``, when it is not a JSON object whose "format" is ``fmt``."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(missing) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
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
