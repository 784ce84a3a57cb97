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
from igpt_forensics.generators.checkpoint import load_checkpoint
from igpt_forensics.generators.config import TrainConfig
from igpt_forensics.generators.train import lr_at, train_generator
from safetensors.torch import load_file

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
    # state/latest names a folder beside it; an edited one that points elsewhere is refused
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "state.json").write_text('{"step": 0, "history": []}')
    for name in ("../../outside", str(outside)):
        (tmp_path / "r" / "state" / "latest").write_text(name)
        with pytest.raises(InputError, match="must be a plain name"):
            train_generator(SMALL, tmp_path / "r", resume=True)


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-4)
    assert lr_at(50, cfg) < lr_at(20, cfg)


DDP_SCRIPT = """
import sys, torch, torch.distributed as dist
from dataclasses import replace
from safetensors.torch import save_file
from igpt_forensics.generators.config import TrainConfig
from igpt_forensics.generators.train import train_generator
sys.path.insert(0, {root!r})
from tests.conftest import TINY_TRAIN
cfg = replace(TrainConfig(**TINY_TRAIN), steps=4, train_patches=64, eval_patches=8,
              eval_every=4, checkpoint_every=4, warmup=2, batch_size=8)
r = train_generator(cfg, {out!r})
rank = dist.get_rank() if dist.is_initialized() else "single"
state = {{k: v.contiguous() for k, v in r["model"].state_dict().items()}}
save_file(state, {out!r} + f"/weights-{{rank}}.safetensors")
if dist.is_initialized():
    dist.destroy_process_group()
"""


def test_two_ddp_processes_equal_one_process_on_the_same_global_batch(tmp_path):
    """Each rank must train on its own half of the global batch and average gradients: then
    both ranks end with the weights of one process that saw the whole batch. (Two ranks
    training on the same half would agree with each other, and fail this comparison.)"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    for out, launch in ((ddp, ["-m", "torch.distributed.run", "--standalone",
                               "--nproc_per_node", "2"]), (single, [])):
        script = tmp_path / f"{out.name}.py"
        script.write_text(DDP_SCRIPT.format(root=str(ROOT), out=str(out)))
        p = subprocess.run([sys.executable, *launch, str(script)], capture_output=True,
                           text=True, timeout=300, env=env, cwd=ROOT)
        assert p.returncode == 0, p.stderr[-3000:]
    w0 = load_file(ddp / "weights-0.safetensors")
    w1 = load_file(ddp / "weights-1.safetensors")
    w = load_file(single / "weights-single.safetensors")
    for k in w:
        assert torch.equal(w0[k], w1[k]), k  # the ranks agree exactly
        assert torch.allclose(w0[k], w[k], atol=2e-5, rtol=1e-4), k  # and equal one process
    assert load_checkpoint(ddp)[2]["meta"]["step"] == 4
