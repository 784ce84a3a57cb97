"""``serve``: the local web page for suspect images (`igpt_forensics.web`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from ..data import MAX_SCORE_PIXELS
from ..errors import InputError
from .common import console, user_errors, warn


def _named(spec: str) -> tuple[str, str]:
    """``NAME=DETECTOR`` or ``DETECTOR`` (its name is then the folder's name or itself)."""
    if "=" in spec:
        name, _, what = spec.partition("=")
        if not name or not what:
            raise InputError(f"--detector {spec}: expected NAME=DETECTOR")
        return name, what
    return (Path(spec).name or spec) if Path(spec).is_dir() else spec, spec


@user_errors
def serve(
    detector: Annotated[list[str] | None, typer.Option(
        help="A detector to offer (repeat): a shipped name, a saved detector folder, or "
        "NAME=FOLDER. The first is the page's default. Default: every shipped detector.")
                        ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on. The default answers this "
                                      "machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(
        min=0.001, help="Largest upload accepted, in MiB.")] = 20.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest image accepted, in pixels."
                                            )] = MAX_SCORE_PIXELS,
    watermark_key_file: Annotated[Path | None, typer.Option(
        "--watermark-key-file", help="Also test uploads for the keyed watermark of this "
        "key (the key never leaves the server).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, mps.")] = None,
) -> None:
    """A local web page: drop an image, see the verdict, the heat map and the region boxes,
    and the provenance checks; POST /score is its JSON API for scripts:
    curl --data-binary @x.png -H 'Content-Type: image/png' 'http://127.0.0.1:8000/score?detector=cnn'
    (the body is the image file; GET /api/detectors lists the names)."""
    try:
        import uvicorn

        from ..web import create_app
    except ImportError as e:
        raise InputError(f"serve needs FastAPI and uvicorn ({e.name} is missing): pip install "
                         "'igpt-forensics[web]'") from None
    from ..watermark import read_key

    specs = dict(_named(s) for s in detector) if detector else None
    verifier = None
    if watermark_key_file is not None:
        from igpt_forensics.generators.checkpoint import generator_palette

        from ..verify import Verifier

        verifier = Verifier(generator_palette(), read_key(watermark_key_file, warn))
    try:
        public = not ipaddress.ip_address(host).is_loopback
    except ValueError:
        public = host != "localhost"
    if public:
        warn(f"listening on {host}: other machines can reach this page, and it has no "
             "login; every upload is scored on this machine")
    with console.status("opening the detectors"):
        app = create_app(specs, max_upload_bytes=int(max_upload_mb * 2**20),
                         max_pixels=max_pixels, verifier=verifier, device=device,
                         preload=True)
    console.print(f"igpt-forensics page: http://{host}:{port}/  (Ctrl+C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command()(serve)
