"""Checkpoint format, completion, nll and import-hf through the CLI."""

import json

import numpy as np
import pytest
import torch
from igpt_forensics.generators.checkpoint import load_checkpoint, save_checkpoint
from igpt_forensics.generators.complete import complete
from igpt_forensics.generators.model import create_model
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from igpt_forensics.cli import app
from igpt_forensics.data import load_patches
from igpt_forensics.errors import InputError
from igpt_forensics.masks import make_mask
from igpt_forensics.palette import Palette

runner = CliRunner()


def test_checkpoint_round_trip_and_refusals(tmp_path, tiny_checkpoint):
    model, palette, cfg = load_checkpoint(tiny_checkpoint)
    save_checkpoint(model, palette, tmp_path / "copy", {"note": "x"})
    again, pal2, cfg2 = load_checkpoint(tmp_path / "copy")
    tokens = torch.from_numpy(palette.encode(load_patches("builtin", 4, size=8)))
    assert torch.equal(model.logits_for(tokens), again.logits_for(tokens))
    assert cfg2["sha256"] == cfg["sha256"] and pal2.sha256 == palette.sha256
    with pytest.raises(InputError, match="not a checkpoint folder"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "copy" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="model.safetensors"):
        load_checkpoint(tmp_path / "copy")
    wrong = {k: v for k, v in model.state_dict().items() if "lm_head" not in k}
    save_file(wrong, tmp_path / "copy" / "model.safetensors")
    with pytest.raises(InputError, match="do not match"):
        load_checkpoint(tmp_path / "copy")


def test_completion_keeps_known_pixels_and_labels_the_mask(tiny_checkpoint):
    model, palette, _ = load_checkpoint(tiny_checkpoint)
    images = load_patches("builtin", 3, size=8, seed=5, split="heldout")
    rng = np.random.default_rng(0)
    for spec in ("top-half", "box", "full", "box:2,3,4,2"):
        mask, _ = make_mask(spec, 8, rng)
        seeds = np.arange(6).reshape(3, 2)
        r = complete(model, palette, images, mask, seeds)
        assert r.images.shape == (3, 2, 8, 8, 3)
        for i in range(3):
            for j in range(2):
                np.testing.assert_array_equal(r.images[i, j][~mask], r.quantized[i][~mask])
        r2 = complete(model, palette, images, mask, seeds)
        np.testing.assert_array_equal(r.images, r2.images)  # same seed, same pixels
        if spec == "full":
            assert not np.array_equal(r.images[:, 0], r.images[:, 1])


def _photo_files(tmp_path, n=2):
    files = []
    for i, im in enumerate(load_patches("builtin", n, size=24, seed=9, split="heldout")):
        p = tmp_path / f"photo{i}.png"
        Image.fromarray(im).save(p)
        files.append(p)
    return files


def test_complete_cli_writes_the_igpt_figure(tmp_path, tiny_checkpoint):
    files = _photo_files(tmp_path)
    (tmp_path / "bad.png").write_text("no")
    out = tmp_path / "grid.png"
    r = runner.invoke(app, ["complete", *map(str, files), str(tmp_path / "bad.png"),
                            "--model", str(tiny_checkpoint), "--samples", "3", "--scale", "2",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    grid = np.asarray(Image.open(out))
    # 2 rows of (masked input, 3 completions, original), 8x8 pixels at scale 2, pad 2
    assert grid.shape == (2 * 18 + 2, 5 * 18 + 2, 3)
    assert "bad.png" in r.output and "tokens/s" in r.output


def test_nll_cli_matches_token_stats(tmp_path, tiny_checkpoint):
    files = _photo_files(tmp_path, 1)
    r = runner.invoke(app, ["nll", str(files[0]), "--model", str(tiny_checkpoint), "--json",
                            "-"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output)["rows"][0]
    model, palette, _ = load_checkpoint(tiny_checkpoint)
    from igpt_forensics.data import fit_square, load_image

    tokens = torch.from_numpy(palette.encode(fit_square(load_image(files[0]), 8)[None]))
    want = model.token_stats(tokens)["nll"].double().mean().item() / np.log(2)
    assert row["bits_per_token"] == pytest.approx(want, rel=1e-6)


def test_import_hf_cli(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ImageGPTConfig(vocab_size=17, n_positions=16, n_embd=32, n_layer=1,
                                      n_head=2)
    hf = transformers.ImageGPTForCausalImageModeling(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    clusters = np.random.default_rng(0).uniform(-1, 1, (16, 3)).tolist()
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps({"clusters": clusters}))
    r = runner.invoke(app, ["import-hf", str(tmp_path / "hf"), str(tmp_path / "native")])
    assert r.exit_code == 0, r.output
    model, palette, _ = load_checkpoint(tmp_path / "native")
    assert model.config.image_size == 4 and palette.n_colors == 16
    tokens = torch.randint(0, 16, (2, 16))
    with torch.no_grad():
        start = torch.full((2, 1), 16)
        want = hf(torch.cat([start, tokens[:, :-1]], 1)).logits
    assert torch.allclose(model.logits_for(tokens), want, atol=1e-4)


def test_cli_errors_are_one_line(tmp_path, tiny_checkpoint):
    r = runner.invoke(app, ["complete", str(tmp_path / "missing.png"), "--model",
                            str(tiny_checkpoint)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    r = runner.invoke(app, ["complete", *map(str, _photo_files(tmp_path, 1)), "--model",
                            str(tiny_checkpoint), "--mask", "box:0,0,99,99"])
    assert r.exit_code == 1 and "does not fit" in r.output
    r = runner.invoke(app, ["nll", "x.png", "--model", str(tmp_path)])
    assert r.exit_code == 1 and "checkpoint" in r.output


def test_untrained_random_model_samples_every_color(tmp_path):
    # sanity check of the sampler's support on a random model: all colors reachable
    model = create_model("tiny", vocab_size=4, image_size=4)
    palette = Palette(np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8))
    r = complete(model, palette, np.zeros((1, 4, 4, 3), np.uint8), np.ones((4, 4), bool),
                 np.arange(32).reshape(1, 32))
    assert len(np.unique(r.images.reshape(-1, 3), axis=0)) == 4
