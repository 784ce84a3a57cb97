"""The VQ family end to end: a GPT over a tokenizer's codes, trained, saved with its tokenizer,
completing at code granularity, writing datasets (recon fakes, changed maps, family in every
record) and scoring images with its code likelihood."""

import json

import numpy as np
import pytest
import torch
from igpt_forensics.generators.checkpoint import TOKENIZER, load_checkpoint, resolve_model
from igpt_forensics.generators.complete import changed_mask, complete
from igpt_forensics.generators.config import TokenizerTrainConfig, TrainConfig
from igpt_forensics.generators.dataset import generate_dataset
from igpt_forensics.generators.train import train_generator
from igpt_forensics.generators.vq import train_tokenizer
from PIL import Image
from typer.testing import CliRunner

from igpt_forensics import provenance as pv
from igpt_forensics.cli import app
from igpt_forensics.data import load_image, load_patches
from igpt_forensics.errors import InputError
from igpt_forensics.masks import make_mask

TOK = TokenizerTrainConfig(size=16, downsample=4, n_codes=32, code_dim=4, channels=16,
                           steps=40, batch_size=16, lr=3e-3, warmup=4, restart_every=5,
                           train_patches=256, eval_patches=32, eval_every=20,
                           checkpoint_every=20, seed=0)
runner = CliRunner()


def gen_config(tokenizer) -> TrainConfig:
    return TrainConfig(data="builtin", size=16, preset="tiny", steps=60, batch_size=16,
                       train_patches=512, eval_patches=64, eval_every=30, checkpoint_every=30,
                       warmup=5, lr=3e-3, seed=0, family="vq", tokenizer=str(tokenizer))


@pytest.fixture(scope="module")
def vq(tmp_path_factory):
    root = tmp_path_factory.mktemp("vqgen")
    train_tokenizer(TOK, root / "tok")
    result = train_generator(gen_config(root / "tok"), root / "gen")
    return root, result


def test_a_gpt_over_codes_learns_them_and_its_checkpoint_names_family_and_tokenizer(vq):
    root, result = vq
    net, codec, cfg = load_checkpoint(root / "gen")
    assert cfg["family"] == "vq" and codec.family == "vq" and cfg["image_size"] == 16
    assert net.config.image_size == 4 and net.config.vocab_size == 32  # a 4x4 code grid
    meta = cfg["meta"]
    assert meta["heldout_bits_per_dim"] < meta["unigram_bits_per_dim"] - 0.3, meta
    assert meta["heldout_bits_per_pixel"] == pytest.approx(meta["heldout_bits_per_dim"] / 16)
    on_disk = json.loads((root / "gen" / "config.json").read_text())
    assert on_disk["family"] == "vq" and on_disk["tokenizer"]["sha256"] == codec.sha256
    assert result["family"] == "vq"
    # the tokenizer travels inside the checkpoint and is checked against config.json
    blob = bytearray((root / "gen" / TOKENIZER).read_bytes())
    blob[-1] ^= 1
    bad = root / "tampered"
    bad.mkdir()
    for f in ("config.json", "model.safetensors"):
        (bad / f).write_bytes((root / "gen" / f).read_bytes())
    (bad / TOKENIZER).write_bytes(bytes(blob))
    with pytest.raises(InputError, match="sha256 differs"):
        load_checkpoint(bad)


def test_resume_of_a_vq_run_is_exact(vq, tmp_path):
    root, _ = vq
    cfg = gen_config(root / "tok")
    train_generator(cfg, tmp_path / "part", stop_after=30)  # killed at step 30
    train_generator(cfg, tmp_path / "part", resume=True)
    a, _, _ = load_checkpoint(root / "gen")
    b, _, _ = load_checkpoint(tmp_path / "part")
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k


def test_family_settings_are_checked():
    with pytest.raises(InputError, match="--tokenizer"):
        TrainConfig(family="vq").check()
    with pytest.raises(InputError, match="--family"):
        TrainConfig(family="diffusion").check()
    with pytest.raises(InputError, match="for --family vq"):
        TrainConfig(tokenizer="t").check()


