"""Provenance stamps: every PNG the tool generates carries its record in a PNG text chunk.

The chunk (keyword ``igpt-forensics``, compact ASCII JSON) holds a `generate` image's manifest
record, or a `complete` output's completion record. A record cannot hold the hash of the file
it is written into, so its ``sha256`` is null in the chunk (the manifest has it); what ties the
record to the image is ``pixels_sha256`` (`data.image_sha256` of the decoded pixels), which
survives any lossless re-save and changes with a single pixel. Records hold no timestamps, so
the same seed gives the same bytes. Anyone can write a chunk: a stamp says what a file claims
to be, and whether its pixels are still the ones it claims; the keyed watermark is the part a
forger cannot make.

`check` sorts a file into:

- ``intact``: a stamp, and the pixels hash to its ``pixels_sha256``;
- ``tampered``: a stamp, same size, but the pixels differ (edited, or re-saved lossily in a
  format that kept the chunk);
- ``resized``: a stamp, but the image is no longer the size it records;
- ``missing``: no stamp (stripped, or re-encoded: a JPEG copy keeps no PNG chunk);
- ``invalid``: a chunk that is not a record.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

from .data import image_sha256
from .errors import InputError
from .masks import Box, box_mask, make_mask
from .viz import png_bytes

TEXT_KEY = "igpt-forensics"
COMPLETION_FORMAT = "igpt-forensics-completion-v1"
STATUSES = ("intact", "tampered", "resized", "missing", "invalid")


def record_text(record: dict) -> str:
    """The chunk's text: compact JSON in the record's own key order, ASCII only."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True)


def stamped_png(image: np.ndarray, record: dict) -> bytes:
    """PNG bytes of ``image`` with ``record`` in its text chunk."""
    return png_bytes(image, text={TEXT_KEY: record_text(record)})


def read_stamp(data: bytes, name: str = "<bytes>") -> tuple[str | None, dict | None]:
    """(chunk text or None, record or None) of an image file's bytes; only PNG has chunks."""
    from PIL import Image

    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None, None
    try:
        with Image.open(io.BytesIO(data)) as im:
            text = im.text.get(TEXT_KEY)  # reads chunks after the pixels too
    except Exception:  # noqa: BLE001 - e.g. an oversized chunk: the pixels may still be fine
        return "", None  # "invalid"
    if text is None:
        return None, None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return text, None
    return text, record if isinstance(record, dict) else None


@dataclass(frozen=True)
class Check:
    status: str  # one of STATUSES
    record: dict | None
    detail: str

    def to_dict(self) -> dict:
        r = self.record or {}
        return {"status": self.status, "detail": self.detail,
                "kind": ("dataset" if "form" in r else
                         "completion" if r.get("format") == COMPLETION_FORMAT else None),
                "id": r.get("id"), "label": r.get("label"), "watermark": r.get("watermark")}


def check(image: np.ndarray, text: str | None, record: dict | None,
          is_png: bool = True) -> Check:
    """Compare decoded pixels with the stamp read from their file."""
    if text is None:
        how = "no igpt-forensics text chunk" if is_png else "not a PNG (re-encoded?)"
        return Check("missing", None, how)
    want = record.get("pixels_sha256") if record else None
    size = record.get("size") if record else None
    if not isinstance(want, str) or not (isinstance(size, int)
                                         or (isinstance(size, list) and len(size) == 2)):
        return Check("invalid", None, "text chunk is not an igpt-forensics record")
    h, w = (size, size) if isinstance(size, int) else size
    if image.shape[:2] != (h, w):
        return Check("resized", record, f"recorded {w}x{h}, now {image.shape[1]}x"
                                        f"{image.shape[0]}")
    if image_sha256(image) != want:
        return Check("tampered", record, "pixels differ from the recorded hash")
    return Check("intact", record, "pixels match the recorded hash")


def record_mask(record: dict | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The synthesized pixels a record names (bool ``shape``), or None when it names none
    that can be rebuilt (a real image, a ``file:`` mask, another size)."""
    if not record:
        return None
    try:
        if record.get("format") == COMPLETION_FORMAT:
            bits = np.unpackbits(np.frombuffer(bytes.fromhex(record["mask_bits"]), np.uint8))
            n = shape[0] * shape[1]
            if len(bits) < n:
                return None
            return bits[:n].reshape(shape).astype(bool)
        kind, box, size = record.get("mask_kind"), record.get("box"), record.get("size")
        if record.get("form") != "fake" or not isinstance(kind, str) or shape != (size, size):
            return None
        if kind in ("full", "top-half"):
            return make_mask(kind, size)[0]
        if kind == "box" or kind.startswith("box:"):
            return box_mask(size, Box(*(int(v) for v in box)))
    except (KeyError, TypeError, ValueError, OverflowError, InputError):  # a stamp is a claim
        return None
    return None


def pack_mask(mask: np.ndarray) -> str:
    """Hex of the mask's bits in raster order (a 32x32 mask: 256 characters)."""
    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1)).tobytes().hex()


# The record of a `complete` output, in this order (no timestamps: same seed, same bytes).
COMPLETION_FIELDS = (
    "format",                # COMPLETION_FORMAT
    "tool_version",
    "source",                # the input file's name
    "source_pixels_sha256",  # data.image_sha256 of the input as the model saw it (fitted)
    "size",                  # image side in pixels
    "mask_spec",             # top-half | box | full | box:T,L,H,W | file:PATH
    "mask_bits",             # pack_mask(mask): the pixels of the drawn tokens, raster order
    "generator_sha256",      # sha256 of the checkpoint's model.safetensors
    "family",                # pixel | vq (vq: the decoder re-synthesised every pixel)
    "palette_sha256",        # pixel family: the palette
    "tokenizer_sha256",      # vq family: the tokenizer's weights
    "temperature", "top_k", "top_p",
    "seed",                  # this completion's sampling seed
    "watermark",             # WatermarkKey.describe() (key fingerprint, never the key) or null
    "pixels_sha256",         # data.image_sha256 of this image's pixels
)


def completion_record(**fields) -> dict:
    """A `complete` output's record in `COMPLETION_FIELDS` order."""
    from . import __version__

    unknown = set(fields) - set(COMPLETION_FIELDS)
    if unknown:
        raise ValueError(f"unknown completion record fields {sorted(unknown)}")
    fields = {"format": COMPLETION_FORMAT, "tool_version": __version__, **fields}
    return {k: fields.get(k) for k in COMPLETION_FIELDS}
