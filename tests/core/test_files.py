"""Checked JSON reads: every JSON file a user names gives one clear line when it is bad."""

import pytest
from igpt_forensics.detectors.base import load_detector
from igpt_forensics.generators.checkpoint import read_config

from igpt_forensics import provenance as pv
from igpt_forensics.errors import InputError
from igpt_forensics.files import atomic_write_text, read_json
from igpt_forensics.palette import Palette


def test_read_json_reads_and_names_what_is_wrong(tmp_path):
    good = tmp_path / "good.json"
    atomic_write_text(good, '{"a": [1, 2]}')
    assert read_json(good, "missing", "bad") == {"a": [1, 2]}
    with pytest.raises(InputError, match="^nothing here$"):
        read_json(tmp_path / "absent.json", "nothing here", "bad")
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": ')
    with pytest.raises(InputError, match=r"^broken one \(Expecting value"):
        read_json(broken, "missing", "broken one")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="^broken one"):
        read_json(binary, "missing", "broken one")


@pytest.mark.parametrize("name, load, message", [
    ("detector.json", lambda d: load_detector(d), "unreadable detector file"),
    ("config.json", lambda d: read_config(d), "unreadable checkpoint config"),
    ("dataset.json", lambda d: pv.read_info(d), "unreadable"),
    ("palette.json", lambda d: Palette.load(d / "palette.json"), "not a palette JSON file"),
])
def test_each_loader_turns_a_corrupt_json_file_into_one_line(tmp_path, name, load, message):
    (tmp_path / name).write_text("{ truncated")
    with pytest.raises(InputError, match=message) as info:
        load(tmp_path)
    assert "\n" not in str(info.value) and name in str(info.value)


def test_read_json_checks_the_format_when_asked(tmp_path):
    doc = tmp_path / "doc.json"
    doc.write_text('{"format": "thing-v1", "x": 1}')
    assert read_json(doc, "missing", "bad", "thing-v1")["x"] == 1
    with pytest.raises(InputError, match="not a thing-v2 file"):
        read_json(doc, "missing", "bad", "thing-v2")
    doc.write_text("[1, 2]")
    with pytest.raises(InputError, match="not a thing-v1 file"):
        read_json(doc, "missing", "bad", "thing-v1")