def test_completion_draws_whole_code_cells_and_decodes_every_pixel(vq):
    root, _ = vq
    net, codec, _ = load_checkpoint(root / "gen")
    images = load_patches("builtin", 3, size=16, seed=1)
    mask, _ = make_mask("box:5,5,2,2", 16)  # inside the code cell at rows/cols 4..7
    out = complete(net, codec, images, mask, np.array([[1, 2], [3, 4], [5, 6]]))
    want = np.zeros((16, 16), bool)
    want[4:8, 4:8] = True
    assert (out.mask == want).all()  # the whole cell, not only the 2x2 box
    codes = codec.encode(images)
    drawn = codec.encode(out.images.reshape(-1, 16, 16, 3))
    assert out.images.shape == (3, 2, 16, 16, 3)
    # with nothing masked the completion is the reconstruction: the final component
    same = complete(net, codec, images, np.zeros((16, 16), bool), np.array([[7], [8], [9]]))
    assert (same.images[:, 0] == codec.quantize(images)).all()
    assert (same.quantized == codec.decode(codes)).all()
    assert drawn.shape == (6, 16)
    # top-half: the kept codes are the input's, whatever the seed
    top, _ = make_mask("top-half", 16)
    tokens = codec.token_mask(top[None])[0]
    assert tokens.sum() == 8 and not tokens[:8].any()


def test_vq_dataset_records_family_recon_and_changed_maps(vq, tmp_path):
    root, _ = vq
    out = tmp_path / "ds"
    generate_dataset(out, 8, model=root / "gen", masks="top-half,recon", batch_size=3)
    info = pv.read_info(out)
    assert info["generator"]["family"] == "vq"
    assert info["generator"]["tokenizer_sha256"] and info["generator"]["palette_sha256"] is None
    _, codec, _ = load_checkpoint(root / "gen")
    rows = list(pv.read_manifest(out / pv.MANIFEST))
    fakes = [r for r in rows if r["form"] == "fake"]
    assert {r["family"] for r in rows if r["form"] != "real"} == {"vq"}
    for r in fakes:
        fake = load_image(out / r["path"])
        real = load_image(out / r["path"].replace("-fake", "-real"))
        changed = load_image(out / r["changed_path"])[..., 0] > 127
        mask = load_image(out / r["mask_path"])[..., 0] > 127
        assert (changed == changed_mask(fake, real)).all()
        assert r["changed_pixels"] == changed.sum() and r["masked_pixels"] == mask.sum()
        assert r["tokenizer_sha256"] == codec.sha256
        if r["mask_kind"] == "recon":  # nothing drawn; every pixel decoded from real codes
            assert not mask.any() and (fake == codec.quantize(real[None])[0]).all()
        else:
            assert (mask[8:].all() and not mask[:8].any())
    qreal = [r for r in rows if r["form"] == "qreal"]
    for r in qreal:  # a VQ generator has no real-image format: the twin is the real image
        assert (load_image(out / r["path"]) ==
                load_image(out / r["path"].replace("-qreal", "-real"))).all()


