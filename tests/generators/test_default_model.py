"""The bundled default generator: the shipped files match their recorded hashes, and the
model loads (without --model) and samples."""

import numpy as np
import torch
from igpt_forensics.generators.checkpoint import DEFAULT_MODEL, load_checkpoint
from typer.testing import CliRunner

from igpt_forensics.cli import app
from igpt_forensics.files import sha256_file


def test_shipped_files_match_recorded_hashes():
    lines = (DEFAULT_MODEL / "SHA256SUMS").read_text().splitlines()
    assert {line.split()[1] for line in lines} == {"config.json", "model.safetensors"}
    for line in lines:
        digest, name = line.split()
        assert sha256_file(DEFAULT_MODEL / name) == digest, name


def test_default_loads_and_samples():
    model, palette, cfg = load_checkpoint(None)
    meta = cfg["meta"]
    assert model.config.image_size == 32 and palette.n_colors == 512
    assert meta["trained_by"] == "igpt-forensics train-generator"
    assert meta["heldout_bits_per_dim"] < meta["unigram_bits_per_dim"] - 1.0
    assert all(p.dtype == torch.float32 for p in model.parameters())
    n = model.config.n_positions
    known = torch.zeros(2, n, dtype=torch.long)
    mask = torch.zeros(2, n, dtype=torch.bool)
    mask[:, -64:] = True  # the last two rows: quick, but a real KV-cached completion
    out = model.sample(known, mask, seeds=[1, 2])
    assert torch.equal(out[:, :-64], known[:, :-64])
    assert not torch.equal(out[0, -64:], out[1, -64:])


def test_info_lists_the_bundled_default():
    r = CliRunner().invoke(app, ["info"])
    assert r.exit_code == 0 and "default-generator" in r.output
    assert np.isfinite(load_checkpoint(None)[2]["meta"]["heldout_bits_per_dim"])


def test_shipped_vq_generator_matches_its_hashes_and_completes_by_name():
    from igpt_forensics.assets import GENERATOR_NAMES
    from igpt_forensics.data import load_patches
    from igpt_forensics.masks import make_mask

    folder = GENERATOR_NAMES["vq-default"]
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    assert {line.split()[1] for line in lines} == {"config.json", "model.safetensors",
                                                    "tokenizer.safetensors"}
    for line in lines:
        digest, name = line.split()
        assert sha256_file(folder / name) == digest, name
    model, codec, cfg = load_checkpoint("vq-default")
    assert cfg["family"] == "vq" and cfg["image_size"] == 32 and codec.n_tokens == 512
    meta = cfg["meta"]
    assert meta["heldout_bits_per_dim"] < meta["unigram_bits_per_dim"] - 2.0
    from igpt_forensics.generators.complete import complete

    photos = load_patches("builtin", 2, size=32, seed=0, split="test")
    out = complete(model, codec, photos, make_mask("top-half", 32)[0], np.array([[1], [2]]))
    assert out.images.shape == (2, 1, 32, 32, 3) and out.mask[:, 16:].all()
    assert codec.psnr(photos) > 18  # the tokenizer reconstructs held-out photos
