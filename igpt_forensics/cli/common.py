"""What every command shares: consoles, one-line errors, progress bars."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ..errors import InputError

DataOpt = Annotated[list[str] | None, typer.Option(
    "--data", help="Real photos: 'builtin', a folder, an .npz or a photo list (.txt/.tsv); "
    "repeat to join several. Default: builtin.")]


def data_spec(values: list[str] | None) -> str | list[str]:
    """The ``--data`` values as the library takes them: one spec, or a list of several."""
    if not values:
        return "builtin"
    return values[0] if len(values) == 1 else list(values)


console = Console()
err_console = Console(stderr=True)
DEBUG = {"on": False}  # set by the global --debug option

F = TypeVar("F", bound=Callable)


def fail(message: str) -> typer.Exit:
    """Print one red line and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


# The sampling options of `complete` and `generate` (defaults: COMPLETION_SAMPLING).
TemperatureOpt = Annotated[float, typer.Option(help="Sampling temperature.")]
TopKOpt = Annotated[int, typer.Option(help="Keep the k likeliest colors (0 = off).")]
TopPOpt = Annotated[float, typer.Option(help="Nucleus sampling mass (1 = off).")]


JsonOpt = Annotated[Path | None, typer.Option(
    "--json", help="Write the results as JSON to this file, or '-' for standard output "
    "(then nothing else is printed there).")]


def emit_json(dest: Path | None, doc) -> bool:
    """The one meaning of ``--json``: a file (written atomically), or ``-`` for stdout.
    Returns True when the JSON went to stdout, so the caller prints no table there."""
    import json

    if dest is None:
        return False
    text = json.dumps(doc, indent=1)
    if str(dest) == "-":
        typer.echo(text)
        return True
    from ..files import atomic_write_text

    atomic_write_text(dest, text + "\n")
    return False


def warn(message: str) -> None:
    """One yellow line on stderr: something works but is likely not what the user wants."""
    err_console.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)


def user_errors(fn: F) -> F:
    """A user's mistake (bad file, bad setting) is one red line and exit 1, not a traceback.

    ``--debug`` shows the traceback instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (InputError, ValueError, OSError) as e:
            if DEBUG["on"]:
                raise
            text = " ".join(str(e).split()) or type(e).__name__
            raise fail(text) from None

    return wrapper  # type: ignore[return-value]


class RateColumn(ProgressColumn):
    """Items per second, e.g. ``412.3 images/s``."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", self.unit)  # a task may count something else
        return Text(f"{speed:,.1f} {unit}/s" if speed else f"- {unit}/s",
                    style="cyan")


def progress_bar(unit: str = "it", fields: tuple[str, ...] = (), quiet: bool = False
                 ) -> Progress:
    """A Rich progress bar with a rate in ``unit``/s; ``fields`` are live task fields
    (pass them to ``add_task`` and ``update``), e.g. ``("loss",)``. Off a terminal (a log
    file, a pipe, CI) a live bar shows nothing until it ends: there the progress is plain
    lines instead (`PlainProgress`). ``quiet``: no display at all (the other ranks of a
    torchrun launch, whose bars would overwrite rank 0's)."""
    if quiet:
        return Progress(console=err_console, disable=True)
    if not err_console.is_terminal:
        return PlainProgress(unit, fields)
    extra = [TextColumn(f"{{task.fields[{k}]}}") for k in fields]
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        *extra,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


