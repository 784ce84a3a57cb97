"""Crafted inputs, as an attacker or a careless user would write them: nothing is read or
written outside its folder, and each is one clear line with exit code 1, never a traceback."""

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from igpt_forensics import provenance as pv
from igpt_forensics.bench import load_split
from igpt_forensics.cli import app
from igpt_forensics.errors import InputError
from igpt_forensics.files import check_plain_name, check_relative, inside
from tests.core.test_provenance import make_dataset, tree

runner = CliRunner()

ESCAPES = ["../x.png", "../../etc/passwd", "/etc/passwd", "images/../../x.png", "..",
           "images\\..\\..\\x.png", "C:/x.png", "", "a\0b.png"]


@pytest.mark.parametrize("rel", ESCAPES)
def test_path_guard_refuses_every_escape(tmp_path, rel):
    with pytest.raises(InputError, match="relative|outside"):
        inside(tmp_path, rel, "m.jsonl:1")
    assert inside(tmp_path, "images/00000/a.png", "x") == tmp_path.resolve() / "images/00000/a.png"


def test_path_guard_follows_symlinks_out_of_the_root(tmp_path):
    (tmp_path / "root").mkdir()
    os.symlink("/etc", tmp_path / "root" / "link")
    with pytest.raises(InputError, match="outside"):
        inside(tmp_path / "root", "link/passwd", "m.jsonl:1")


@given(st.text(min_size=0, max_size=12))
def test_plain_names_never_hold_a_separator(name):
    try:
        check_plain_name(name, "x")
    except InputError:
        return
    assert "/" not in name and "\\" not in name and name not in (".", "..") and name


@given(st.lists(st.sampled_from(["..", ".", "a", "b.png", "", "/", "\\", "C:"]), min_size=1,
                max_size=5).map("/".join))
def test_relative_paths_that_pass_stay_below_their_root(rel):
    try:
        check_relative(rel, "x")
    except InputError:
        return
    depth = 0
    for part in rel.split("/"):
        depth += {"..": -1, ".": 0, "": 0}.get(part, 1)
        assert depth >= 0


def _tamper(ds, field, value, row=2):
    path = ds / pv.MANIFEST
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[row][field] = value
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _one_line_error(result):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.output  # (a progress bar may have started before)
    return errors[0]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["path", "mask_path", "split", "id"]),
       value=st.sampled_from(ESCAPES + ["../../outside", "train/../../x", 5, None, ["x"]]))
def test_crafted_manifest_rows_make_export_and_merge_fail_cleanly(tmp_path_factory, field, value):
    base = tmp_path_factory.mktemp("crafted")
    ds = make_dataset(base / "sub" / "ds", n=5)
    victim = base / "x.png"
    victim.write_bytes(b"secret")
    if field == "mask_path" and value is None:
        return  # a fake without a mask path is refused elsewhere; nothing to escape with
    _tamper(ds, field, value, row=2)  # item 0's fake
    before = tree(base)
    for args in (["dataset", "export", str(ds), str(base / "sub" / "out")],
                 ["dataset", "merge", str(ds), "--out", str(base / "sub" / "merged")]):
        r = runner.invoke(app, args)
        _one_line_error(r)
        assert tree(base) == before, "a file was written (or changed) after all"
    with pytest.raises(InputError):
        load_split(ds, "train")