def test_bench_crosses_the_two_families(vq, tiny_checkpoint, tmp_path):
    """A pixel and a VQ dataset in one bench: metrics.json names each family, the cross
    matrix trains on each family and tests on the other, and leave-one-generator-out tests
    each family with detectors trained on the other only."""
    root, _ = vq
    generate_dataset(tmp_path / "vqds", 60, model=root / "gen", masks="top-half,full,recon",
                     seed=1, batch_size=32)
    generate_dataset(tmp_path / "pixds", 60, model=tiny_checkpoint, masks="top-half,full",
                     seed=1, batch_size=32)
    r = runner.invoke(app, ["bench", "--dataset", str(tmp_path / "pixds"), "--dataset",
                            str(tmp_path / "vqds"), "--train", "laplacian", "--bootstrap", "10",
                            "--leave-one-out", "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert {d["name"]: d["family"] for d in doc["datasets"]} == {"pixds": "pixel", "vqds": "vq"}
    pairs = {(c["detector"], c["train"], c["test"]) for c in doc["cross"]}
    assert {("laplacian", "pixds", "vqds"), ("laplacian", "vqds", "pixds")} <= pairs
    loo = {x["held_out"]: x["trained_on"] for x in doc["leave_one_out"]}
    assert loo == {"pixds": ["vqds"], "vqds": ["pixds"]}
    recon = [x for x in doc["image"] if x["dataset"] == "vqds" and x["fakes"] == "recon"]
    assert recon and all(0.0 <= x["auc"] <= 1.0 for x in recon)


def test_map_pair_scripts_skip_recon_fakes(vq, tmp_path, monkeypatch):
    """benchmarks/map_pairs.py and paired_detectors.py --maps pair maps on partial fakes
    only: a recon fake (every pixel decoded) has no real pixel, so its pixel AUC is undefined
    (they wrote NaN rows, and JSON that strict parsers refuse, on a VQ dataset)."""
    import sys

    from tests.core.test_bench import _benchmark_script

    root, _ = vq
    generate_dataset(tmp_path / "vqds", 24, model=root / "gen", masks="box,recon", seed=1,
                     batch_size=12)
    streak = "examples.outside_detector:StreakDetector"

    def no_nan(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    for name, extra in (("map_pairs", []), ("paired_detectors", ["--maps"])):
        out = tmp_path / f"{name}.json"
        monkeypatch.setattr(sys, "argv", [
            f"{name}.py", "--dataset", str(tmp_path / "vqds"), "--pair", f"cnn,{streak}",
            *extra, "--bootstrap", "20", "--json", str(out)])
        _benchmark_script(name).main()
        rows = [r for r in no_nan(out.read_text())["rows"] if "n_fake" in r and (
            name == "map_pairs" or r.get("level") == "pixel")]
        assert rows and {r["fakes"] for r in rows} == {"box"}, rows


def test_pixel_family_refuses_recon_and_vq_refuses_the_watermark(vq, tiny_checkpoint,
                                                                 tmp_path):
    root, _ = vq
    with pytest.raises(InputError, match="recon"):
        generate_dataset(tmp_path / "a", 3, model=tiny_checkpoint, masks="recon")
    with pytest.raises(InputError, match="pixel-family generators only"):
        generate_dataset(tmp_path / "b", 3, model=root / "gen", watermark_key=b"k" * 32)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_nll_and_complete_commands_take_a_vq_checkpoint(vq, tmp_path):
    root, _ = vq
    img = tmp_path / "photo.png"
    Image.fromarray(load_patches("builtin", 1, size=16, seed=3)[0]).save(img)
    r = runner.invoke(app, ["nll", str(img), "--model", str(root / "gen"), "--json", "-"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output)["rows"][0]
    assert json.loads(r.output)["family"] == "vq"
    assert row["bits_per_pixel"] == pytest.approx(row["bits_per_token"] / 16)
    r = runner.invoke(app, ["complete", str(img), "--model", str(root / "gen"), "--samples",
                            "2", "--out", str(tmp_path / "grid.png"), "--save-dir",
                            str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert "re-synthesised every pixel" in " ".join(r.output.split())
    from igpt_forensics.stamp import read_stamp

    _, rec = read_stamp(next((tmp_path / "c").iterdir()).read_bytes())
    assert rec["family"] == "vq" and rec["tokenizer_sha256"] and rec["palette_sha256"] is None
    # recon draws nothing: one reconstruction, however many samples were asked for
    r = runner.invoke(app, ["complete", str(img), "--model", str(root / "gen"), "--mask",
                            "recon", "--out", str(tmp_path / "recon.png"), "--save-dir",
                            str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "r").iterdir())) == 1
    text = " ".join(r.output.split())
    assert "one reconstruction per image instead of 4" in text and "nothing drawn" in text


def test_bundled_names_resolve_or_say_what_is_missing(monkeypatch, tmp_path):
    import igpt_forensics.generators.checkpoint as ck

    assert resolve_model("pixel-default") == resolve_model(None) == ck.DEFAULT_MODEL
    monkeypatch.setitem(ck.GENERATOR_NAMES, "vq-default", tmp_path / "absent")
    with pytest.raises(InputError, match="'vq-default' is not installed"):
        resolve_model("vq-default")
    assert resolve_model("./vq-default").name == "vq-default"  # a folder of that name


def test_code_likelihood_detector_scores_and_maps_at_pixel_size(vq):
    from igpt_forensics.detectors.likelihood import LikelihoodDetector

    root, _ = vq
    real = load_patches("builtin", 24, size=16, seed=5, split="train")
    det = LikelihoodDetector(model=str(root / "gen"), n_samples=24, window=2)
    det.fit(real)
    assert det.grid == 4 and det.image_size == 16 and det.n_colors_ == 32
    scores, loc = det.score_and_localize(list(real[:3]) + [np.zeros((40, 24, 3), np.uint8)])
    assert np.isfinite(scores).all() and len(scores) == 4
    assert loc.maps[0].shape == (16, 16) and loc.maps[3].shape == (40, 24)
    # a map is constant on each code's 4x4 cell before tiles are assembled
    m = loc.maps[0]
    assert np.allclose(m[:4, :4], m[0, 0])
    with pytest.raises(InputError, match="at least 4 real images"):
        det.fit(real[:2])