class PlainProgress(Progress):
    """A progress bar for logs: no live display; one line per task every ``every`` seconds
    and when it finishes, e.g. ``dataset t1: 120/900 images (13%) 4.1 images/s, 0:00:29
    elapsed, 0:03:10 left``."""

    def __init__(self, unit: str = "it", fields: tuple[str, ...] = (), every: float = 30.0,
                 get_time: Callable[[], float] | None = None):
        super().__init__(console=err_console, disable=True, get_time=get_time)
        self.unit, self.fields, self.every = unit, fields, every
        self._printed: dict = {}  # task id -> time of its last line

    def add_task(self, *args, **kwargs):
        task_id = super().add_task(*args, **kwargs)
        self._printed[task_id] = self.get_time()  # the first line comes after `every`
        return task_id

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._maybe_print(task_id)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_print(task_id)

    def stop(self) -> None:
        """A task that ends short of its total (early stopping, an error) still gets its
        last line."""
        super().stop()
        for task_id, last in self._printed.items():
            task = self._tasks[task_id]
            if last is not None and task.completed and task.visible:
                self._printed[task_id] = None
                self.console.print(self.line(task), soft_wrap=True,
                                   markup=False, highlight=False)

    def _maybe_print(self, task_id) -> None:
        task = self._tasks[task_id]
        if not task.visible:  # as the live bar: a task shown only from some size on
            return
        done = task.total is not None and task.completed >= task.total
        now = self.get_time()
        if self._printed.get(task_id) is None or not (
                done or now - self._printed[task_id] >= self.every):
            return
        self._printed[task_id] = None if done else now
        self.console.print(self.line(task), soft_wrap=True, markup=False, highlight=False)

    def line(self, task) -> str:
        unit = task.fields.get("unit", self.unit)
        total = f"/{task.total:.0f}" if task.total is not None else ""
        pct = f" ({100 * task.completed / task.total:.0f}%)" if task.total else ""
        speed = task.finished_speed or task.speed
        rate = f" {speed:,.1f} {unit}/s," if speed else ""
        elapsed = _clock(task.elapsed or 0.0)
        left = task.time_remaining
        rest = f", {_clock(left)} left" if left is not None and task.completed < (
            task.total or 0) else ""
        extra = " ".join(str(task.fields[k]) for k in self.fields if task.fields.get(k))
        return (f"{task.description}: {task.completed:.0f}{total} {unit}{pct}{rate} "
                f"{elapsed} elapsed{rest}" + (f"  {extra}" if extra else ""))


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def counted(n: int, noun: str) -> str:
    """``1 image``, ``2 images``: a count with its noun in the right number."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def report_skipped(lines: list[str], what: str = "file") -> None:
    """Batch commands end by listing what they skipped (nothing is dropped silently)."""
    if not lines:
        return
    err_console.print(f"[yellow]skipped {counted(len(lines), what)}:[/]")
    for line in lines:
        err_console.print(f"  [yellow]-[/] {escape(line)}", soft_wrap=True)


class DoneBar:
    """Feeds ``progress(done, total)`` callbacks into a Rich bar (a resumed run starts the
    bar at what is already done, so the rate counts only new images)."""

    def __init__(self, bar, description: str):
        self.bar, self.description, self.task = bar, description, None

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.bar.add_task(self.description, total=total, completed=done)
        else:
            self.bar.update(self.task, completed=done, total=total)


# -- watermark options, shared by generate and complete -------------------------------------

WatermarkKeyOpt = Annotated[Path | None, typer.Option(
    "--watermark-key-file", help="Secret key file (any bytes): embed the keyed green-list "
    "watermark in every synthesized pixel. Records keep its sha256, never the key.")]
WatermarkGammaOpt = Annotated[float, typer.Option(
    "--watermark-gamma", help="Green fraction of the colors in each context.")]
WatermarkDeltaOpt = Annotated[float, typer.Option(
    "--watermark-delta", help="Logit bias added to green colors (before temperature).")]


C2paCertOpt = Annotated[Path | None, typer.Option(
    "--c2pa-cert", help="Also sign each synthesized image with a C2PA manifest: this PEM "
    "certificate chain (signer first). Needs --c2pa-key and the c2pa extra.")]
C2paKeyOpt = Annotated[Path | None, typer.Option(
    "--c2pa-key", help="The PEM private key of --c2pa-cert.")]


def c2pa_credentials(cert: Path | None, key: Path | None):
    """The `Credentials` of --c2pa-cert/--c2pa-key, or None without them."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise InputError("C2PA signing needs both --c2pa-cert and --c2pa-key")
    from ..credentials import Credentials

    return Credentials.from_files(cert, key)


def watermark_key(path: Path | None, palette, gamma: float, delta: float):
    """The `WatermarkKey` of a key file for this palette, or None without a file."""
    if path is None:
        return None
    from ..watermark import WatermarkKey, read_key

    return WatermarkKey(read_key(path, warn), palette, gamma, delta)
