"""Training: learns (held-out bits/dim far below the unigram baseline), resumes exactly,
and two DDP processes end with identical weights."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from generators.checkpoint import load_checkpoint
from generators.train import TrainConfig, lr_at, train_generator
from igpt_forensics.errors import InputError
from tests.conftest import TINY_TRAIN

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_model_learns_well_below_unigram(tiny_checkpoint):
    model, palette, cfg = load_checkpoint(tiny_checkpoint)
    meta = cfg["meta"]
    assert meta["step"] == TINY_TRAIN["steps"]
    # a model that learned nothing but color frequencies would sit at the unigram baseline
    assert meta["heldout_bits_per_dim"] < 0.6 * meta["unigram_bits_per_dim"], meta
    history = json.loads((tiny_checkpoint / "state" / "latest").parent.joinpath(
        (tiny_checkpoint / "state" / "latest").read_text(), "state.json").read_text())["history"]
    bpd = [h["heldout_bits_per_dim"] for h in history]
    assert bpd[-1] < bpd[0], bpd  # held-out likelihood improves with training


SMALL = replace(TrainConfig(**TINY_TRAIN), steps=12, train_patches=200, eval_patches=16,
                eval_every=4, checkpoint_every=4, warmup=3)


def test_resume_continues_a_killed_run_exactly(tmp_path):
    whole = train_generator(SMALL, tmp_path / "whole")
    part = train_generator(SMALL, tmp_path / "part", stop_after=6)  # "killed" after step 6
    assert part["step"] == 6
    resumed = train_generator(SMALL, tmp_path / "part", resume=True)
    assert resumed["step"] == 12
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "part" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert whole["heldout_bits_per_dim"] == resumed["heldout_bits_per_dim"]


def test_resume_refuses_other_settings_and_fresh_run_refuses_old_folder(tmp_path):
    train_generator(SMALL, tmp_path / "r", stop_after=4)
    with pytest.raises(InputError, match="different settings.*lr"):
        train_generator(replace(SMALL, lr=1e-4), tmp_path / "r", resume=True)
    with pytest.raises(InputError, match="--resume"):
        train_generator(SMALL, tmp_path / "r")
    with pytest.raises(InputError, match="nothing to resume"):
        train_generator(SMALL, tmp_path / "empty", resume=True)


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-4)
    assert lr_at(50, cfg) < lr_at(20, cfg)


DDP_SCRIPT = """
import sys, hashlib, torch, torch.distributed as dist
from dataclasses import replace
from generators.train import TrainConfig, train_generator
sys.path.insert(0, {root!r})
from tests.conftest import TINY_TRAIN
cfg = replace(TrainConfig(**TINY_TRAIN), steps=4, train_patches=64, eval_patches=8,
              eval_every=4, checkpoint_every=4, warmup=2, batch_size=8)
r = train_generator(cfg, {out!r})
h = hashlib.sha256()
for k, v in sorted(r["model"].state_dict().items()):
    h.update(k.encode()); h.update(v.numpy().tobytes())
open({out!r} + f"/rank{{dist.get_rank()}}.sha", "w").write(h.hexdigest())
dist.destroy_process_group()
"""


def test_two_ddp_processes_end_with_identical_weights(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT), out=str(tmp_path / "run")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node", "2", str(script)], capture_output=True, text=True,
                       timeout=300, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    h0 = (tmp_path / "run" / "rank0.sha").read_text()
    h1 = (tmp_path / "run" / "rank1.sha").read_text()
    assert h0 == h1
    # and training moved the weights: the checkpoint differs from a fresh init
    model, _, cfg = load_checkpoint(tmp_path / "run")
    assert cfg["meta"]["step"] == 4


def test_several_sources_are_recorded_and_resume_exactly(tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "mine"
    folder.mkdir()
    y, x = np.mgrid[0:40, 0:40]
    for i in range(10):
        im = np.stack([(x * (i + 3)) % 256, (y * 7 + i * 20) % 256, (x + y) % 256], -1)
        Image.fromarray(im.astype(np.uint8)).save(folder / f"p{i}.png")
    cfg = replace(SMALL, data=["builtin", str(folder)], steps=6, eval_every=3,
                  checkpoint_every=3)
    train_generator(cfg, tmp_path / "part", stop_after=3)
    train_generator(cfg, tmp_path / "part", resume=True)
    whole = train_generator(cfg, tmp_path / "whole")
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "part" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    photos = load_checkpoint(tmp_path / "whole")[2]["meta"]["photos"]
    by_id = {p["id"]: p for p in photos}
    assert by_id["builtin:astronaut"]["split"] == "train"
    assert by_id["builtin:coffee"]["split"] == "val"
    assert by_id["builtin:astronaut"]["file"] == "skimage.data/astronaut.png"
    mine = [p for p in photos if p["id"].startswith(str(folder))]
    assert mine and all(len(p["sha256"]) == 64 and p["file"].startswith("p") for p in mine)
    assert whole["step"] == 6


def test_bf16_precision_trains_and_bad_precision_is_refused(tmp_path):
    r = train_generator(replace(SMALL, precision="bf16", steps=4, eval_every=4), tmp_path / "b")
    assert r["step"] == 4 and r["heldout_bits_per_dim"] < r["unigram_bits_per_dim"] + 1
    with pytest.raises(InputError, match="precision"):
        train_generator(replace(SMALL, precision="fp8"), tmp_path / "c")
