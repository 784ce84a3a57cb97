"""Default assets shipped in the package: produced by the project's own commands (see
README), never downloaded. Each asset folder holds a ``SHA256SUMS`` file that a test checks."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).parent
# The bundled generators, by the names ``--model`` and study files take (besides folders).
GENERATOR_NAMES = {"pixel-default": ASSETS / "default-generator",
                   "vq-default": ASSETS / "vq-generator"}


def bundled() -> list[tuple[str, Path, int]]:
    """(name, folder, total bytes) for each bundled asset folder."""
    out = []
    for d in sorted(p for p in ASSETS.iterdir() if p.is_dir() and not p.name.startswith("_")):
        out.append((d.name, d, sum(f.stat().st_size for f in d.rglob("*") if f.is_file())))
    return out
