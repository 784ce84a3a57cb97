"""Data jobs under ``torchrun``: which share of the work this process takes, and one place
where the processes wait for each other.

``torchrun --nproc_per_node N -m igpt_forensics generate ...`` (or ``score``) starts N
processes with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; across nodes,
``--nnodes``/``--node_rank``/``--rdzv_endpoint`` add the rest, and the output folder must be
on a file system every node sees. Each rank does its share and can be resumed on its own; the
ranks meet at a `barrier` (gloo: only objects and barriers travel, so it works on CPU and GPU
machines alike), and rank 0 joins the shares into exactly the output one process makes.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

# a barrier waits for the slowest rank: a data job's ranks may finish hours apart
BARRIER_TIMEOUT = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Launch:
    """This process's place in a torchrun launch (rank 0 of 1 when not launched by it)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def device(self, name: str | None) -> str | None:
        """``auto`` (or no choice) on a machine with GPUs: the GPU of this local rank; any
        other choice as it is."""
        import torch

        if name in (None, "auto") and self.distributed and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return name


def launch() -> Launch:
    """The rank and world size torchrun put in the environment; a clear line when they are
    not numbers or out of range."""
    env = {k: os.environ.get(k, "").strip() for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    if not env["WORLD_SIZE"]:
        return Launch()
    try:
        rank, world = int(env["RANK"] or 0), int(env["WORLD_SIZE"])
        local = int(env["LOCAL_RANK"] or 0)
    except ValueError:
        raise InputError(f"torchrun environment is not numbers: {env}") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise InputError(f"torchrun environment out of range: {env}")
    return Launch(rank, world, local)


def barrier(where: Launch) -> None:
    """Wait until every rank is here (the process group is made on first use)."""
    if not where.distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    dist.barrier()


def finish(where: Launch) -> None:
    """Leave the process group (after the last barrier)."""
    if not where.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class Journal:
    """A rank's finished pieces of work, one JSON line each (written and fsynced as each piece
    ends), so that a killed rank resumes where it stopped. The first line is the job's
    ``header``: a journal of another job (other inputs or settings) is started afresh; a
    torn last line (a kill mid-write) is dropped."""

    def __init__(self, path: Path, header: dict):
        self.path, self.header = Path(path), header
        self.done = self.read(self.path, header)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", encoding="utf-8") as f:  # rewritten clean: no torn line
            f.write(json.dumps(header) + "\n")
            for entry in self.done.values():
                f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    @staticmethod
    def read(path: Path, header: dict) -> dict[int, dict]:
        """The finished pieces of a journal (piece -> entry); none for another job's."""
        if not Path(path).exists():
            return {}
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        try:
            if not lines or json.loads(lines[0]) != header:
                return {}
        except (ValueError, RecursionError):  # not JSON, a 5000-digit number, too deep
            return {}
        done = {}
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                piece = entry["piece"]
            except (ValueError, RecursionError, KeyError, TypeError, IndexError):
                break  # torn by a kill: this piece and any after it are done again
            if isinstance(piece, bool) or not isinstance(piece, int) or piece < 0:
                break  # not a line this class wrote: done again, like a torn one
            done[piece] = entry
        return done

    def add(self, piece: int, **result) -> None:
        entry = {"piece": piece, **result}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[piece] = entry


def remove_parts(folder: Path, pattern: str) -> None:
    """Remove a folder of rank outputs that a job made beside its output (``OUT.shards``,
    ``FILE.parts``) once they are joined, and only that: an entry whose name does not match
    ``pattern`` (a regular expression: the job's own names) means the folder is not ours,
    and nothing is removed."""
    import re
    import shutil

    folder = Path(folder)
    if not folder.is_dir():
        return
    strangers = [p.name for p in folder.iterdir() if not re.fullmatch(pattern, p.name)]
    if strangers:
        raise InputError(f"{folder}: holds {', '.join(sorted(strangers)[:3])}, which this job "
                         "did not write; left as it is (remove it yourself once checked)")
    shutil.rmtree(folder)


__all__ = ["Journal", "Launch", "barrier", "finish", "launch", "remove_parts"]
