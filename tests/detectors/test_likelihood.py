"""The zero-shot likelihood detector on a tiny trained pixel-GPT (8x8 images, 16 colors)."""

import hashlib
import json

import numpy as np
import pytest
import torch
from igpt_forensics.detectors.base import (
    ARRAYS_FILE,
    META_FILE,
    Detector,
    calibrate_threshold,
    check_images,
    create_detector,
    list_detectors,
    load_detector,
    open_detector,
    register_detector,
)
from igpt_forensics.detectors.likelihood import (
    DEFAULT_CALIBRATION,
    IMAGE_FEATURES,
    LikelihoodDetector,
    parse_sampling,
)
from igpt_forensics.detectors.tiles import tile_image
from igpt_forensics.generators.checkpoint import (
    DEFAULT_MODEL,
    load_checkpoint,
    resolve_model,
    save_checkpoint,
)
from igpt_forensics.generators.model import create_model
from sklearn.metrics import roc_auc_score

from igpt_forensics.data import load_patches
from igpt_forensics.errors import InputError
from igpt_forensics.files import sha256_file

S = 8
SAMPLING = ("temperature=1", "temperature=0.9", "top_k=4", "top_p=0.9")  # 16 colors: k=4


@pytest.fixture(scope="module")
def scorer(tiny_checkpoint):
    model, palette, _ = load_checkpoint(tiny_checkpoint)
    return model, palette


def draw(scorer, n, seed, mask=None, known=None, **cfg):
    """n images the model draws itself (mask: (S, S) bool, default all)."""
    model, palette = scorer
    mask = np.ones((S, S), bool) if mask is None else mask
    known = torch.zeros(n, S * S, dtype=torch.long) if known is None else known
    flat = torch.from_numpy(np.broadcast_to(mask.ravel(), (n, S * S)).copy())
    seeds = np.arange(n) + 10_000 * seed
    return palette.decode(model.sample(known, flat, seeds, **cfg).numpy())


@pytest.fixture(scope="module")
def fitted(tiny_checkpoint):
    real = load_patches("builtin", 240, size=S, seed=1, split="heldout")
    det = LikelihoodDetector(model=str(tiny_checkpoint), sampling=SAMPLING, n_samples=160,
                             batch_size=256)
    assert det.fit(real) is det
    return det


@pytest.fixture(scope="module")
def real_test():
    # same held-out photos as the fit, other crops (seed): no patch is shared
    return load_patches("builtin", 150, size=S, seed=2, split="heldout")


# -- the statistics ---------------------------------------------------------------------------

def test_z_of_the_models_own_samples_is_close_to_standard_normal(fitted, scorer):
    z = fitted.image_statistics(draw(scorer, 300, seed=1))["z"]
    assert abs(z.mean()) < 0.3, z.mean()
    assert 0.7 < z.std() < 1.5, z.std()


def test_truncated_sampling_has_a_negative_gap(fitted, scorer):
    own = fitted.image_statistics(draw(scorer, 150, seed=2))["gap_mean"]
    for cfg in (dict(top_k=4), dict(top_p=0.9), dict(temperature=0.8)):
        gap = fitted.image_statistics(draw(scorer, 150, seed=3, **cfg))["gap_mean"]
        assert gap.mean() < 0, (cfg, gap.mean())
        assert gap.mean() < own.mean() - 0.03, (cfg, gap.mean(), own.mean())


def test_statistics_match_a_direct_computation(fitted, scorer, real_test):
    model, palette = scorer
    st = model.token_stats(torch.from_numpy(palette.encode(real_test[:5])))
    gap = (st["nll"] - st["entropy"]).double()
    z = gap.sum(1) / st["var"].double().sum(1).sqrt()
    ours = fitted.image_statistics(real_test[:5])
    np.testing.assert_allclose(ours["z"], z.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours["gap_mean"], gap.mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours["nll_mean"], st["nll"].double().mean(1).numpy(), rtol=1e-6)
    assert set(ours) == set(IMAGE_FEATURES)


# -- the detector -----------------------------------------------------------------------------

