"""``verify``: is a file what its stamp says, does it carry our keyed watermark, and what
does its C2PA manifest say (valid, invalid: modified after signing, or absent)?

Needs the key (for the watermark) and the palette, never the model. The watermark scheme's
settings (gamma, color groups, period) come from the file's stamp when it records them, else
from the defaults; a ``gamma`` given by the caller wins over both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import credentials, stamp
from . import watermark as wm
from .data import MAX_FILE_BYTES, load_image
from .errors import InputError
from .files import read_bounded
from .palette import Palette


@dataclass
class FileReport:
    path: str
    shape: tuple[int, int]
    stamp: stamp.Check
    verdict: wm.Verdict | None  # None without a key
    scheme: dict | None
    c2pa: credentials.Report = field(default_factory=lambda: credentials.Report("absent"))
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"path": self.path, "height": self.shape[0], "width": self.shape[1],
                "metadata": self.stamp.to_dict(), "c2pa": self.c2pa.to_dict(),
                "watermark": None if self.verdict is None else self.verdict.to_dict(),
                "scheme": self.scheme, "notes": self.notes}


MAX_SCHEMES = 8  # watermark settings whose tables a Verifier keeps (a server's memory)


class Verifier:
    """Checks files one by one with one key and one palette (schemes built once each)."""

    def __init__(self, palette: Palette, key: bytes | None = None, gamma: float | None = None,
                 alpha: float = wm.ALPHA, c2pa_trust: str | None = None):
        self.palette, self.key, self.gamma, self.alpha = palette, key, gamma, alpha
        self.c2pa_trust = c2pa_trust  # PEM trust anchors for C2PA signers (None: none)
        self._schemes: dict[tuple, wm.WatermarkKey] = {}

    def scheme(self, recorded: dict | None = None) -> wm.WatermarkKey:
        d = {"gamma": wm.DEFAULT_GAMMA, "delta": wm.DEFAULT_DELTA,
             "token_groups": wm.DEFAULT_TOKEN_GROUPS,
             "context_groups": wm.DEFAULT_CONTEXT_GROUPS, "period": wm.DEFAULT_PERIOD}
        if isinstance(recorded, dict) and recorded.get("scheme") == wm.SCHEME:
            d.update({k: recorded[k] for k in d if k in recorded})
        if self.gamma is not None:
            d["gamma"] = self.gamma
        k = tuple(d[n] for n in ("gamma", "token_groups", "context_groups", "period"))
        if k not in self._schemes:
            if len(self._schemes) >= MAX_SCHEMES:  # uploads choose the settings: keep a few
                self._schemes.pop(next(iter(self._schemes)))
            try:
                self._schemes[k] = wm.WatermarkKey.from_description(self.key, self.palette, d)
            except (TypeError, KeyError):
                raise InputError(f"recorded watermark settings are not valid: {d}") from None
        return self._schemes[k]

    def file(self, path: str | Path) -> FileReport:
        """Check one file; an unreadable image raises `InputError` (one line)."""
        path = Path(path)
        data = read_bounded(path, MAX_FILE_BYTES, "image file")
        return self.data(data, str(path))

    def data(self, data: bytes, name: str, image: np.ndarray | None = None) -> FileReport:
        """Check one file's bytes (an upload); ``image``: its pixels when the caller has
        decoded them already. An undecodable image raises `InputError`."""
        if image is None:
            image = load_image(data, name=name)
        text, record = stamp.read_stamp(data, name)
        check = stamp.check(image, text, record, is_png=data.startswith(b"\x89PNG"))
        notes: list[str] = []
        recorded = (check.record or {}).get("watermark")
        if check.record is not None:
            pal = check.record.get("palette_sha256")
            if isinstance(pal, str) and pal != self.palette.sha256:
                notes.append(f"recorded palette {pal[:12]} is not the palette in use "
                             f"{self.palette.sha256[:12]}: tokens may not match")
        verdict, scheme = None, None
        if self.key is not None:
            try:
                key = self.scheme(recorded)
            except InputError:  # a stamp is only a claim: fall back to the defaults
                notes.append("stamp's watermark settings are not valid; defaults used")
                key = self.scheme(None)
            scheme = key.describe()
            del scheme["delta"]  # a setting of generation, not of the test
            if isinstance(recorded, dict) and recorded.get("key_sha256") not in (
                    None, key.fingerprint):
                notes.append(f"stamp records watermark key {str(recorded['key_sha256'])[:12]}, "
                             f"not this key ({key.fingerprint[:12]})")
            mask = None
            if check.status in ("intact", "tampered"):
                mask = stamp.record_mask(check.record, image.shape[:2])
                if mask is not None and not mask.any():
                    mask = None
            verdict = key.verify(image, mask, self.alpha)
        c2pa = credentials.read(data, trust_pem=self.c2pa_trust)
        return FileReport(name, image.shape[:2], check, verdict, scheme, c2pa, notes)

