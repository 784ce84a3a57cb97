"""Data jobs under torchrun (2 CPU processes, gloo): `generate` and `score` give exactly the
output of one process, each rank resumes on its own, and a rerun of a finished job changes
nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from igpt_forensics.cli import app
from igpt_forensics.data import MAX_SCORE_PIXELS
from igpt_forensics.distributed import Journal, launch
from igpt_forensics.errors import InputError
from tests.core.test_provenance import tree

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "IGPT_FORENSICS_THREADS": "1"}


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    """The command under torchrun; ``processes=1``: the same command as one plain process
    (a fresh interpreter like the ranks', so that no state of the test session differs)."""
    launcher = (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                 str(processes)] if processes > 1 else [])
    p = subprocess.run([sys.executable, *launcher, "-m", "igpt_forensics", *args],
                       capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    return p


def test_torchrun_generate_equals_one_process_and_resumes_per_rank(tiny_checkpoint, tmp_path):
    args = ["--items", "10", "--model", str(tiny_checkpoint), "--masks", "top-half,box,full",
            "--batch-size", "4"]
    r = runner.invoke(app, ["generate", *args, "--out", str(tmp_path / "one")])
    assert r.exit_code == 0, r.output
    torchrun("generate", *args, "--out", str(tmp_path / "two"))
    assert tree(tmp_path / "two") == tree(tmp_path / "one")
    assert not (tmp_path / "two.shards").exists()
    # rank 0's share already written (a rank that finished before a kill): rank 1 does its
    # own, rank 0 resumes with nothing left to do, and the merge is the same dataset
    r = runner.invoke(app, ["generate", *args, "--shard", "0/2",
                            "--out", str(tmp_path / "three.shards" / "0-of-2")])
    assert r.exit_code == 0, r.output
    torchrun("generate", *args, "--out", str(tmp_path / "three"))
    assert tree(tmp_path / "three") == tree(tmp_path / "one")
    # a rerun of a finished job changes nothing
    torchrun("generate", *args, "--out", str(tmp_path / "three"))
    assert tree(tmp_path / "three") == tree(tmp_path / "one")


def test_torchrun_score_equals_one_process(tmp_path):
    from skimage import data as skd

    photo, rng = skd.astronaut(), np.random.default_rng(0)
    ims = tmp_path / "ims"
    ims.mkdir()
    for i in range(37):  # three chunks of 16: rank 0 scores chunks 0 and 2, rank 1 chunk 1
        side = (32, 48)[i % 2]
        t, left = rng.integers(0, 400, 2)
        Image.fromarray(photo[t:t + side, left:left + side]).save(ims / f"im{i:02d}.png")
    (ims / "im20.png").write_bytes(b"not an image")
    args = ["score", str(ims), "--detector", "cnn", "--maps"]
    torchrun(*args, str(tmp_path / "maps1"), "--json", str(tmp_path / "a.json"), processes=1)
    p = torchrun(*args, str(tmp_path / "maps2"), "--json", str(tmp_path / "b.json"))
    assert "scoring: 21/21 images" in p.stderr  # rank 0's share: chunks 0 and 2, not all
    one = (tmp_path / "a.json").read_text()
    two = (tmp_path / "b.json").read_text().replace("maps2", "maps1")
    assert two == one
    doc = json.loads(one)
    assert len(doc["rows"]) == 36 and any("im20.png" in s for s in doc["skipped"])
    assert tree(tmp_path / "maps2") == tree(tmp_path / "maps1")
    assert not (tmp_path / "b.json.parts").exists()
    # a rank resumes from its own journal: rank 1's chunk 1 (images 16-31) is taken from
    # there, not scored again (marked rows prove it), and rank 0 scores the rest
    from igpt_forensics.detectors.base import open_detector

    from igpt_forensics.cli.score_cmds import journal_header
    from igpt_forensics.data import find_images

    files = find_images([ims])[0]
    header = journal_header(files, open_detector("cnn"), MAX_SCORE_PIXELS, None)
    plain = [{k: v for k, v in r.items() if k not in ("map", "overlay")} for r in doc["rows"]]
    rows = [{**row, "score": 99.0} for row in plain[16:31]]  # one file of 16 is bad
    Journal(tmp_path / "c.json.parts" / "1-of-2.jsonl", header).add(1, rows=rows, bad=[])
    torchrun("score", str(ims), "--detector", "cnn", "--json", str(tmp_path / "c.json"))
    got = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert [r["score"] for r in got[16:31]] == [99.0] * 15
    assert got[:16] == plain[:16] and got[31:] == plain[31:]


def test_the_journal_keeps_finished_pieces_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal(path, {"job": 1})
    j.add(0, rows=[1])
    j.add(2, rows=[3])
    with open(path, "a") as f:
        f.write('{"piece": 4, "ro')  # a kill mid-write
    again = Journal(path, {"job": 1})
    assert set(again.done) == {0, 2} and again.done[2]["rows"] == [3]
    assert path.read_text().count("\n") == 3  # header + two pieces, the torn line gone
    assert Journal(path, {"job": 2}).done == {}  # another job's journal starts afresh


def test_the_launch_comes_from_torchrun_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launch().world == 1 and not launch().distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (launch().rank, launch().world, launch().local_rank) == (3, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(InputError, match="out of range"):
        launch()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(InputError, match="not numbers"):
        launch()


def test_torchrun_score_needs_an_output_file(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.png")
    r = runner.invoke(app, ["score", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "add --json FILE or --csv FILE" in r.output


def test_only_a_jobs_own_rank_outputs_are_removed(tmp_path):
    from igpt_forensics.distributed import remove_parts

    ours = tmp_path / "scores.json.parts"
    ours.mkdir()
    (ours / "0-of-2.jsonl").write_text("x")
    (ours / "1-of-2.jsonl").write_text("x")
    remove_parts(ours, r"\d+-of-\d+\.jsonl")
    assert not ours.exists()
    theirs = tmp_path / "DS.shards"
    (theirs / "0-of-2").mkdir(parents=True)
    (theirs / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(InputError, match="holiday.jpg, which this job did not write"):
        remove_parts(theirs, r"\d+-of-\d+|merged")
    assert (theirs / "holiday.jpg").read_bytes() == b"mine"