def test_detector_separates_heldout_real_patches_from_the_models_samples(fitted, scorer,
                                                                          real_test):
    fakes = np.concatenate([draw(scorer, 40, seed=4 + i, **parse_sampling(s))
                            for i, s in enumerate(SAMPLING)])
    scores = fitted.score(np.concatenate([real_test, fakes]))
    labels = np.r_[np.zeros(len(real_test)), np.ones(len(fakes))]
    auc = roc_auc_score(labels, scores)
    assert auc > 0.7, auc
    # the threshold, calibrated on ~80 held-back real patches (1% target: their maximum),
    # keeps false positives low on other crops
    assert np.mean(fitted.score(real_test) > fitted.threshold_) < 0.1


def test_threshold_images_set_the_thresholds_and_leave_the_models_alone(fitted,
                                                                          tiny_checkpoint,
                                                                          real_test):
    """fit(threshold_images=...): the models are the ones fitted without them (same seed,
    same bytes), and the thresholds are those of the threshold images through score() and
    localize(): what calibrate does with the train photos' patches."""
    real = load_patches("builtin", 240, size=S, seed=1, split="heldout")
    other = load_patches("builtin", 300, size=S, seed=5, split="train")
    det = LikelihoodDetector(model=str(tiny_checkpoint), sampling=SAMPLING, n_samples=160,
                             batch_size=256).fit(real, threshold_images=other)
    np.testing.assert_allclose(det.score(real_test), fitted.score(real_test), atol=1e-9)
    assert det.fit_info_["threshold_real"] == 300 and fitted.fit_info_["threshold_real"] == 80
    assert det.fit_info_["held_back_auc"] == fitted.fit_info_["held_back_auc"]  # val reals
    assert det.fit_info_["threshold_real_auc"] != det.fit_info_["held_back_auc"]
    scores, loc = det.score_and_localize(other)
    assert det.threshold_ == pytest.approx(calibrate_threshold(scores, det.target_fpr))
    assert det.threshold_ != pytest.approx(fitted.threshold_)
    assert det.map_threshold_ == pytest.approx(float(np.quantile(
        np.concatenate([m.ravel() for m in loc.maps]), 1 - det.map_fpr, method="higher")))
    assert det.region_threshold_ == pytest.approx(calibrate_threshold(loc.region_scores,
                                                                      det.target_fpr))


def test_map_of_a_top_half_fake_is_higher_on_the_synthesized_half(fitted, scorer, real_test):
    model, palette = scorer
    mask = np.zeros((S, S), bool)
    mask[S // 2:] = True
    known = torch.from_numpy(palette.encode(real_test[:80]))
    fakes = draw(scorer, 80, seed=6, mask=mask, known=known)
    scores, loc = fitted.score_and_localize(fakes)
    maps = loc.maps
    assert maps.shape == (80, S, S) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    assert loc.masks.dtype == bool and loc.masks.shape == maps.shape
    bottom, top = maps[:, S // 2:].mean((1, 2)), maps[:, : S // 2].mean((1, 2))
    assert bottom.mean() > top.mean() + 0.02, (bottom.mean(), top.mean())
    assert np.mean(bottom > top) > 0.6
    assert roc_auc_score(np.broadcast_to(mask, maps.shape).ravel(), maps.ravel()) > 0.55
    # the strongest window is stronger in half fakes than in real images
    real_loc = fitted.localize(real_test)
    assert loc.region_scores.shape == (80,) and loc.region_flags.dtype == bool
    assert loc.region_scores.mean() > real_loc.region_scores.mean()


def test_save_and_load_give_identical_scores_and_maps(fitted, tmp_path, real_test):
    fitted.save(tmp_path / "det")
    assert sorted(p.name for p in (tmp_path / "det").iterdir()) == ["SHA256SUMS", META_FILE]
    meta = json.loads((tmp_path / "det" / META_FILE).read_text())
    assert meta["kind"] == "likelihood" and meta["score"] == "higher = more likely synthetic"
    again = load_detector(tmp_path / "det")
    assert isinstance(again, LikelihoodDetector) and again.get_params() == {
        k: list(v) if isinstance(v, tuple) else v for k, v in fitted.get_params().items()}
    a, la = fitted.score_and_localize(real_test[:20])
    b, lb = again.score_and_localize(real_test[:20])
    assert np.array_equal(a, b)
    assert np.array_equal(la.maps, lb.maps) and np.array_equal(la.region_scores, lb.region_scores)
    assert again.threshold_ == fitted.threshold_


def test_loading_refuses_another_scoring_model(fitted, tmp_path, scorer, real_test):
    fitted.save(tmp_path / "det")
    other = create_model("tiny", vocab_size=16, image_size=S)
    save_checkpoint(other, scorer[1], tmp_path / "other")
    det = load_detector(tmp_path / "det", model=str(tmp_path / "other"))
    with pytest.raises(InputError, match="fitted for a scoring model"):
        det.score(real_test[:2])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / META_FILE).write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="not a igpt-forensics-detector"):
        load_detector(tmp_path / "bad")
    with pytest.raises(InputError, match="no parameters"):
        load_detector(tmp_path / "det", colour="red")


