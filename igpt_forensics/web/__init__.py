"""``serve``: a local web page where someone with a suspect image drops it and sees the
verdict and where the synthesized region is, and the JSON API behind it (`create_app`).

Like the CLI, this is an application layer: it uses the detectors and the core and nothing
imports it but the ``serve`` command.
"""

from .app import DEFAULT_MAX_UPLOAD_BYTES, EXAMPLES, create_app

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "EXAMPLES", "create_app"]
