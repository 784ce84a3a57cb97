"""The VQ tokenizer: shapes, the codebook in use, training that reconstructs better than it
starts, exact resume, checkpoints that round-trip and refuse tampering or absurd configs."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from igpt_forensics.generators.vq import (
    TokenizerTrainConfig,
    VQConfig,
    VQTokenizer,
    evaluate_tokenizer,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)

from igpt_forensics.data import load_patches
from igpt_forensics.errors import InputError
from igpt_forensics.files import write_sha256sums

TINY = TokenizerTrainConfig(size=16, downsample=4, n_codes=32, code_dim=4, channels=16,
                            steps=40, batch_size=16, lr=3e-3, warmup=4, restart_every=5,
                            train_patches=256, eval_patches=32, eval_every=20,
                            checkpoint_every=10, seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("vq") / "tok"
    return out, train_tokenizer(TINY, out)


def test_shapes_and_code_granularity():
    model = VQTokenizer(VQConfig(image_size=16, downsample=4, n_codes=32, code_dim=4,
                                 channels=16)).eval()
    images = load_patches("builtin", 3, size=16, seed=1)
    codes = model.encode(images)
    assert codes.shape == (3, 16) and codes.dtype == torch.long  # 4x4 codes, raster order
    out = model.decode(codes)
    assert out.shape == (3, 16, 16, 3) and out.dtype == np.uint8
    with pytest.raises(InputError, match="codes must lie"):
        model.decode(codes + 32)
    with pytest.raises(InputError, match="uint8"):
        model.encode(images[:, :8])


def test_training_reconstructs_better_and_keeps_the_codebook_alive(trained):
    out, result = trained
    model, cfg = load_tokenizer(out)
    held = load_patches("builtin", 32, size=16, seed=1, split="heldout")
    fresh = VQTokenizer(TINY.vq_config()).eval()
    before, after = evaluate_tokenizer(fresh, held), evaluate_tokenizer(model, held)
    assert after["psnr"] > before["psnr"] + 3, (before, after)
    assert after["codes_used"] >= 12  # dead-code restarts keep codes in use (of 32)
    assert cfg["family"] == "vq" and cfg["meta"]["step"] == TINY.steps
    assert any(p["split"] == "train" for p in cfg["meta"]["photos"])


def test_resume_continues_a_killed_run_exactly(trained, tmp_path):
    out, _ = trained
    train_tokenizer(TINY, tmp_path / "part", stop_after=15)  # killed after step 15
    train_tokenizer(TINY, tmp_path / "part", resume=True)
    a, _ = load_tokenizer(out)
    b, _ = load_tokenizer(tmp_path / "part")
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k
    with pytest.raises(InputError, match="different settings"):
        train_tokenizer(replace(TINY, lr=1e-3), tmp_path / "part", resume=True)


def test_checkpoints_refuse_tampering_and_absurd_configs(trained, tmp_path):
    out, _ = trained
    model, _ = load_tokenizer(out)
    save_tokenizer(model, tmp_path / "pkg")
    write_sha256sums(tmp_path / "pkg")
    load_tokenizer(tmp_path / "pkg")
    blob = bytearray((tmp_path / "pkg" / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (tmp_path / "pkg" / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(InputError, match="SHA256SUMS"):
        load_tokenizer(tmp_path / "pkg")
    for bad in (dict(n_codes=10**9), dict(downsample=3), dict(image_size=18),
                dict(channels=12), dict(code_dim=0)):
        with pytest.raises(InputError):
            VQConfig(**{**VQConfig().to_dict(), **bad})


def test_train_tokenizer_command(tmp_path):
    from typer.testing import CliRunner

    from igpt_forensics.cli import app

    r = CliRunner().invoke(app, ["train-tokenizer", "--out", str(tmp_path / "t"), "--size", "16",
                                 "--codes", "16", "--code-dim", "4", "--channels", "8",
                                 "--steps", "6", "--batch-size", "8", "--train-patches", "64",
                                 "--eval-every", "3", "--checkpoint-every", "3"])
    assert r.exit_code == 0, r.output
    assert "held-out PSNR" in " ".join(r.output.split())
    model, cfg = load_tokenizer(tmp_path / "t")
    assert model.config.n_codes == 16 and cfg["meta"]["step"] == 6
    r = CliRunner().invoke(app, ["train-tokenizer", "--out", str(tmp_path / "u"),
                                 "--downsample", "3"])
    assert r.exit_code == 1 and "power of 2" in r.output
