"""The trivial single-feature baselines: direction learned, thresholds on reals, real maps."""

import numpy as np
import pytest
from igpt_forensics.detectors import create_detector, load_detector
from sklearn.metrics import roc_auc_score


def textured(rng, n, size=32):
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def streaky(rng, n, size=32):
    """Rows drawn pixel by pixel from their left neighbour: smooth along rows."""
    steps = rng.integers(-6, 7, (n, size, size, 1))
    rows = (rng.integers(0, 256, (n, size, 1, 1)) + np.cumsum(steps, axis=2)) % 256
    return np.repeat(rows, 3, axis=3).astype(np.uint8)


def smooth(rng, n, size=32):
    """Flat color with faint noise: little texture."""
    base = rng.integers(40, 200, (n, 1, 1, 3))
    return (base + rng.integers(-2, 3, (n, size, size, 3))).astype(np.uint8)


def test_rowcol_finds_streaks_with_a_threshold_from_real_images(tmp_path):
    rng = np.random.default_rng(0)
    real, fake = textured(rng, 40), streaky(rng, 40)
    det = create_detector("rowcol").fit(real, fake, val=(textured(rng, 200), None))
    assert det.sign_ == 1.0
    s_real, s_fake = det.score(textured(rng, 50)), det.score(streaky(rng, 50))
    assert roc_auc_score(np.r_[np.zeros(50), np.ones(50)], np.r_[s_real, s_fake]) > 0.99
    assert (s_real > det.threshold_).mean() <= 0.06  # calibrated at 1% on other reals
    det.save(tmp_path / "rc")
    again = load_detector(tmp_path / "rc")
    np.testing.assert_array_equal(again.score(real), det.score(real))


def test_direction_is_learned_colors_of_palette_images_are_few():
    rng = np.random.default_rng(1)
    real = textured(rng, 30)
    palette = rng.integers(0, 256, (8, 3), dtype=np.uint8)
    fake = palette[rng.integers(0, 8, (30, 32, 32))]
    det = create_detector("colors").fit(real, fake)
    assert det.sign_ == -1.0  # fewer colors = more synthetic
    assert (det.score(fake) > det.threshold_).all()


@pytest.mark.parametrize("name, make_fake", [("rowcol", streaky), ("laplacian", smooth)])
def test_maps_find_a_synthesized_box(name, make_fake):
    rng = np.random.default_rng(2)
    det = create_detector(name).fit(textured(rng, 30), make_fake(rng, 30))
    images = textured(rng, 6)
    box = np.zeros((32, 32), bool)
    box[8:24, 8:24] = True
    images[:, box] = make_fake(rng, 6)[:, box]
    loc = det.localize(images)
    assert loc.maps.shape == (6, 32, 32) and loc.maps.min() >= 0 and loc.maps.max() <= 1
    truth = np.broadcast_to(box, loc.maps.shape).ravel()
    assert roc_auc_score(truth, loc.maps.ravel()) > 0.8
    assert loc.region_flags.all()
