"""Top-level commands: info."""

from __future__ import annotations

import platform
from importlib import metadata

import typer
from rich.table import Table

from .. import __version__, assets
from .common import console, user_errors


@user_errors
def info() -> None:
    """Versions, the compute device, and the default assets bundled with the package."""
    from ..device import describe

    table = Table(title=f"igpt-forensics {__version__}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("python", platform.python_version())
    for pkg in ("torch", "timm", "numpy", "scikit-learn", "pillow", "typer", "rich"):
        try:
            table.add_row(pkg, metadata.version(pkg))
        except metadata.PackageNotFoundError:
            table.add_row(pkg, "[red]not installed[/]")
    for k, v in describe().items():
        table.add_row(k, v)
    for name, path, size in assets.bundled():
        table.add_row(f"asset: {name}", f"{path} ({size / 1e6:.2f} MB)")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(info)
