"""Atomic writes, file hashes and checked JSON reads: a killed run never leaves a half-written
file, and a bad file the user names is one clear line."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
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