def test_tiling_returns_maps_at_each_images_own_size(fitted, scorer):
    rng = np.random.default_rng(0)
    sizes = [(5, 7), (8, 8), (13, 21), (30, 17), (8, 40)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    for tiling in ("tile", "resize"):
        det = load_detector_like(fitted, tiling=tiling)
        scores, loc = det.score_and_localize(images)
        assert isinstance(loc.maps, list) and scores.shape == (len(sizes),)
        for m, k, (h, w) in zip(loc.maps, loc.masks, sizes):
            assert m.shape == (h, w) and k.shape == (h, w) and m.dtype == np.float32
            assert 0.0 <= m.min() and m.max() <= 1.0
    # a mosaic of 2x2 fakes, tiled: its score is the mean of its tiles' scores, and its map
    # is the tiles' maps side by side
    fakes = draw(scorer, 4, seed=7)
    mosaic = np.concatenate([np.concatenate(fakes[:2], axis=1),
                             np.concatenate(fakes[2:], axis=1)], axis=0)
    s, loc = fitted.score_and_localize([mosaic])
    tiles, tile_loc = fitted.score_and_localize(fakes)
    assert s[0] == pytest.approx(tiles.mean(), rel=1e-9)
    np.testing.assert_allclose(loc.maps[0][:S, S:], tile_loc.maps[1], atol=1e-6)
    assert loc.region_scores[0] == pytest.approx(tile_loc.region_scores.max())


def test_chunked_scoring_of_many_tiles_equals_one_pass(fitted, monkeypatch):
    import igpt_forensics.detectors.likelihood as lk

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (30, 17, 3), dtype=np.uint8),
              rng.integers(0, 256, (9, 26, 3), dtype=np.uint8)]
    whole, whole_loc = fitted.score_and_localize(images)
    monkeypatch.setattr(lk, "TILE_CHUNK", 2)
    small = load_detector_like(fitted, batch_size=3)  # 3 tiles at a time
    parts, parts_loc = small.score_and_localize(images)
    np.testing.assert_allclose(parts, whole, rtol=1e-9)
    for a, b in zip(parts_loc.maps, whole_loc.maps):
        np.testing.assert_allclose(a, b, atol=1e-6)


