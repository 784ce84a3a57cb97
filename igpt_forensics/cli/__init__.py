"""The ``igpt-forensics`` command line: thin Typer commands that parse, call one function of
the packages, and print with Rich. No logic here that a test would want to call directly."""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from .common import DEBUG

# Each command, and the module of this package that registers it (``register(app)``). A
# module is imported only when one of its commands runs or shows its own help: the root's
# ``--help`` reads the commands' help from the modules' source and imports no torch.
COMMANDS = {
    "info": "core_cmds",
    "export-model": "generator_cmds", "train-generator": "generator_cmds",
    "train-tokenizer": "generator_cmds", "complete": "generator_cmds",
    "nll": "generator_cmds", "import-hf": "generator_cmds",
    "generate": "dataset_cmds", "dataset": "dataset_cmds",
    "score": "score_cmds", "calibrate": "score_cmds",
    "bench": "bench_cmds", "demo": "bench_cmds",
    "train-detector": "train_detector_cmds",
    "verify": "verify_cmds", "serve": "serve_cmds",
    "palette": "palette_cmds", "data": "data_cmds",
}


@cache
def _loaded(module: str) -> click.Group:
    """The click commands one module registers (imports it)."""
    sub = typer.Typer()
    importlib.import_module(f"{__name__}.{module}").register(sub)
    sub.callback()(lambda: None)  # a group even when the module registers one command
    group = typer.main.get_command(sub)
    for command in group.commands.values():
        _plain_flags(command)
    return group


def _plain_flags(command: click.Command) -> None:
    """Flags show as ``--debug``, not ``--debug <bool>``: a flag takes no value."""
    for param in command.get_params(click.Context(command)):  # with --help
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)


@cache
def _source_help(module: str) -> dict[str, str]:
    """command -> its help text, read from a module's source without importing it: the
    docstring of the function ``register`` passes to ``app.command(...)``, or the ``help``
    of the Typer app it passes to ``add_typer``."""
    tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text())
    docs = {n.name: ast.get_docstring(n) or "" for n in tree.body
            if isinstance(n, ast.FunctionDef)}
    apps = {n.targets[0].id: next((k.value.value for k in n.value.keywords
                                   if k.arg == "help"), "")
            for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
            and isinstance(n.targets[0], ast.Name) and ast.unparse(n.value.func) == "typer.Typer"}
    out = {}
    register = next(n for n in tree.body if isinstance(n, ast.FunctionDef)
                    and n.name == "register")
    for call in ast.walk(register):
        if not isinstance(call, ast.Call):
            continue
        f = call.func
        if isinstance(f, ast.Attribute) and f.attr == "add_typer":  # root.add_typer(app, ...)
            name = next(k.value.value for k in call.keywords if k.arg == "name")
            out[name] = apps.get(call.args[0].id, "")
        elif (isinstance(f, ast.Call) and isinstance(f.func, ast.Attribute)
              and f.func.attr == "command"):  # app.command("name")(function)
            fn = call.args[0].id
            name = f.args[0].value if f.args else fn.replace("_", "-")
            out[name] = docs.get(fn, "")
    return out


class LazyGroup(TyperGroup):
    """The root group: commands come from their modules on first use (see COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        if getattr(ctx, "_listing_help", False):  # the root's help: name and text only
            return click.Command(name, help=_source_help(COMMANDS[name]).get(name, ""))
        return _loaded(COMMANDS[name]).commands.get(name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _plain_flags(self)
        ctx._listing_help = True
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx._listing_help = False


app = typer.Typer(
    cls=LazyGroup,
    name="igpt-forensics",
    help="Synthetic-image provenance and detection with an iGPT-style pixel-GPT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"igpt-forensics {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit (igpt-forensics info: versions of everything).")
    ] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show full tracebacks instead of one-line errors.")] = False,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, help="CPU threads for torch (default: one per free core, measured "
        "at start; or $IGPT_FORENSICS_THREADS). May also follow the command.")] = None,
) -> None:
    DEBUG["on"] = debug
    from ..device import default_threads, set_threads

    set_threads(threads if threads is not None else default_threads())


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
