"""README's Python quick start runs as printed (a newcomer copies it first)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_quick_start_in_python_runs_as_printed():
    text = README.read_text()
    block = re.search(r"## Quick start in Python\n\n```python\n(.*?)```", text, re.S)
    assert block, "README has no quick start in Python"
    scope: dict = {"print": lambda *a: None}
    exec(compile(block.group(1), "README.md (quick start)", "exec"), scope)
    scores, where, det = scope["scores"], scope["where"], scope["detector"]
    assert det.name == "fusion" and scores.shape == (4,) and np.isfinite(scores).all()
    assert len(where.masks) == 4 and where.masks[0].shape == (32, 32)
