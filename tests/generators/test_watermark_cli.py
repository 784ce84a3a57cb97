"""The keyed watermark through the sampler and the commands: no watermark draws the same
tokens as before, the sampler and the verifier agree on every green list, a watermarked sample
is found and an unwatermarked one, real patches and a wrong key are not, every generated PNG
carries its record and one changed pixel makes it "tampered", a synthesized box in a real photo
is caught in the box, and bad inputs are one-line errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from igpt_forensics.generators.checkpoint import load_checkpoint
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from igpt_forensics import provenance as pv
from igpt_forensics import stamp
from igpt_forensics.cli import app
from igpt_forensics.data import ImageSource, sample_patches
from igpt_forensics.watermark import ALPHA, WatermarkKey, key_fingerprint

KEY = b"0123456789abcdef-test-key"
# The tiny 8x8, 16-color test model is nearly deterministic in many pixels, and 64 pixels
# make few trials: it needs a stronger bias than the default 2 for a sure detection.
TINY_DELTA = 4.0
runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint):
    return Path(tiny_checkpoint)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "key.bin"
    path.write_bytes(KEY)
    return path


def draw(net, n, seeds, watermark=None, known=None, mask=None, use_cache=True):
    N = net.config.n_positions
    known = torch.zeros(n, N, dtype=torch.long) if known is None else known
    mask = torch.ones(n, N, dtype=torch.bool) if mask is None else mask
    return net.sample(known, mask, seeds, watermark=watermark, use_cache=use_cache).numpy()


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


# -- the sampler ------------------------------------------------------------------------------


def test_no_watermark_and_zero_delta_draw_the_same_tokens(ckpt):
    net, palette, _ = load_checkpoint(ckpt)
    seeds = [11, 12, 13, 14]
    plain = draw(net, 4, seeds)
    assert np.array_equal(plain, draw(net, 4, seeds, WatermarkKey(KEY, palette, delta=0.0)))
    assert not np.array_equal(plain, draw(net, 4, seeds, WatermarkKey(KEY, palette)))


def test_sampler_and_verifier_agree_on_every_green_list(ckpt):
    # With a huge delta every drawn pixel is green (if its context has a green color), so any
    # disagreement on position, context or group between sampling and verifying shows up.
    net, palette, _ = load_checkpoint(ckpt)
    key = WatermarkKey(KEY, palette, delta=40.0)
    real, _ = sample_patches(ImageSource("builtin"), 3, 8, seed=4, split="test")
    known = torch.from_numpy(palette.encode(real))
    mask = torch.zeros(3, 64, dtype=torch.bool)
    mask[0, 20:] = True  # a completion
    mask[1, :] = True  # a full image
    mask[2].view(8, 8)[2:6, 1:5] = True  # a box: forced known pixels after drawn ones
    out = draw(net, 3, [1, 2, 3], key, known, mask)
    assert np.array_equal(out, draw(net, 3, [1, 2, 3], key, known, mask, use_cache=False))
    for tokens, m in zip(out, mask.numpy()):
        tokens = tokens.reshape(8, 8)
        ctx, _ = key._cells(tokens)
        has_green = key.green_table[key._positions(8, 8), ctx].any(-1)
        _, green = key.trials(tokens)
        m = m.reshape(8, 8) & has_green
        assert green[m].all()


def test_watermarked_tiny_samples_are_detected_and_others_are_not(ckpt):
    net, palette, _ = load_checkpoint(ckpt)
    key = WatermarkKey(KEY, palette, delta=TINY_DELTA)
    wrong = WatermarkKey(b"not the key", palette, delta=TINY_DELTA)
    seeds = list(range(100, 108))
    marked = draw(net, 8, seeds, key).reshape(8, 8, 8)
    z = [key.score_tokens(t).z for t in marked]
    assert sum(v > 4 for v in z) >= 7, z  # 1 in 40 samples escapes in our runs (see README)
    assert not any(wrong.verify_tokens(t).detected for t in marked)
    plain = draw(net, 8, seeds).reshape(8, 8, 8)
    assert not any(key.verify_tokens(t).detected for t in plain)
    real, _ = sample_patches(ImageSource("builtin"), 60, 8, seed=9, split="test")
    for image in (*real, *palette.quantize(real)):
        v = key.verify(image)
        assert not v.detected, v.to_dict()


# -- the commands -----------------------------------------------------------------------------


def verify_json(*args) -> dict:
    r = runner.invoke(app, ["verify", *map(str, args), "--json", "-"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout[r.stdout.index("{"):])


def test_generate_stamps_every_png_and_verify_finds_the_mark(ckpt, key_file, tmp_path):
    args = ["generate", "--model", str(ckpt), "--n", "6", "--masks", "full", "--seed", "3",
            "--watermark-key-file", str(key_file), "--watermark-delta", str(TINY_DELTA)]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "ds")])
    assert r.exit_code == 0, r.output
    assert f"watermark: key {key_fingerprint(KEY)[:12]}" in r.output
    ds = tmp_path / "ds"
    records = list(pv.read_manifest(ds / pv.MANIFEST))
    for rec in records:
        data = (ds / rec["path"]).read_bytes()
        _, in_png = stamp.read_stamp(data)
        assert in_png == {**rec, "sha256": None}  # the file's own hash cannot be inside it
        want = key_fingerprint(KEY) if rec["form"] == "fake" else None
        assert (rec["watermark"] or {}).get("key_sha256") == want
    for f in (ds / pv.MANIFEST, ds / pv.INFO):
        assert KEY not in f.read_bytes()
    assert pv.read_info(ds)["settings"]["watermark"]["key_sha256"] == key_fingerprint(KEY)

    out = verify_json(ds / "images", "--watermark-key-file", key_file, "--model", ckpt)
    rows = {Path(r["path"]).name: r for r in out["rows"]}
    assert len(rows) == 6 * 4  # real, qreal, fake, mask
    assert all(r["metadata"]["status"] == "intact" for n, r in rows.items() if "mask" not in n)
    fakes = [r["watermark"]["detected"] for n, r in rows.items() if n.endswith("-fake.png")]
    reals = [r["watermark"]["detected"] for n, r in rows.items() if "real" in n]
    assert sum(fakes) >= 5 and not any(reals), (fakes, reals)

    # one pixel changed, the stamp kept: tampered; the stamp stripped: missing
    fake = ds / records[2]["path"]
    pixels = np.asarray(Image.open(fake)).copy()
    pixels[0, 0, 0] ^= 1
    info = PngInfo()
    info.add_text(stamp.TEXT_KEY, Image.open(fake).text[stamp.TEXT_KEY])
    Image.fromarray(pixels).save(tmp_path / "edited.png", pnginfo=info)
    Image.open(fake).save(tmp_path / "stripped.png")
    out = verify_json(tmp_path / "edited.png", tmp_path / "stripped.png")
    assert [r["metadata"]["status"] for r in out["rows"]] == ["tampered", "missing"]
    assert out["rows"][0]["watermark"] is None  # no key: stamps only

    # the same command makes the same bytes; another key is another dataset
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "again")])
    assert r.exit_code == 0, r.output
    for rec in records:
        assert (tmp_path / "again" / rec["path"]).read_bytes() == (ds / rec["path"]).read_bytes()
    (tmp_path / "other.key").write_bytes(b"another secret key, 32 bytes ok")
    r = runner.invoke(app, [*args[:-4], "--watermark-key-file", str(tmp_path / "other.key"),
                            "--watermark-delta", str(TINY_DELTA), "--out", str(ds)])
    assert "different settings" in one_line_error(r) and "watermark" in r.output


def test_a_box_completed_in_a_real_photo_is_caught_in_the_box(key_file, tmp_path):
    # The bundled 32x32 model at the default gamma and delta: 256 synthesized pixels of 1024.
    photo, _ = sample_patches(ImageSource("builtin"), 1, 32, seed=21, split="test")
    Image.fromarray(photo[0]).save(tmp_path / "photo.png")
    r = runner.invoke(app, ["complete", str(tmp_path / "photo.png"), "--mask", "box:4,12,16,16",
                            "--samples", "1", "--device", "cpu", "--out",
                            str(tmp_path / "grid.png"), "--save-dir", str(tmp_path / "out"),
                            "--watermark-key-file", str(key_file)])
    assert r.exit_code == 0, r.output
    (done,) = (tmp_path / "out").iterdir()
    box = np.zeros((32, 32), bool)
    box[4:20, 12:28] = True
    # strip the stamp (which records the mask): the region scan must find the box alone
    Image.open(done).save(tmp_path / "bare.png")
    out = verify_json(done, tmp_path / "bare.png", tmp_path / "photo.png", tmp_path / "grid.png",
                      "--watermark-key-file", key_file)
    stamped, bare, real, grid = out["rows"]
    assert stamped["metadata"]["status"] == "intact"
    assert stamped["watermark"]["mask"]["p"] < ALPHA  # tested inside the recorded mask
    assert bare["metadata"]["status"] == "missing" and bare["watermark"]["mask"] is None
    regions = bare["watermark"]["regions"]
    assert regions["detected"], regions
    t, left, h, w = regions["best"]["box"]
    assert box[t:t + h, left:left + w].mean() >= 0.5
    assert not real["watermark"]["detected"]
    assert grid["metadata"]["status"] == "intact"  # the figure is stamped too


def test_bad_inputs_are_one_line_errors_and_bad_files_are_skipped(ckpt, key_file, tmp_path):
    missing, empty = tmp_path / "missing.key", tmp_path / "empty.key"
    empty.write_bytes(b"")
    photo = tmp_path / "photos" / "ok.png"
    photo.parent.mkdir()
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(photo)
    for args, message in (
            (["generate", "--model", str(ckpt), "--n", "1", "--out", str(tmp_path / "ds"),
              "--watermark-key-file", str(missing)], "no such watermark key file"),
            (["complete", str(photo), "--model", str(ckpt), "--out", str(tmp_path / "g.png"),
              "--watermark-key-file", str(empty)], "empty watermark key file"),
            (["verify", str(photo), "--watermark-key-file", str(missing)],
             "no such watermark key file"),
            (["generate", "--model", str(ckpt), "--n", "1", "--out", str(tmp_path / "ds"),
              "--watermark-key-file", str(key_file), "--watermark-gamma", "1.5"],
             "--watermark-gamma must be in [0.01, 0.99]")):
        assert message in one_line_error(runner.invoke(app, args))
    assert not (tmp_path / "ds").exists()
    (photo.parent / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (photo.parent / "empty.png").write_bytes(b"")
    args = ["verify", str(photo.parent), str(tmp_path / "nothere.png"),
            "--watermark-key-file", str(key_file), "--model", str(ckpt)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "skipped 3 files" in r.output and "Traceback" not in r.output
    out = verify_json(*args[1:])
    assert [Path(row["path"]).name for row in out["rows"]] == ["ok.png"]
    assert not out["rows"][0]["watermark"]["detected"]
    assert sorted(Path(line.split(":")[0]).name for line in out["skipped"]) == [
        "broken.png", "empty.png", "nothere.png"]
    r = runner.invoke(app, ["verify", str(photo.parent / "broken.png")])
    assert r.exit_code == 1 and "no readable images" in r.output


def test_verify_without_a_key_says_what_the_stamp_claims():
    from igpt_forensics.assets import ASSETS

    files = [ASSETS / "examples" / n for n in ("completion.png", "photo.png")]
    r = runner.invoke(app, ["verify", *map(str, files)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    verdicts = [ln.split("│")[-2].strip() for ln in r.output.splitlines() if "│" in ln]
    assert verdicts == ["stamped: completion", "no stamp"], r.output