def load_detector_like(det: LikelihoodDetector, **params) -> LikelihoodDetector:
    """A copy of a fitted detector with some parameters changed (through save/load)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        det.save(d)
        return load_detector(d, **params)


def test_tile_layout_covers_the_image_and_aligns_the_last_tile():
    image = np.zeros((20, 11, 3), np.uint8)
    tiles, layout = tile_image(image, 8, "tile")
    assert layout.origins == [(0, 0), (0, 3), (8, 0), (8, 3), (12, 0), (12, 3)]
    assert all(t.shape == (8, 8, 3) for t in tiles)
    small, layout = tile_image(np.zeros((4, 6, 3), np.uint8), 8, "tile")
    assert layout.work == (8, 12) and layout.shape == (4, 6)  # upscaled: shorter side 8
    _, layout = tile_image(image, 8, "resize")
    assert layout.origins == [(0, 0)] and layout.work == (8, 8)


# -- the interface ----------------------------------------------------------------------------

def test_threshold_is_the_target_false_positive_rate_on_real_scores():
    scores = np.random.default_rng(0).normal(size=1000)
    for fpr in (0.01, 0.05, 0.2):
        t = calibrate_threshold(scores, fpr)
        assert np.mean(scores > t) <= fpr
        assert np.mean(scores >= t) > fpr  # and no higher than it needs to be
    with pytest.raises(InputError):
        calibrate_threshold(scores, 1.5)


def test_inputs_are_checked_once_with_one_line(fitted):
    for bad in (np.zeros((2, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8),
                [np.zeros((8, 8), np.uint8)], [], "x.png"):
        with pytest.raises(InputError) as e:
            fitted.score(bad)
        assert "\n" not in str(e.value)
    assert len(check_images([np.zeros((3, 5, 3), np.uint8)])) == 1
    with pytest.raises(InputError, match="not fitted"):
        LikelihoodDetector(model=fitted.model).score(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="tiling"):
        load_detector_like(fitted, tiling="sideways").score(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="sampling"):
        parse_sampling("warmth=2")


def test_registry_finds_creates_and_refuses():
    assert "likelihood" in list_detectors()
    det = create_detector("likelihood", window=2)
    assert isinstance(det, LikelihoodDetector) and det.window == 2 and not det.is_fitted
    with pytest.raises(InputError, match="unknown detector"):
        create_detector("crystal-ball")
    with pytest.raises(ValueError, match="already registered"):
        register_detector("likelihood")(LikelihoodDetector)

    with pytest.raises(TypeError):  # the contract is abstract: a detector must implement it
        type("Half", (Detector,), {})()


def test_pretrained_without_the_asset_says_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setattr(LikelihoodDetector, "default_asset", tmp_path / "missing")
    with pytest.raises(InputError, match="igpt-forensics calibrate --detector likelihood"):
        create_detector("likelihood", pretrained=True)
    with pytest.raises(InputError, match="calibrate"):
        open_detector("likelihood")


def test_shipped_calibration_matches_its_hashes_and_the_default_model():
    sums = (DEFAULT_CALIBRATION / "SHA256SUMS").read_text().split("\n")
    listed = dict(reversed(line.split("  ", 1)) for line in sums if line.strip())
    assert META_FILE in listed and ARRAYS_FILE not in listed
    for name, digest in listed.items():
        assert sha256_file(DEFAULT_CALIBRATION / name) == digest, name
    det = create_detector("likelihood", pretrained=True)
    assert det.model is None  # it scores with the bundled default model
    weights = DEFAULT_MODEL / "model.safetensors"
    assert det.model_sha256_ == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert det.fit_info_["held_back_auc"] > 0.6
    # its thresholds come from 2048 patches of the train photos: the val photos are two
    assert det.fit_info_["threshold_split"] == "train" and det.fit_info_["threshold_real"] == 2048


def test_score_with_the_bundled_model_uses_the_shipped_calibration(tiny_checkpoint, tmp_path,
                                                                  monkeypatch):
    import shutil

    from igpt_forensics.detectors.base import create_detector, open_detector
    from igpt_forensics.detectors.likelihood import LikelihoodDetector

    def no_calibrating(*a, **k):
        raise AssertionError("calibrated again for the weights it ships for")
    copy = tmp_path / "copy"  # the bundled weights under another name: the same weights
    shutil.copytree(resolve_model("pixel-default"), copy)
    monkeypatch.setattr(LikelihoodDetector, "calibrated", classmethod(no_calibrating))
    shipped = create_detector("likelihood", pretrained=True)
    for model in ("pixel-default", str(copy)):
        assert open_detector("likelihood", model=model).threshold_ == shipped.threshold_
    assert not LikelihoodDetector.ships_for(str(tiny_checkpoint))  # other weights: calibrate
    with pytest.raises(AssertionError, match="calibrated again"):
        open_detector("likelihood", model=str(tiny_checkpoint))
