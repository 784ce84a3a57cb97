"""The web app: one page and a JSON API, on FastAPI (served by uvicorn in ``serve``).

Routes:

- ``GET /``: the page: drop or choose an image, pick a detector, see the score against the
  threshold, the verdict, the heat map over the image with its color bar, the region boxes and
  the provenance checks.
- ``GET /api/detectors``: the detectors this server offers. Whoever starts the server names
  them (shipped names or saved detector folders); a client only picks one by name, never
  sends a path.
- ``POST /score?detector=NAME``: the request body is the image file itself (``Content-Type:
  image/png``, ``image/jpeg``, ...), e.g. ``curl --data-binary @x.png -H 'Content-Type:
  image/png' http://127.0.0.1:8000/score``. The answer is JSON: the `detectors.base.judge`
  row (score, verdict, region share, boxes), the detector's threshold and target false-positive
  rate, the overlay as a PNG data URL, and the stamp / watermark / C2PA checks of `verify`.
- ``GET /api/examples/NAME``: the bundled example images (a real photo, a completion by the
  default generator), so that a first visit has something to score.

Every bad request is a 4xx answer with one line, ``{"error": "..."}``: a body over the upload
limit (413, refused while it streams in, before it is all read), a type that is not an image
(415), bytes that do not decode or an image over the pixel limit (422 / 413), an unknown
detector (404).
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException  # also the router's 404 and 405

from igpt_forensics.detectors.base import judge, open_detector, ready_detectors

from .. import credentials
from ..data import MAX_SCORE_PIXELS, load_image
from ..errors import InputError
from ..verify import Verifier
from ..viz import HEAT_COLORMAP, heat_overlay, png_bytes

DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff", "image/gif")
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "examples"
# name -> (file in EXAMPLES_DIR, what it is); made by `make web-examples`
EXAMPLES = {
    "photo": ("photo.png", "a real photo (flower, a test photo of the bundled generators)"),
    "completion": ("completion.png", "the bottom half completed by the bundled pixel "
                                     "generator (stamped)"),
}
PAGE = Path(__file__).with_name("page.html")
VERDICT_RULE = ("synthetic: the score is above the threshold; region: it is not, but a "
                "window of the map is above the region threshold; real: neither")


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class _Detectors:
    """The detectors on offer, opened on first use and kept; one scores at a time (torch
    already uses every core for one image)."""

    specs: dict[str, str]
    device: str | None = None
    opened: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str):
        if name not in self.specs:
            raise _Refused(404, f"unknown detector '{name}'; this server offers: "
                                f"{', '.join(self.specs)}")
        if name not in self.opened:
            try:
                self.opened[name] = open_detector(self.specs[name], device=self.device)
            except InputError as e:  # the server's setup, not the client's request
                raise _Refused(500, f"detector '{name}' could not be opened: {e}") from None
        return self.opened[name]


def _summary(name: str, det) -> dict:
    trained = (getattr(det, "fit_info_", None) or {}).get("trained_on")
    return {"name": name, "kind": det.describe()["kind"], "threshold": float(det.threshold_),
            "target_fpr": float(getattr(det, "target_fpr", 0.01)),
            "has_map": bool(getattr(det, "has_pixel_maps", True)),
            # the cnn's maps: each pixel against its image's median (0.5), where, not whether
            "map_relative": getattr(det, "maps", None) == "relative",
            "trained_on": sorted({t.get("dataset", "?") for t in trained}) if trained else None}


def create_app(detectors: dict[str, str] | None = None, *,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               max_pixels: int = MAX_SCORE_PIXELS, verifier: Verifier | None = None,
               device: str | None = None, preload: bool = False) -> FastAPI:
    """The app. ``detectors``: shown name -> what ``score --detector`` takes (a shipped name
    or a saved detector folder); default: the shipped ones, the first is the page's default.
    ``verifier``: checks stamps (and the watermark, when it holds a key); default: stamps
    only, with the bundled generator's palette when it is installed. ``preload`` opens every
    detector now rather than on its first request."""
    specs = dict(detectors) if detectors else {n: n for n in ready_detectors()}
    if not specs:
        raise InputError("no detector to serve: none ships ready and none was given")
    if max_upload_bytes < 1 or max_pixels < 1:
        raise InputError("upload and pixel limits must be positive")
    pool = _Detectors(specs, device)
    if preload:
        for name in specs:
            pool.get(name)
    if verifier is None:
        try:
            from igpt_forensics.generators.checkpoint import generator_palette

            verifier = Verifier(generator_palette())
        except InputError:
            verifier = None
    app = FastAPI(title="igpt-forensics", docs_url=None, redoc_url=None)

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"error": f"bad request: {where} {first.get('msg', '')}".strip()},
                            status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/detectors")
    def list_detectors() -> dict:
        with pool.lock:
            rows = [_summary(name, pool.get(name)) for name in specs]
        return {"detectors": rows, "default": next(iter(specs)), "verdict_rule": VERDICT_RULE,
                "score": "higher = more likely synthetic", "colormap": HEAT_COLORMAP,
                "examples": {k: v[1] for k, v in EXAMPLES.items()
                             if (EXAMPLES_DIR / v[0]).is_file()},
                "limits": {"max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels,
                           "types": list(IMAGE_TYPES)}}

    @app.get("/api/examples/{name}")
    def example(name: str) -> Response:
        if name not in EXAMPLES or not (EXAMPLES_DIR / EXAMPLES[name][0]).is_file():
            raise _Refused(404, f"no example '{name}'; examples: {', '.join(EXAMPLES)}")
        return Response((EXAMPLES_DIR / EXAMPLES[name][0]).read_bytes(),
                        media_type="image/png")

    @app.post("/score")
    async def score(request: Request, detector: str | None = None) -> dict:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in IMAGE_TYPES:
            raise _Refused(415, f"send the image file itself as the body with an image "
                                f"type ({', '.join(IMAGE_TYPES)}), not '{kind or 'none'}'")
        limit = f"the upload limit is {max_upload_bytes:,} bytes"
        try:
            declared = int(request.headers.get("content-length", "0"))
        except ValueError:
            raise _Refused(400, "Content-Length is not a number") from None
        if declared > max_upload_bytes:
            raise _Refused(413, f"file too large ({declared:,} bytes); {limit}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_upload_bytes:
                raise _Refused(413, f"file too large; {limit}")
        if not body:
            raise _Refused(400, "empty body: send the image file")
        name = detector or next(iter(specs))
        return await run_in_threadpool(_judge, bytes(body), name)

    def _judge(data: bytes, name: str) -> dict:
        try:
            image = load_image(data, name="upload", max_pixels=max_pixels)
        except InputError as e:
            raise _Refused(413 if "too large" in str(e) else 422, str(e)) from None
        t0 = time.perf_counter()
        with pool.lock:
            det = pool.get(name)
            rows, loc = judge(det, [image])
            info = _summary(name, det)
        seconds = time.perf_counter() - t0
        row = rows[0]
        overlay = None
        if info["has_map"]:
            heat = heat_overlay(image, loc.maps[0])
            overlay = "data:image/png;base64," + base64.b64encode(png_bytes(heat)).decode()
        provenance, watermark, c2pa = None, None, None
        if verifier is not None:
            report = verifier.data(data, "upload", image=image)
            provenance = report.stamp.to_dict()
            watermark = None if report.verdict is None else report.verdict.to_dict()
            c2pa = report.c2pa
        if c2pa is None:
            c2pa = credentials.read(data)
        return {"width": int(image.shape[1]), "height": int(image.shape[0]),
                "detector": info, **row, "overlay": overlay, "provenance": provenance,
                "watermark": watermark,
                "c2pa": {**c2pa.to_dict(), "detail": c2pa.line()},
                "score_rule": "higher = more likely synthetic", "verdict_rule": VERDICT_RULE,
                "seconds": round(seconds, 3)}

    return app
