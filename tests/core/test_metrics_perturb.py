"""Metrics against scikit-learn and hand-made scores; perturbations are deterministic."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from igpt_forensics.errors import InputError
from igpt_forensics.metrics import (
    bootstrap_aucs,
    eer,
    image_metrics,
    paired_auc_difference,
    paired_pixel_auc_difference,
    pixel_metrics,
    tpr_at_fpr,
)
from igpt_forensics.perturb import DEFAULT_GRID, parse_grid, perturb, strength


def test_image_metrics_on_hand_made_scores():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.8, 0.85, 0.95])
    m = image_metrics(labels, scores, threshold=0.5, bootstrap=50)
    assert m["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert m["auc"] == pytest.approx(13 / 16)  # 13 of 16 (fake, real) pairs ordered right
    assert m["ap"] == pytest.approx(average_precision_score(labels, scores))
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["fpr_at_threshold"] == pytest.approx(0.25) and m["tpr_at_threshold"] == 0.75
    assert m["auc_lo"] <= m["auc"] <= m["auc_hi"]
    # at FPR 0 only the fake above every real counts
    assert tpr_at_fpr(labels, scores, 0.0) == pytest.approx(0.25)


def test_bootstrap_aucs_equal_roc_auc_score_on_the_same_resamples():
    rng = np.random.default_rng(5)
    labels = np.r_[np.zeros(37), np.ones(23)].astype(int)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounded: many ties
    aucs = bootstrap_aucs(labels, scores, n=30, seed=9)
    draw = np.random.default_rng(9)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pos_idx, neg_idx = draw.integers(0, 23, (30, 23)), draw.integers(0, 37, (30, 37))
    y = np.r_[np.ones(23), np.zeros(37)]
    want = [roc_auc_score(y, np.r_[pos[p], neg[q]]) for p, q in zip(pos_idx, neg_idx)]
    np.testing.assert_allclose(aucs, want, rtol=0, atol=1e-12)
    assert aucs.std() > 0.01  # resamples differ


def test_paired_auc_difference_resamples_the_same_images_for_both():
    rng = np.random.default_rng(6)
    labels = np.r_[np.zeros(80), np.ones(60)].astype(int)
    a = rng.normal(labels * 1.0, 1.0)
    b = a + rng.normal(0.0, 0.15, a.size)  # a second detector close to the first
    diff, lo, hi = paired_auc_difference(labels, a, b, n=500, seed=3)
    assert diff == pytest.approx(roc_auc_score(labels, a) - roc_auc_score(labels, b))
    assert lo <= diff <= hi
    # paired, the interval is far narrower than the two detectors' own intervals: the hard
    # and easy images they share cancel out (resampled apart, they would not)
    own = np.diff(np.quantile(bootstrap_aucs(labels, a, 500, seed=3), [0.025, 0.975]))[0]
    assert hi - lo < own / 3
    apart = bootstrap_aucs(labels, a, 500, seed=3) - bootstrap_aucs(labels, b, 500, seed=4)
    assert np.diff(np.quantile(apart, [0.025, 0.975]))[0] > 2 * (hi - lo)
    # a detector that separates better is found better, its interval clear of 0
    better = a + 1.5 * labels
    d2, lo2, _ = paired_auc_difference(labels, better, a, n=500)
    assert d2 > 0 and lo2 > 0
    with pytest.raises(InputError, match="140 labels but 139 scores"):
        paired_auc_difference(labels, a, b[:-1])


def test_paired_pixel_auc_difference_pools_pixels_and_resamples_whole_images():
    """The point estimate is the difference of two pooled pixel AUCs (`pixel_metrics`); the
    interval resamples images, the same ones for both maps, so one map against itself has
    an interval of exactly 0, and a map that sees the boxes beats noise clear of 0."""
    rng = np.random.default_rng(8)
    masks, good, noise = [], [], []
    for _ in range(30):
        m = np.zeros((16, 16), bool)
        y, x = rng.integers(0, 10, 2)
        m[y:y + 6, x:x + 6] = True
        masks.append(m)
        good.append(m * 0.5 + rng.random((16, 16)) * 0.8)
        noise.append(rng.random((16, 16)))
    diff, lo, hi = paired_pixel_auc_difference(masks, good, noise, n=200, seed=1)
    want = pixel_metrics(masks, good)["pixel_auc"] - pixel_metrics(masks, noise)["pixel_auc"]
    assert diff == pytest.approx(want, abs=1e-12)
    assert 0 < lo <= diff <= hi
    assert paired_pixel_auc_difference(masks, good, good, n=50) == (0.0, 0.0, 0.0)
    # each resample's AUC: scikit-learn's, with each pixel weighted by its image's draws
    from igpt_forensics.metrics import _pooled_auc

    y = np.concatenate([m.ravel() for m in masks]).astype(float)
    s = np.round(np.concatenate([g.ravel() for g in good]), 2)  # rounded: many ties
    owner = np.repeat(np.arange(30), 256)
    counts = np.bincount(rng.integers(0, 30, 30), minlength=30)
    assert _pooled_auc(y, s, owner)(counts) == pytest.approx(
        roc_auc_score(y, s, sample_weight=counts[owner]), abs=1e-12)
    with pytest.raises(InputError, match="30 masks but 30 and 29 maps"):
        paired_pixel_auc_difference(masks, good, noise[:-1])
    with pytest.raises(InputError, match="differ in size"):
        paired_pixel_auc_difference(masks, good, [n[:8] for n in noise])


def test_perfect_and_inverted_detectors():
    labels = np.r_[np.zeros(50), np.ones(50)]
    scores = np.r_[np.linspace(0, 1, 50), np.linspace(2, 3, 50)]
    m = image_metrics(labels, scores, bootstrap=20)
    assert m["auc"] == 1 and m["eer"] == 0 and m["tpr_at_1fpr"] == 1
    assert image_metrics(labels, -scores, bootstrap=0)["auc"] == 0
    assert eer(labels, np.r_[np.ones(50), np.ones(50)]) == pytest.approx(0.5)


def test_metric_input_errors():
    with pytest.raises(InputError, match="both"):
        image_metrics(np.ones(4), np.arange(4.0))
    with pytest.raises(InputError, match="labels but"):
        image_metrics(np.array([0, 1]), np.arange(3.0))
    with pytest.raises(InputError, match="NaN"):
        image_metrics(np.array([0, 1]), np.array([0.0, np.nan]))


def test_pixel_metrics():
    t = np.zeros((2, 4, 4), bool)
    t[:, 2:] = True
    perfect = t.astype(float)
    m = pixel_metrics(t, perfect)
    assert m["pixel_auc"] == 1 and m["iou"] == 1 and m["f1"] == 1
    half = np.zeros((2, 4, 4))
    half[:, 3:] = 1  # predicts one of the two synthesized rows
    m = pixel_metrics(t, half)
    assert m["iou"] == pytest.approx(0.5) and m["f1"] == pytest.approx(2 / 3)
    assert m["pixel_auc"] == pytest.approx(roc_auc_score(t.ravel(), half.ravel()))


def test_perturbations_are_deterministic_and_keep_masks_aligned(rng):
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[16:] = True
    for spec in DEFAULT_GRID:
        a, ma = perturb(image, spec, seed=3, mask=mask)
        b, mb = perturb(image, spec, seed=3, mask=mask)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ma, mb)
        assert a.dtype == np.uint8 and a.shape[:2] == ma.shape
        if spec != "none":
            assert not np.array_equal(a, image) or a.shape != image.shape, spec
    assert perturb(image, "resize0.5")[0].shape == (16, 16, 3)
    c1, _ = perturb(image, "noise2", seed=1)
    c2, _ = perturb(image, "noise2", seed=2)
    assert not np.array_equal(c1, c2)
    crop, cm = perturb(image, "crop24", seed=5, mask=mask)
    # the crop of the mask is where the crop of the image came from
    top = np.argwhere(np.all(np.lib.stride_tricks.sliding_window_view(
        image, (24, 24, 3))[..., 0, :, :, :] == crop, axis=(-3, -2, -1)))[0]
    np.testing.assert_array_equal(cm, mask[top[0]:top[0] + 24, top[1]:top[1] + 24])
    assert strength("jpeg50") > strength("jpeg90") > strength("none") == 0


def test_bad_perturbation_specs():
    for bad in ("jpeg", "jpeg101", "rotate3", "none2", "crop0", ""):
        with pytest.raises(InputError):
            parse_grid(bad)
    assert parse_grid("none, jpeg75") == ["none", "jpeg75"]
