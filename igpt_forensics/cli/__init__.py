"""The ``igpt-forensics`` command line: thin Typer commands that parse, call one function of
the packages, and print with Rich. No logic here that a test would want to call directly."""

from __future__ import annotations

from typing import Annotated

import typer

from . import (
    bench_cmds,
    core_cmds,
    data_cmds,
    dataset_cmds,
    generator_cmds,
    palette_cmds,
    score_cmds,
    train_detector_cmds,
    verify_cmds,
)
from .common import DEBUG

app = typer.Typer(
    name="igpt-forensics",
    help="Synthetic-image provenance and detection with an iGPT-style pixel-GPT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks instead of one-line errors.")] = False,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, help="CPU threads for torch (default: torch's choice). Use 1 on a "
        "machine shared with other jobs, where threads wait on each other.")] = None,
) -> None:
    DEBUG["on"] = debug
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


core_cmds.register(app)
generator_cmds.register(app)
dataset_cmds.register(app)
score_cmds.register(app)
bench_cmds.register(app)
train_detector_cmds.register(app)
verify_cmds.register(app)
app.add_typer(palette_cmds.app, name="palette")
app.add_typer(data_cmds.app, name="data")


def main() -> None:
    app()
