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
        "--threads", min=1, help="CPU threads for torch (default: one per free core, measured "
        "at start; or $IGPT_FORENSICS_THREADS). May also follow the command.")] = None,
) -> None:
    DEBUG["on"] = debug
    import torch

    from ..device import default_threads

    torch.set_num_threads(threads if threads is not None else default_threads())


core_cmds.register(app)
generator_cmds.register(app)
dataset_cmds.register(app)
score_cmds.register(app)
bench_cmds.register(app)
train_detector_cmds.register(app)
verify_cmds.register(app)
app.add_typer(palette_cmds.app, name="palette")
app.add_typer(data_cmds.app, name="data")


GLOBAL_OPTIONS = {"--threads": 1, "--debug": 0}  # option -> number of values it takes


def hoist_global_options(argv: list[str]) -> list[str]:
    """``score x.png --threads 1`` means ``--threads 1 score x.png``: the global options are
    accepted anywhere and moved before the command, where Typer reads them."""
    front, rest, i = [], [], 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        if name in GLOBAL_OPTIONS and argv[i] != "--":
            takes = 0 if "=" in argv[i] else GLOBAL_OPTIONS[name]
            front.extend(argv[i:i + 1 + takes])
            i += 1 + takes
        elif argv[i] == "--":
            rest.extend(argv[i:])
            break
        else:
            rest.append(argv[i])
            i += 1
    return front + rest


def main() -> None:
    import sys

    app(args=hoist_global_options(sys.argv[1:]), prog_name="igpt-forensics")
