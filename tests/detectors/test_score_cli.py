"""``igpt-forensics calibrate`` and ``score`` through typer's CliRunner."""

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from igpt_forensics.cli import app
from igpt_forensics.data import load_patches
from igpt_forensics.files import sha256_file

runner = CliRunner()


@pytest.fixture(scope="module")
def calibrated(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "det"
    r = runner.invoke(app, ["calibrate", "--model", str(tiny_checkpoint), "--n", "120",
                            "--samples", "64", "--sampling", "temperature=1",
                            "--sampling", "top_k=4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "AUC" in r.output and "threshold" in r.output
    assert "thresholds from 2048 real patches of the train photos" in r.output
    return out


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    patches = load_patches("builtin", 3, size=20, seed=3, split="heldout")
    Image.fromarray(patches[0]).save(d / "a.png")
    Image.fromarray(patches[1][:13]).save(d / "sub" / "b.png")  # 13x20, recursed into
    Image.fromarray(patches[2][:6, :5]).save(d / "c.jpg")  # smaller than the model
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return d


def test_calibrate_writes_a_detector_with_checkable_hashes(calibrated):
    lines = (calibrated / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == ["detector.json"]
    for line in lines:
        digest, name = line.split("  ")
        assert sha256_file(calibrated / name) == digest
    meta = json.loads((calibrated / "detector.json").read_text())
    assert meta["kind"] == "likelihood" and meta["state"]["fit_info_"]["self_drawn"] == 64
    # thresholds from 2048 patches of the train photos (the fit: 120 of the val photos)
    info = meta["state"]["fit_info_"]
    assert (info["threshold_split"], info["threshold_real"], info["split"]) == ("train", 2048,
                                                                               "val")


def test_score_table_json_and_maps(calibrated, folder, tmp_path):
    out, maps = tmp_path / "scores.json", tmp_path / "maps"
    r = runner.invoke(app, ["score", str(folder), "--detector", str(calibrated),
                            "--json", str(out), "--maps", str(maps)])
    assert r.exit_code == 0, r.output
    assert "a.png" in r.output and "b.png" in r.output and "higher = more likely" in r.output
    assert "skipped 1 file" in r.output and "broken.png" in r.output  # reported, not dropped
    doc = json.loads(out.read_text())
    rows = {row["path"].rsplit("/", 1)[1]: row for row in doc["rows"]}
    assert set(rows) == {"a.png", "b.png", "c.jpg"}
    assert all(isinstance(row["score"], float) for row in rows.values())
    assert all(row["verdict"] in ("synthetic", "region", "real") for row in rows.values())
    assert doc["score"] == "higher = more likely synthetic" and len(doc["skipped"]) == 1
    for name, (h, w) in {"a": (20, 20), "b": (13, 20), "c": (6, 5)}.items():
        raw = Image.open(maps / f"{name}.map.png")
        assert raw.size == (w, h) and raw.mode.startswith("I")  # 16-bit grayscale
        heat = np.asarray(raw, dtype=np.float64) / 65535.0
        assert 0.0 <= heat.min() and heat.max() <= 1.0
        row = rows[f"{name}.{'jpg' if name == 'c' else 'png'}"]
        assert 0.0 <= row["region_fraction"] <= 1.0
        # region boxes: the mask's parts, inside the image; none for a real verdict
        assert (row["boxes"] == []) == (row["verdict"] == "real")
        for x0, y0, x1, y1 in row["boxes"]:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        overlay = np.asarray(Image.open(maps / f"{name}.overlay.png"))
        assert overlay.shape == (h, w, 3) and overlay.dtype == np.uint8


def test_score_csv_and_the_same_scores_as_json(calibrated, folder, tmp_path):
    r1 = runner.invoke(app, ["score", str(folder / "a.png"), str(folder / "sub"),
                             "--detector", str(calibrated), "--csv", str(tmp_path / "s.csv")])
    r2 = runner.invoke(app, ["score", str(folder / "a.png"), str(folder / "sub"),
                             "--detector", str(calibrated), "--json", str(tmp_path / "s.json")])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    with open(tmp_path / "s.csv") as f:
        rows = list(csv.DictReader(f))
    js = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert [r["path"] for r in rows] == [r["path"] for r in js]
    assert [float(r["score"]) for r in rows] == [r["score"] for r in js]
    assert [json.loads(r["boxes"]) for r in rows] == [r["boxes"] for r in js]


def test_score_with_a_model_calibrates_for_it_first(tiny_checkpoint, folder):
    r = runner.invoke(app, ["score", str(folder / "a.png"), "--model", str(tiny_checkpoint)])
    assert r.exit_code == 0, r.output
    assert "a.png" in r.output and "likelihood detector" in r.output  # not the default cnn


def test_score_user_mistakes_are_one_red_line(calibrated, folder, tmp_path):
    cases = [
        ["score", str(folder / "broken.png"), "--detector", str(calibrated)],  # nothing left
        ["score", str(tmp_path / "nowhere"), "--detector", str(calibrated)],
        ["score", str(folder), "--detector", "crystal-ball"],
        ["score", str(folder), "--detector", str(calibrated), "--csv", "x.csv", "--json",
         "x.json"],
        ["calibrate", "--detector", "crystal-ball", "--out", str(tmp_path / "x")],
    ]
    for args in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 1, (args, r.output)
        assert "Traceback" not in r.output
        errors = [line for line in r.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, (args, r.output)


def test_score_caps_pixels_and_warns_about_tiny_images(calibrated, tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "tiny.png")
    Image.fromarray(np.zeros((100, 300, 3), np.uint8)).save(tmp_path / "wide.png")
    r = runner.invoke(app, ["score", str(tmp_path / "tiny.png"), str(tmp_path / "wide.png"),
                            "--detector", str(calibrated), "--max-pixels", "1000"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "tiny.png: only 8x8 pixels" in text
    assert "wide.png: image too large (300x100 pixels, limit 1000) (--max-pixels)" in text


def test_one_verdict_rule_never_contradicts_its_region():
    from igpt_forensics.detectors.base import Localization

    masks = [np.ones((4, 4), bool), np.zeros((4, 4), bool), np.eye(4, dtype=bool),
             np.ones((4, 4), bool)]
    loc = Localization(maps=[m.astype(np.float32) for m in masks], masks=masks,
                       region_scores=np.array([3.0, 0.0, 2.0, 0.1]),
                       region_flags=np.array([True, False, True, False]))
    verdicts, shares = loc.verdicts(np.array([5.0, -10.0, -1.0, 0.0]), threshold=1.0)
    assert verdicts == ["synthetic", "real", "region", "real"]
    # a real verdict reports no region, even where the map's mask covers the image
    assert shares.tolist() == [1.0, 0.0, 0.25, 0.0]


def test_the_shipped_cnn_is_checked_says_what_trained_it_and_finds_vq_reconstructions():
    from igpt_forensics.detectors.base import create_detector
    from igpt_forensics.detectors.cnn import CNNDetector
    from igpt_forensics.generators.checkpoint import load_checkpoint
    from sklearn.metrics import roc_auc_score

    folder = CNNDetector.default_asset
    sums = (folder / "SHA256SUMS").read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in sums if line.strip())
    assert set(listed) == {"detector.json", "arrays.safetensors"}
    for name, digest in listed.items():
        assert sha256_file(folder / name) == digest, name
    det = create_detector("cnn", pretrained=True)
    gens = {name: load_checkpoint(name)[2]["sha256"] for name in ("pixel-default", "vq-default")}
    trained = det.fit_info_["trained_on"]
    made_by = {(x["family"], x["generator_sha256"]) for x in trained}
    assert {("pixel", gens["pixel-default"]), ("vq", gens["vq-default"])} <= made_by
    # the pool of 11 generators: the bundled two and nine more (make pool-all)
    assert {f for f, _ in made_by} == {"pixel", "vq"} and len(made_by) == 11
    assert len(trained) == 12 and det.inputs == "npr" and det.maps == "relative"
    # held-out photos against their encode + decode by the bundled VQ generator ("recon")
    photos = load_patches("builtin", 48, size=32, seed=0, split="test")
    codec = load_checkpoint("vq-default")[1]
    fakes = codec.quantize(photos)
    scores = det.score(list(photos) + list(fakes))
    auc = roc_auc_score(np.r_[np.zeros(48), np.ones(48)], scores)
    assert auc > 0.75, auc  # measured 0.90 on the default study's test split


def test_json_on_stdout_keeps_the_skipped_files_and_the_timing_on_stderr(folder):
    r = runner.invoke(app, ["score", str(folder), "--json", "-"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # stdout: the JSON alone
    assert len(doc["rows"]) == 3 and len(doc["skipped"]) == 1
    err = " ".join(r.stderr.split())
    assert "skipped 1 file:" in err and "broken.png" in err and "3 images in" in err


def test_the_shipped_fusion_scores_with_six_cnns_and_maps_with_the_third_a_seventh_and_an_eighth():
    from igpt_forensics.detectors.base import create_detector
    from igpt_forensics.detectors.cnn import CNNDetector
    from igpt_forensics.detectors.fusion import FusionDetector
    from igpt_forensics.generators.checkpoint import load_checkpoint
    from sklearn.metrics import roc_auc_score

    folder = FusionDetector.default_asset
    det = create_detector("fusion", pretrained=True)
    assert (folder / "SHA256SUMS").read_text().split() == [
        sha256_file(folder / "detector.json"), "detector.json"]  # it holds the members' hashes
    cnn = create_detector("cnn", pretrained=True)
    members = det.members_
    assert len(members) == 8 and all(isinstance(m, CNNDetector) for m in members)
    # the first member is the shipped cnn itself, the second its recipe at seed 1, the third
    # and fourth its recipe with the dense loss on relative maps at seeds 0 and 1 (all four on
    # the pool of 12 datasets), the fifth and sixth its recipe on the photo pool (five
    # datasets, three of them made over 28 photos) and the bundled generator's box
    # completions (since 2026-12-06, late night) at seeds 0 and 1; the seventh the map recipe
    # with full-resolution context layers on those six and a second pixel-GPT's box
    # completions, for maps alone, and the eighth the same at seed 1 (since 2026-12-07)
    assert members[0].describe() == cnn.describe()
    assert [m.seed for m in members] == [0, 1, 0, 1, 0, 1, 0, 1]
    assert [m.relative_weight for m in members] == [0, 0, 1, 1, 0, 0, 1, 1]
    assert [m.context for m in members] == [0, 0, 0, 0, 0, 0, 3, 3]
    for m in members[:6]:
        assert m.inputs == "npr" and m.size_calibration_ is not None
    for m in members[6:]:  # not calibrated by size: their maps do not depend on it
        assert m.inputs == "npr" and m.size_calibration_ is None
    assert [len(m.fit_info_["trained_on"]) for m in members] == [12, 12, 12, 12, 6, 6, 7, 7]
    assert members[6].fit_info_["trained_on"] == members[7].fit_info_["trained_on"]
    for m in members[4:]:
        trained_on = m.fit_info_["trained_on"]
        assert [d["dataset"] for d in trained_on] == [
            "t1", "topp09", "vq", "vqc", "prev", "box", "prevbox"][:len(trained_on)]
        # boxes alone: the bundled pixel-GPT's (t1's generator), then prev's (the last two)
        for box, source in zip(trained_on[5:], (trained_on[0], trained_on[4])):
            assert box["masks"] == ["box"]
            assert box["generator_sha256"] == source["generator_sha256"]
    # like members, averaged: the six's mean z-score (a fitted regression weighs them by
    # noise); the last two do not score
    assert det.combine == "mean" and det.model_.coef.tolist() == [1 / 6] * 6
    assert det.score_members == [0, 1, 2, 3, 4, 5]
    # the third and the last two draw the maps, the third alone votes masks and region flags
    assert det.map_members == [2, 6, 7]
    np.testing.assert_allclose(det.map_weights_, [0, 0, 1 / 3, 0, 0, 0, 1 / 3, 1 / 3])
    assert det.mask_members == [2] and det.mask_weights_ == [0, 0, 1, 0, 0, 0, 0, 0]
    photos = load_patches("builtin", 48, size=32, seed=0, split="test")
    fakes = load_checkpoint("vq-default")[1].quantize(photos)
    scores, loc = det.score_and_localize(list(photos) + list(fakes))
    auc = roc_auc_score(np.r_[np.zeros(48), np.ones(48)], scores)
    assert auc > 0.75, auc
    third, seventh, eighth = (members[i].localize(list(fakes[:4])) for i in (2, 6, 7))
    np.testing.assert_array_equal(np.stack(loc.masks[48:52]), np.stack(third.masks))
    mean = sum(np.stack(m.maps).astype(np.float64) for m in (third, seventh, eighth)) / 3
    np.testing.assert_allclose(np.stack(loc.maps[48:52]), np.clip(mean, 0, 1), atol=1e-6)
    assert not np.allclose(seventh.maps, eighth.maps, atol=0.05)  # two trainings, not one
    # its own thresholds per side, from calibrate's crops: real test crops through palettes
    # it never saw stay under them (with its 32x32 val threshold alone: 38% at 32 px and 69%
    # at 128 px of these)
    from igpt_forensics.detectors.cnn import palette_views

    from igpt_forensics.data import ImageSource, real_views
    from igpt_forensics.palette import Palette

    assert det.size_calibration_["sides"] == [32, 64, 128, 256]
    crops = real_views(ImageSource("builtin"), (32, 128), per_photo=8, seed=1, split="test")
    for side, ims in crops.items():
        views = palette_views(ims, [Palette.fit(np.stack(ims), k, seed=1) for k in (24, 96)])
        assert not (det.score(views) > det.threshold_).any(), side


def test_score_uses_the_shipped_fusion_by_default(folder):
    r = runner.invoke(app, ["score", str(folder / "a.png"), "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["detector"]["kind"] == "fusion"


def test_a_large_photo_shows_its_tiles_progress(calibrated, tmp_path):
    from igpt_forensics.detectors.base import load_detector

    photo = load_patches("builtin", 1, size=256, seed=0, split="test")[0]
    big = np.concatenate([photo, photo[:, ::-1]], axis=1)  # 256x512: 2048 tiles of 8x8
    Image.fromarray(big).save(tmp_path / "big.png")
    calls = []
    det = load_detector(calibrated)
    det.score_and_localize([big], progress=lambda n, total: calls.append((n, total)))
    assert sum(n for n, _ in calls) == 2048 and {t for _, t in calls} == {2048}
    assert len(calls) > 1  # in chunks, so a bar moves
    r = runner.invoke(app, ["score", str(tmp_path / "big.png"), "--detector", str(calibrated)])
    assert r.exit_code == 0, r.output
    assert "tiles: 2048/2048 tiles (100%)" in " ".join(r.output.split())
