"""The trained detectors (cnn, features, fusion) on a tiny generated dataset: 8x8 images, a
16-color pixel-GPT (the session's ``tiny_checkpoint``), about a hundred items."""

import json
import sys

import numpy as np
import pytest
import torch
from igpt_forensics.detectors.base import (
    ARRAYS_FILE,
    META_FILE,
    calibrate_threshold,
    list_detectors,
    load_detector,
    open_detector,
)
from igpt_forensics.detectors.cnn import (
    CNNDetector,
    DenseDetectorNet,
    augment_batch,
    calibration_palettes,
    degrade_batch,
    npr,
    relative_map_loss,
)
from igpt_forensics.detectors.features import (
    HAND_FEATURES,
    FeaturesDetector,
    TreeEnsemble,
    hand_features,
)
from igpt_forensics.detectors.trained import load_arrays
from igpt_forensics.generators.checkpoint import load_checkpoint, save_checkpoint
from igpt_forensics.generators.model import create_model
from PIL import Image
from safetensors.numpy import load_file, save_file
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from igpt_forensics.bench import split_report
from igpt_forensics.cli import app
from igpt_forensics.errors import InputError
from tests.detectors.conftest import fit_args, reseal

S = 8
runner = CliRunner()
# AUC bounds on the test split (real + quantized real vs fake, held-out photos; chance is
# 0.5). Measured over 2 dataset seeds x 2 detector seeds: features 0.86-0.88, cnn 0.78-0.84,
# fusion 0.90-0.91 (the likelihood detector alone: 0.51-0.60); the bounds sit below the worst
# run so that they catch a broken detector, not noise.
AUC_BOUND = {"features": 0.78, "cnn": 0.70, "fusion": 0.82}


@pytest.fixture
def detectors(request):
    return {"features": request.getfixturevalue("features_det"),
            "cnn": request.getfixturevalue("cnn_det"),
            "fusion": request.getfixturevalue("fusion_det")}


def test_the_trained_kinds_are_registered():
    assert {"cnn", "features", "fusion"} <= set(list_detectors())


# -- each kind learns --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["features", "cnn", "fusion"])
def test_each_kind_beats_chance_on_held_out_photos(kind, request, splits):
    det = request.getfixturevalue(f"{kind}_det")
    te = splits["test"]
    scores = det.score(np.concatenate([te.real, te.fake]))
    labels = np.r_[np.zeros(len(te.real)), np.ones(len(te.fake))]
    auc = roc_auc_score(labels, scores)
    assert auc > AUC_BOUND[kind], (kind, auc)
    assert np.all(np.isfinite(scores))


@pytest.mark.parametrize("kind", ["features", "cnn"])
def test_threshold_is_calibrated_on_the_validation_reals(kind, request, splits):
    det = request.getfixturevalue(f"{kind}_det")
    real = det.score(splits["val"].real)
    assert det.threshold_ == calibrate_threshold(real, 0.01)
    assert np.mean(real > det.threshold_) <= 0.01


def test_features_importances_name_every_feature_and_sum_to_one(features_det):
    for model in ("logistic", "boosting"):
        imp = features_det.feature_importances(model)
        names = [n for n, _ in imp]
        assert sorted(names) == sorted(features_det.feature_names)
        assert sum(v for _, v in imp) == pytest.approx(1.0)
        assert [v for _, v in imp] == sorted((v for _, v in imp), reverse=True)
    assert "lik_z" in features_det.feature_names  # the zero-shot statistics are features
    assert features_det.fit_info_["classifier"] in ("logistic", "boosting")


def test_features_see_the_palette_and_row_streaks():
    rng = np.random.default_rng(0)
    palette = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    on = palette[rng.integers(0, 2, (2, S, S))]
    off = rng.integers(1, 254, (2, S, S, 3)).astype(np.uint8)
    rows = np.repeat(rng.integers(0, 256, (1, S, 1, 3)), S, axis=2).astype(np.uint8)  # streaks
    cols = np.ascontiguousarray(rows.transpose(0, 2, 1, 3))
    f = hand_features(np.concatenate([on, off, rows, cols]), palette)
    col = {n: f[:, i] for i, n in enumerate(HAND_FEATURES)}
    np.testing.assert_allclose(col["palette_frac"][:2], 1.0)
    assert col["palette_frac"][2:4].max() < 0.1 and col["palette_dist"][:2].max() == 0.0
    assert col["equal_row_frac"][4] == 1.0 and col["equal_col_frac"][5] == 1.0
    assert col["log_row_col_energy"][4] < 0 < col["log_row_col_energy"][5]
    assert np.all(np.isfinite(f))


def test_boosted_trees_evaluated_by_hand_equal_scikit_learn():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6))
    x[:, 2] = np.round(x[:, 2], 1)  # ties at thresholds
    y = (x[:, 0] + x[:, 1] * x[:, 2] + 0.3 * rng.normal(size=300) > 0).astype(int)
    gb = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0).fit(
        x, y, sample_weight=np.where(y == 1, 2.0, 1.0))
    trees = TreeEnsemble.from_sklearn(gb)
    xt = rng.normal(size=(500, 6))
    np.testing.assert_allclose(trees.decision(xt), gb.decision_function(xt), rtol=1e-10,
                               atol=1e-10)
    p = 1 / (1 + np.exp(-trees.decision(xt)))
    np.testing.assert_allclose(p, gb.predict_proba(xt)[:, 1], rtol=1e-9)


def test_cnn_maps_follow_the_ground_truth_masks(cnn_det, splits):
    te = splits["test"]
    scores, loc = cnn_det.score_and_localize(te.fake)
    assert loc.maps.shape == te.fake_masks.shape and loc.maps.dtype == np.float32
    assert 0.0 <= loc.maps.min() and loc.maps.max() <= 1.0
    assert loc.masks.dtype == bool and loc.region_scores.shape == (len(te.fake),)
    partial = np.array([k != "full" for k in te.fake_kinds])
    y = te.fake_masks[partial].ravel()
    pixel_auc = roc_auc_score(y, loc.maps[partial].ravel())
    assert pixel_auc > 0.65, pixel_auc  # measured 0.72-0.83
    np.testing.assert_allclose(scores, cnn_det.score(te.fake))


def test_cnn_scores_images_of_other_sizes_with_maps_at_their_size(cnn_det, splits):
    im = splits["test"].real[0]
    big = np.asarray(Image.fromarray(im).resize((13, 11)))
    small = im[:5, :6].copy()
    scores, loc = cnn_det.score_and_localize([big, small])
    assert [m.shape for m in loc.maps] == [(11, 13), (5, 6)]
    assert np.all(np.isfinite(scores))


def test_fusion_weights_members_and_calibrates_out_of_fold(fusion_det):
    fi = fusion_det.fit_info_
    assert [m["name"].split(":")[1] for m in fi["members"]] == ["likelihood", "cnn", "features"]
    assert fi["threshold_from"].startswith("out-of-fold")
    assert sum(fusion_det.map_weights_) == pytest.approx(1.0)
    assert fusion_det.map_weights_[2] == 0.0  # features' maps are per tile, not dense


def test_split_report_gives_each_real_form_and_pixel_metrics(cnn_det, splits):
    out = split_report(cnn_det, splits["test"].as_split(), localize=True)
    assert {"all", "real_vs_fake", "qreal_vs_fake", "pixels_box", "pixels_top-half"} <= set(out)
    assert 0.0 <= out["pixels_box"]["iou"] <= 1.0
    te = splits["test"]
    assert out["all"]["n_fake"] == len(te.fake) and out["all"]["n_real"] == len(te.real)
    # the same numbers as scikit-learn on the detector's own scores, batched as evaluate does
    # (all reals in one call, the fakes with their maps: a conv's last digits may depend on
    # the batch)
    from sklearn.metrics import roc_auc_score
    forms = np.array(te.real_forms)
    s_neg = cnn_det.score(np.concatenate([te.real[forms == "real"], te.real[forms == "qreal"]]))
    s_q, s_f = s_neg[(forms == "real").sum():], cnn_det.score_and_localize(te.fake)[0]
    want = roc_auc_score(np.r_[np.zeros(len(s_q)), np.ones(len(s_f))], np.r_[s_q, s_f])
    assert out["qreal_vs_fake"]["auc"] == pytest.approx(want, abs=1e-6)


# -- persistence -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["features", "cnn", "fusion"])
def test_save_load_round_trip_gives_identical_scores_and_maps(kind, detectors, splits,
                                                              tmp_path):
    det = detectors[kind]
    images = np.concatenate([splits["test"].real[:6], splits["test"].fake[:6]])
    det.save(tmp_path / "det")
    back = load_detector(tmp_path / "det")
    assert type(back) is type(det) and back.threshold_ == det.threshold_
    s1, l1 = det.score_and_localize(images)
    s2, l2 = back.score_and_localize(images)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(l1.maps, l2.maps)
    np.testing.assert_array_equal(l1.region_flags, l2.region_flags)
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in tmp_path.rglob("*"))


def _edit_json(folder):
    meta = json.loads((folder / META_FILE).read_text())
    meta["state"]["threshold_"] = meta["state"]["threshold_"] - 1.0
    (folder / META_FILE).write_text(json.dumps(meta))


def _edit_params(folder):
    meta = json.loads((folder / META_FILE).read_text())
    meta["params"]["target_fpr"] = 0.5
    (folder / META_FILE).write_text(json.dumps(meta))


def _edit_arrays(folder):
    arrays = load_file(folder / ARRAYS_FILE)
    name = sorted(k for k in arrays if arrays[k].dtype.kind == "f")[0]
    arrays[name] = arrays[name] + np.asarray(1e-3, arrays[name].dtype)
    save_file(arrays, folder / ARRAYS_FILE)


def _edit_member(folder):
    member = next((folder / "members").glob("*-cnn"))
    _edit_arrays(member)


TAMPERING = [("features", _edit_json), ("features", _edit_params), ("features", _edit_arrays),
             ("cnn", _edit_json), ("cnn", _edit_arrays), ("fusion", _edit_json),
             ("fusion", _edit_member)]


@pytest.mark.parametrize("kind,edit", TAMPERING, ids=[f"{k}-{e.__name__[1:]}"
                                                      for k, e in TAMPERING])
def test_a_tampered_saved_detector_is_refused(kind, edit, detectors, tmp_path):
    folder = detectors[kind].save(tmp_path / "det")
    load_detector(folder)  # intact: loads
    edit(folder)
    with pytest.raises(InputError, match="sha256|differ"):
        load_detector(folder)


def test_features_refuse_another_likelihood_model(features_det, tiny_checkpoint, tmp_path,
                                                  splits):
    features_det.save(tmp_path / "det")
    _, palette, _ = load_checkpoint(tiny_checkpoint)
    save_checkpoint(create_model("tiny", vocab_size=16, image_size=S), palette, tmp_path / "o")
    det = load_detector(tmp_path / "det", likelihood_model=str(tmp_path / "o"))
    with pytest.raises(InputError, match="not the one this features detector was fitted"):
        det.score(splits["test"].real[:2])


# -- inputs ------------------------------------------------------------------------------------

def test_fit_inputs_are_checked_once_with_clear_messages(splits):
    tr = splits["train"]
    det = CNNDetector(epochs=1)
    with pytest.raises(InputError, match="fake_masks must have shape"):
        det.fit(tr.real, tr.fake, tr.fake_masks[:, :4])
    with pytest.raises(InputError, match="need fake images"):
        FeaturesDetector(use_likelihood=False).fit(tr.real)
    with pytest.raises(InputError, match="one size"):
        det.fit([tr.real[0], tr.real[1][:4]], tr.fake)
    with pytest.raises(InputError, match="not fitted"):
        CNNDetector().score(tr.real[:2])
    with pytest.raises(InputError, match="unknown timm architecture"):
        CNNDetector(arch="no_such_net", epochs=1).fit(tr.real, tr.fake, tr.fake_masks)
    with pytest.raises(InputError, match="inputs must be one of rgb, npr, rgb\\+npr"):
        CNNDetector(inputs="hsv", epochs=1).fit(tr.real, tr.fake, tr.fake_masks)


def test_npr_is_each_pixel_minus_the_first_of_its_2x2_block():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7) ** 1.5
    r = npr(x)
    for i in range(5):
        for j in range(7):
            assert torch.equal(r[..., i, j], x[..., i, j] - x[..., i - i % 2, j - j % 2])
    # a 2x nearest upsampling leaves no relations at all; a bilinear one leaves them
    small = torch.rand(1, 3, 4, 4)
    assert npr(torch.nn.functional.interpolate(small, scale_factor=2)).abs().max() == 0
    bilinear = torch.nn.functional.interpolate(small, scale_factor=2, mode="bilinear")
    assert npr(bilinear).abs().max() > 0.01


@pytest.mark.parametrize("inputs", ["npr", "rgb+npr"])
def test_cnn_on_npr_inputs_learns_saves_and_loads(inputs, splits, tmp_path):
    args, kw = fit_args(splits)
    det = CNNDetector(epochs=2, batch_size=32, device="cpu", inputs=inputs).fit(*args, **kw)
    te = splits["test"]
    images = np.concatenate([te.real[:8], te.fake[:8]])
    det.save(tmp_path / "d")
    back = load_detector(tmp_path / "d")
    assert back.inputs == inputs
    np.testing.assert_array_equal(back.score(images), det.score(images))
    # the backbone sees what it was built for: a net of rgb inputs does not take the weights
    with pytest.raises(InputError, match="weights do not fit"):
        load_detector(tmp_path / "d", inputs="rgb" if inputs == "rgb+npr" else "rgb+npr")


def test_relative_map_loss_ranks_the_pixels_of_each_partial_fake_against_its_median():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 4, 4, generator=g)
    m = torch.zeros(4, 4, 4)
    m[1, 1:3, 1:3] = 1  # a 2x2 box: 4 synthesized pixels, 12 kept
    m[2, 2:] = 1  # a top half
    m[3] = 1  # wholly synthesized; image 0 is real
    loss = relative_map_loss(z, m)
    # by hand: each partial fake's logits minus their (lower) median, mean BCE over its
    # synthesized pixels and over its kept pixels, halved; averaged over the partial fakes
    want = []
    for i in (1, 2):
        zi, mi = z[i].flatten().numpy().astype(np.float64), m[i].flatten().numpy() > 0
        rel = zi - np.sort(zi)[(zi.size - 1) // 2]
        bce = np.where(mi, np.log1p(np.exp(-rel)), np.log1p(np.exp(rel)))
        want.append((bce[mi].mean() + bce[~mi].mean()) / 2)
    assert float(loss) == pytest.approx(np.mean(want), rel=1e-5)
    # an offset per image changes nothing; real and whole fakes add nothing
    offsets = torch.tensor([5.0, -3.0, 7.0, 2.0]).view(4, 1, 1)
    assert float(relative_map_loss(z + offsets, m)) == pytest.approx(float(loss), rel=1e-5)
    z_other = z.clone()
    z_other[0], z_other[3] = 10 * torch.randn(4, 4, generator=g), -9.0
    assert float(relative_map_loss(z_other, m)) == pytest.approx(float(loss), rel=1e-5)
    # a map that ranks the box above its surroundings costs less than the reverse
    assert relative_map_loss(4 * m[1:2] - 2, m[1:2]) < relative_map_loss(2 - 4 * m[1:2], m[1:2])
    assert float(relative_map_loss(z[[0, 3]], m[[0, 3]])) == 0.0


def test_cnn_relative_weight_adds_the_relative_loss_to_training(splits, tmp_path):
    args, kw = fit_args(splits)
    fits = [CNNDetector(epochs=1, batch_size=32, device="cpu", relative_weight=w).fit(*args, **kw)
            for w in (0.0, 2.0)]
    first = [f.fit_info_["history"][0] for f in fits]
    # the same seed, the same first batches: only the loss differs, by the relative term
    assert first[0]["train_loss"] < first[1]["train_loss"]
    assert first[1]["val_loss"] > first[1]["val_image_loss"] + first[1]["val_pixel_loss"]
    assert first[0]["val_loss"] == pytest.approx(first[0]["val_image_loss"]
                                                 + first[0]["val_pixel_loss"])
    fits[1].save(tmp_path / "d")
    assert load_detector(tmp_path / "d").relative_weight == 2.0
    with pytest.raises(InputError, match="relative_weight"):
        CNNDetector(relative_weight=-1).fit(*args, **kw)


def test_cnn_ema_validates_and_keeps_the_moving_average_of_the_weights(splits, tmp_path):
    args, kw = fit_args(splits)
    torch.manual_seed(0)  # what fit starts from: the network its seed draws
    start = DenseDetectorNet(inputs="rgb").state_dict()
    fits = {d: CNNDetector(epochs=2, patience=2, batch_size=16, device="cpu",
                           ema=d).fit(*args, **kw) for d in (0.0, 1 - 1e-9)}

    def moved(det):  # how far the kept weights are from the start, over all float tensors
        kept = det._net.state_dict()
        return sum(float((kept[k].float() - v.float()).norm()) for k, v in start.items()
                   if v.is_floating_point())

    # an average that barely moves keeps (nearly) the first step's weights; without one, the
    # weights of every step since. Both runs draw the same batches: only what is kept differs
    assert fits[0.0].fit_info_["history"][0]["train_loss"] == pytest.approx(
        fits[1 - 1e-9].fit_info_["history"][0]["train_loss"])
    assert moved(fits[1 - 1e-9]) < 0.2 * moved(fits[0.0])
    # and validation judged the averaged network: its val loss is the kept one's
    assert fits[1 - 1e-9].fit_info_["history"][0]["val_loss"] != pytest.approx(
        fits[0.0].fit_info_["history"][0]["val_loss"])
    fits[1 - 1e-9].save(tmp_path / "d")
    assert load_detector(tmp_path / "d").ema == pytest.approx(1 - 1e-9)
    for bad in (1.0, -0.1):
        with pytest.raises(InputError, match="ema"):
            CNNDetector(ema=bad).fit(*args, **kw)


def test_cnn_upscale_shows_the_backbone_its_inputs_enlarged_and_maps_at_the_images_size(
        splits, tmp_path):
    """``upscale=2``: the backbone reads the colors (or their relations, computed first at
    the image's own scale) with each pixel repeated 2x2, so its stride-4 stem keeps every
    pixel; the maps stay at the image's size. Saved, loaded and checked like any parameter."""
    seen = []
    net = DenseDetectorNet(stages=2, width=8, inputs="npr", upscale=2)
    net.backbone.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    images = torch.from_numpy(splits["test"].fake[:3]).permute(0, 3, 1, 2).float()
    logits, pix = net.eval()(images)
    side = images.shape[-1]
    assert seen[0].shape == (3, 3, 2 * side, 2 * side) and pix.shape == (3, side, side)
    rel = 4.0 * npr((images - net.mean) / net.std)
    torch.testing.assert_close(seen[0][..., ::2, ::2], rel)
    torch.testing.assert_close(seen[0][..., 1::2, 1::2], rel)
    assert not torch.equal(rel, torch.zeros_like(rel))

    args, kw = fit_args(splits)
    det = CNNDetector(epochs=1, batch_size=32, stages=2, width=8, inputs="npr", upscale=2,
                      device="cpu").fit(*args, **kw)
    assert det._net.upscale == 2
    det.save(tmp_path / "d")
    back = load_detector(tmp_path / "d")
    test = splits["test"].fake[:4]
    np.testing.assert_array_equal(back.score(test), det.score(test))
    for bad in (0, 5, 1.5):
        with pytest.raises(InputError, match="upscale"):
            CNNDetector(upscale=bad).fit(*args, **kw)
    reseal(tmp_path / "d", lambda meta: meta["params"].update(upscale=1000))
    with pytest.raises(InputError, match="upscale must be at most 4, got 1000"):
        load_detector(tmp_path / "d")


def test_cnn_context_refines_the_maps_at_full_resolution_and_is_saved_like_any_parameter(
        splits, tmp_path):
    """``context=3``: three residual 3x3 layers at dilations 2, 4 and 8 after the decoder, at
    the image's own size; a pixel's logit then depends on pixels 8 apart through them alone.
    ``context=0`` (what files saved before it existed load as) builds none."""
    net = DenseDetectorNet(stages=2, width=8, inputs="npr", context=3)
    assert [layer[0].dilation for layer in net.context] == [(2, 2), (4, 4), (8, 8)]
    assert len(DenseDetectorNet(stages=2, width=8).context) == 0
    # the context layers alone: a change at one pixel reaches 2+4+8 = 14 pixels along a row
    f = torch.zeros(1, 8, 32, 32)
    g = f.clone()
    g[0, :, 16, 2] = 5.0
    net.eval()
    with torch.no_grad():
        a, b = f, g
        for layer in net.context:
            a, b = a + layer(a), b + layer(b)
    moved = (a - b).abs().sum(1)[0, 16]
    assert moved[16] > 0 and moved[2 + 15:].sum() == 0

    args, kw = fit_args(splits)
    det = CNNDetector(epochs=1, batch_size=32, stages=2, width=8, inputs="npr", context=2,
                      device="cpu").fit(*args, **kw)
    assert len(det._net.context) == 2
    det.save(tmp_path / "d")
    back = load_detector(tmp_path / "d")
    test = splits["test"].fake[:4]
    np.testing.assert_array_equal(back.score(test), det.score(test))
    for bad in (-1, 7, 1.5, True):
        with pytest.raises(InputError, match="context"):
            CNNDetector(context=bad).fit(*args, **kw)
    reseal(tmp_path / "d", lambda meta: meta["params"].update(context=1000))
    with pytest.raises(InputError, match="context must be an integer from 0 to 6, got 1000"):
        load_detector(tmp_path / "d")
    reseal(tmp_path / "d", lambda meta: meta["params"].update(context=0))
    with pytest.raises(InputError, match="weights do not fit"):
        load_detector(tmp_path / "d")


def test_degrade_post_processes_a_whole_batch_alike_and_moves_its_masks():
    """Each call draws one post-processing for the batch: smaller (resized or cropped, the
    masks moved with the pixels) or the same size with other pixels (blurred or JPEG)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    masks = np.zeros((6, 32, 32), bool)
    masks[:, :, :16] = True  # left half synthesized, and black
    images[masks] = 0
    draw, kinds = np.random.default_rng(1), set()
    for _ in range(40):
        out, m = degrade_batch(images, masks, draw)
        assert out.dtype == np.uint8 and m.dtype == bool and out.shape[:3] == m.shape
        side = out.shape[1]
        if side < 32:  # resized to 0.45-0.9 or cropped to 60-90% of the side
            assert 14 <= side <= 29 and out.shape[2] == side
            assert (np.diff(m.astype(int), axis=2) <= 0).all()  # each row: mask, then none
            assert out[m].mean() < 0.3 * out[~m].mean()  # the black pixels went with it
            crop = all(any(np.array_equal(out[i], images[i, t:t + side, u:u + side])
                           for t in range(33 - side) for u in range(33 - side))
                       for i in range(6))  # a crop keeps each image's pixels as they were
            kinds.add("crop" if crop else "resize")
            if crop:
                assert not out[m].any()
        else:
            assert np.array_equal(m, masks) and not np.array_equal(out, images)
            kinds.add("blur or jpeg")
    assert kinds == {"crop", "resize", "blur or jpeg"}
    a, b = (degrade_batch(images, masks, np.random.default_rng(7)) for _ in range(2))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])  # same seed, same bytes


def test_cnn_degrade_trains_on_smaller_post_processed_batches(splits, tmp_path, monkeypatch):
    """``degrade=1`` post-processes every training batch (the network reads sides below the
    images' own), ``degrade=0`` none; validation stays as it is. Saved like any parameter."""
    seen = []
    forward = DenseDetectorNet.forward

    def spy(self, x):
        seen.append((self.training, x.shape[-1]))
        return forward(self, x)

    monkeypatch.setattr(DenseDetectorNet, "forward", spy)
    args, kw = fit_args(splits)
    sides = {}
    for d in (0.0, 1.0):
        seen.clear()
        det = CNNDetector(epochs=2, patience=2, batch_size=16, device="cpu",
                          degrade=d).fit(*args, **kw)
        sides[d] = ({s for t, s in seen if t}, {s for t, s in seen if not t})
    assert sides[0.0] == ({S}, {S})
    assert min(sides[1.0][0]) < S and sides[1.0][1] == {S}
    det.save(tmp_path / "d")
    assert load_detector(tmp_path / "d").degrade == 1.0
    for bad in (-0.1, 1.5):
        with pytest.raises(InputError, match="degrade must be a probability"):
            CNNDetector(degrade=bad).fit(*args, **kw)


def test_a_detector_trained_on_a_gpu_loads_and_scores_where_there_is_none(
        splits, tmp_path, monkeypatch):
    import torch

    args, kw = fit_args(splits)
    det = CNNDetector(epochs=1, batch_size=32, device="cpu").fit(*args, **kw)
    det.set_params(device="cuda")  # as `train-detector --device cuda` saves it
    det.save(tmp_path / "d")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    back = load_detector(tmp_path / "d")  # the saved "cuda" is where it trained, not a need
    assert back.device == "auto"
    images = splits["test"].fake[:4]
    np.testing.assert_array_equal(back.score(images), det.set_params(device="cpu").score(images))
    with pytest.raises(InputError, match="CUDA is not available"):
        load_detector(tmp_path / "d", device="cuda")  # asked for by name: still refused


def test_a_fusion_trained_on_a_gpu_loads_with_members_that_run_no_model(
        cnn_det, splits, tmp_path, monkeypatch):
    import torch
    from igpt_forensics.detectors import create_detector
    from igpt_forensics.detectors.fusion import FusionDetector

    tr, va = splits["train"], splits["val"]
    cnn = cnn_det.save(tmp_path / "cnn")
    rowcol = create_detector("rowcol").fit(tr.real, tr.fake).save(tmp_path / "rowcol")
    det = FusionDetector(members=[str(cnn), str(rowcol)], folds=3, device="cpu")
    det.fit(va.real, va.fake).set_params(device="cuda").save(tmp_path / "f")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    back = load_detector(tmp_path / "f")  # rowcol takes no device; the cnn runs here
    images = splits["test"].fake[:4]
    np.testing.assert_allclose(back.score(images), det.set_params(device="cpu").score(images),
                               rtol=1e-6)


def test_load_split_checks_every_file_against_the_manifest(dataset, tmp_path):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    data = load_arrays(copy, "test", real_forms="qreal")
    assert set(data.real_forms) == {"qreal"} and len(data.real) == len(data.fake)
    assert data.fake_masks.dtype == bool and data.fake_masks.any()
    victim = next(copy.rglob("*-fake.png"))
    Image.fromarray(np.zeros((S, S, 3), np.uint8)).save(victim)
    with pytest.raises(InputError, match="sha256 does not match"):
        for s in ("train", "val", "test"):
            load_arrays(copy, s)


def test_augmentation_moves_masks_with_the_pixels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, S, S, 3)).astype(np.uint8)
    masks = np.zeros((64, S, S), bool)
    masks[:, :, : S // 2] = True  # left half synthesized
    images[masks] = 0
    out, m = augment_batch(images, masks, np.random.default_rng(1), p=0.0)
    flipped = m[:, 0, -1]
    assert 10 < flipped.sum() < 54  # about half flipped
    assert np.array_equal(out[m], np.zeros((m.sum(), 3), np.uint8))  # pixels moved with masks
    out, m = augment_batch(images, masks, np.random.default_rng(2), p=1.0)
    assert out.shape == images.shape and m.shape == masks.shape and m.dtype == bool
    assert m.any(axis=(1, 2)).all()  # crops of 75%+ always keep part of the half


def test_palette_augmentation_shows_images_through_fitted_palettes(splits, tmp_path,
                                                                   monkeypatch):
    from igpt_forensics.detectors import cnn as cnn_module
    from igpt_forensics.detectors.cnn import PALETTE_SIZES, fit_palettes, palette_batch

    tr = splits["train"]
    palettes = fit_palettes(tr.real, seed=0)
    assert all(0.9 * k <= p.n_colors <= k for p, k in zip(palettes, PALETTE_SIZES))
    images = tr.fake[:24]
    rng = np.random.default_rng(0)
    out = palette_batch(images, palettes, rng, p=1.0)
    for y in out:  # every image now holds colors of one palette only
        colors = {tuple(c) for c in y.reshape(-1, 3)}
        assert any(colors <= {tuple(c) for c in p.colors} for p in palettes)
        assert len(colors) <= max(PALETTE_SIZES)
    assert not np.array_equal(out, images)
    assert np.array_equal(palette_batch(images, palettes, rng, p=0.0), images)
    # palette_classes="real": only the images marked (the reals) are quantized
    only = np.arange(len(images)) % 2 == 0
    part = palette_batch(images, palettes, np.random.default_rng(0), p=1.0, only=only)
    assert np.array_equal(part[~only], images[~only])
    assert not np.array_equal(part[only], images[only])
    # a cnn that trains with it saves the setting; without it (0) training draws nothing more
    args, kw = fit_args(splits)
    seen = []  # what training asks to quantize: the real images of each batch, no fake

    def spy(images, palettes, rng, p, only=None):
        seen.append((len(images), only))
        return palette_batch(images, palettes, rng, p, only)

    monkeypatch.setattr(cnn_module, "palette_batch", spy)
    det = CNNDetector(epochs=1, batch_size=32, device="cpu", palette_augment=0.5,
                      palette_classes="real")
    det.fit(*args, **kw).save(tmp_path / "d")
    marked = np.concatenate([only for _, only in seen])
    assert sum(n for n, _ in seen) == len(marked) and 0 < marked.sum() < len(marked)
    assert marked.sum() == len(args[0])  # one epoch: every real once, marked
    assert load_detector(tmp_path / "d").palette_augment == 0.5
    assert load_detector(tmp_path / "d").palette_classes == "real"
    with pytest.raises(InputError, match="palette_augment"):
        CNNDetector(palette_augment=2.0).fit(*args, **kw)
    with pytest.raises(InputError, match="palette_classes"):
        CNNDetector(palette_classes="fake").fit(*args, **kw)
    r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path / "nope"), "--kind",
                            "cnn", "--palette-classes", "fake", "--out", str(tmp_path / "e")])
    assert r.exit_code == 1 and "Traceback" not in r.output  # refused before reading data
    assert "--palette-classes must be one of both, real" in " ".join(r.output.split())


def test_pretrained_weights_come_from_a_local_timm_file(tmp_path):
    import timm

    ref = timm.create_model("resnet10t", pretrained=False, num_classes=7)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.5)
    file = tmp_path / "w.safetensors"
    save_file({k: v.numpy() for k, v in ref.state_dict().items()}, file)
    net = DenseDetectorNet("resnet10t", stages=2, pretrained=str(file))
    got = net.backbone.state_dict()
    want = ref.state_dict()
    shared = [k for k in got if k in want]
    assert "layer1.0.conv1.weight" in shared and len(shared) > 20
    for k in shared:
        torch.testing.assert_close(got[k], want[k])
    with pytest.raises(InputError, match="no such weights file"):
        DenseDetectorNet("resnet10t", pretrained=str(tmp_path / "missing.safetensors"))


# -- the command -------------------------------------------------------------------------------

def test_train_detector_command_trains_saves_and_scores(dataset, tmp_path):
    out = tmp_path / "det"
    r = runner.invoke(app, ["train-detector", "--dataset", str(dataset), "--kind", "features",
                            "--no-likelihood", "--out", str(out), "--json",
                            str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    assert "feature importances" in r.output and "test split" in r.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["kind"] == "features" and summary["test"]["all"]["auc"] > 0.6
    assert set(summary["feature_importances"]) == set(HAND_FEATURES)
    img = tmp_path / "x.png"
    Image.fromarray(load_arrays(dataset, "test").fake[0]).save(img)
    r = runner.invoke(app, ["score", "--detector", str(out), str(img)])
    assert r.exit_code == 0, r.output
    assert "features detector" in r.output


def test_train_detector_command_errors_in_one_line(tmp_path):
    r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path / "nope"), "--kind",
                            "cnn", "--out", str(tmp_path / "d")])
    assert r.exit_code == 1
    assert "error:" in r.output and "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1
    r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path), "--kind", "svm",
                            "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "--kind must be one of" in r.output
    r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path), "--kind", "fusion",
                            "--member", "cnn", "--combine", "median", "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "--combine must be one of regression, mean" in r.output


def test_train_detector_refuses_a_missing_test_split_before_training(tmp_path):
    from tests.core.test_provenance import make_dataset

    ds = make_dataset(tmp_path / "ds", n=3)  # items 0, 1, 2: train, train, val; no test
    r = runner.invoke(app, ["train-detector", "--dataset", str(ds), "--kind", "cnn",
                            "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "no images in split 'test'" in " ".join(r.output.split())
    assert not (tmp_path / "d").exists()  # nothing trained, nothing saved


def test_train_detector_on_a_pool_of_datasets(dataset, tiny_checkpoint, tmp_path):
    from igpt_forensics.detectors.trained import SplitData
    from igpt_forensics.generators.dataset import generate_dataset

    other = tmp_path / "topk"
    generate_dataset(other, 60, model=str(tiny_checkpoint), top_k=4, seed=5, device="cpu")
    joined = SplitData.concat([load_arrays(dataset, "train"), load_arrays(other, "train")])
    assert len(joined.fake) == len(load_arrays(dataset, "train").fake) + len(
        load_arrays(other, "train").fake)
    r = runner.invoke(app, ["train-detector", "--dataset", str(dataset), "--dataset",
                            str(other), "--kind", "features", "--no-likelihood", "--out",
                            str(tmp_path / "det"), "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert set(summary["test_by_dataset"]) == {str(dataset), str(other)}
    n_fake = sum(v["all"]["n_fake"] for v in summary["test_by_dataset"].values())
    assert summary["test"]["all"]["n_fake"] == n_fake
    # the saved detector says which generators and settings it learned from
    saved = load_detector(tmp_path / "det").fit_info_["trained_on"]
    gen = json.loads((dataset / "dataset.json").read_text())["generator"]["sha256"]
    assert [(x["dataset"], x["generator_sha256"], x["family"], x["top_k"]) for x in saved] == [
        (dataset.name, gen, "pixel", 0), ("topk", gen, "pixel", 4)]


def test_cnn_size_calibration_holds_the_false_positive_rate_at_every_side(cnn_det, tmp_path):
    """Thresholds calibrated at the training size flag most larger real photos (the shipped
    cnn: 99% at 256x256); per-side thresholds keep every side's real images under them."""
    from igpt_forensics.data import ImageSource, real_views

    det = load_detector(cnn_det.save(tmp_path / "cnn"))
    views = real_views(ImageSource("builtin"), (8, 16, 32, 64), per_photo=6, split="val")
    assert sorted(views) == [8, 16, 32, 64] and all(len(v) == 6 for v in views.values())
    det.calibrate_sizes(views)
    t = det.size_calibration_
    for side, ims in views.items():
        scores, loc = det.score_and_localize(np.stack(ims))
        assert np.all(scores <= det.threshold_ + 1e-9), side  # 1% of 6: none above
        assert not loc.region_flags.any(), side
    # between calibrated sides the terms interpolate in log side; past the ends they clamp
    def blank(h: int, w: int) -> np.ndarray:
        return np.zeros((h, w, 3), np.uint8)

    assert det._size_terms(blank(8, 8)) == (0.0, 0.0, t["map"][0])
    shift = det._size_terms(blank(16, 32))[0]  # side sqrt(512) = 22.6: between 16 and 32
    assert min(t["image"][1], t["image"][2]) - 1e-9 <= shift + t["image"][0] <= max(
        t["image"][1], t["image"][2]) + 1e-9
    assert det._size_terms(blank(500, 500)) == det._size_terms(blank(64, 64))
    # saved and loaded as it was; a broken table is refused with one line
    again = load_detector(det.save(tmp_path / "cal"))
    assert again.size_calibration_ == t
    # palette views: every crop through the palettes in turn, one view each
    from igpt_forensics.detectors.cnn import palette_views

    from igpt_forensics.palette import Palette

    palettes = [Palette.fit(np.stack(views[8]), k, seed=0) for k in (2, 4, 8)]
    seen = palette_views(views[16], palettes)
    assert len(seen) == len(views[16])
    for i, (im, view) in enumerate(zip(views[16], seen)):
        np.testing.assert_array_equal(view, palettes[i % 3].quantize(im[None])[0])
    assert [len(np.unique(v.reshape(-1, 3), axis=0)) <= k
            for v, k in zip(seen[:3], (2, 4, 8))] == [True] * 3
    np.testing.assert_allclose(again.score(views[64]), det.score(views[64]))
    from igpt_forensics.detectors.trained import checked_size_table

    for bad in ({**t, "sides": [8, 8, 32, 64]}, {**t, "map": t["map"][:2]},
                {**t, "image": [float("nan")] * 4}, {k: v for k, v in t.items() if k != "n"}):
        with pytest.raises(InputError, match="size_calibration_"):
            checked_size_table(bad, tmp_path)


def test_images_of_few_colors_get_thresholds_of_their_own(tmp_path):
    """The shipped cnn scores real crops through palettes of a few colors far above
    photographs, so one threshold over both lets the palette images through; with
    ``few_colors`` those images get thresholds of their own, and every other image keeps
    the thresholds over all real images."""
    from igpt_forensics.detectors.cnn import palette_views
    from igpt_forensics.detectors.trained import checked_size_table, distinct_colors

    from igpt_forensics.data import ImageSource, real_views
    from igpt_forensics.palette import Palette

    photos = real_views(ImageSource("builtin"), (16, 32), per_photo=12, split="val")
    palettes = [Palette.fit(np.stack(photos[16]), k, seed=0) for k in (2, 4, 8)]
    views = {side: ims + palette_views(ims, palettes) for side, ims in photos.items()}
    det, one = open_detector("cnn"), open_detector("cnn")
    det.target_fpr = one.target_fpr = 0.1  # 2 of each side's 24 real images, 1 of 12
    plain = one.calibrate_sizes(views).size_calibration_
    det.calibrate_sizes(views, few_colors=8)
    t = det.size_calibration_
    assert t["few_colors"] == 8 and t["n"] == [24, 24] and t["few_n"] == [12, 12]
    assert {k: t[k] for k in plain} == plain  # the others' thresholds: those over all
    # through palettes of 2-8 colors these real crops score far higher: a stricter band
    assert all(f > m for f, m in zip(t["few_image"], t["image"]))
    for side, ims in views.items():
        scores = det.score(ims)
        few = np.array([distinct_colors(im) <= 8 for im in ims])
        above = scores > det.threshold_ + 1e-9
        assert few.sum() == 12 and above[few].sum() <= 1, side  # 10% of 12
        assert above.sum() <= 2, side
        # one threshold over all lets both of the highest through, crops of few colors
        assert (one.score(ims)[few] > one.threshold_ + 1e-9).sum() == 2, side
    # an image's band is its own count of colors, at any size
    flat = np.zeros((16, 16, 3), np.uint8)
    rich = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    assert distinct_colors(flat) == 1 and distinct_colors(rich) == 256
    assert det._size_terms(flat)[:2] == pytest.approx(
        (t["few_image"][0] - t["image"][0], t["few_region"][0] - t["region"][0]))
    assert det._size_terms(rich)[:2] == (0.0, 0.0)
    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    assert distinct_colors(noise, limit=8) > 8  # counted on a sample first
    assert distinct_colors(noise) == len(np.unique(noise.reshape(-1, 3), axis=0))
    # saved and loaded with its band; a broken band is refused with one line
    again = load_detector(det.save(tmp_path / "few"))
    assert again.size_calibration_ == t
    np.testing.assert_allclose(again.score(views[32]), det.score(views[32]))
    for bad in ({**t, "few_colors": 0}, {**t, "few_colors": "8"}, {**t, "few_colors": True},
                {**t, "few_image": t["few_image"][:1]},
                {k: v for k, v in t.items() if k != "few_n"}):
        with pytest.raises(InputError, match="size_calibration_"):
            checked_size_table(bad, tmp_path)
    with pytest.raises(InputError, match="few_colors"):
        det.calibrate_sizes(views, few_colors=0)
    # the command: its table shows the band, and --few-colors 0 makes none
    r = runner.invoke(app, ["calibrate", "--detector", "cnn", "--data", "builtin", "--split",
                            "val", "--per-photo", "2", "--sides", "16", "--few-colors", "8",
                            "--out", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    assert "images of at most 8 colors apart" in " ".join(r.output.split())
    saved = load_detector(tmp_path / "cli").size_calibration_
    assert saved["few_colors"] == 8 and saved["n"][0] == 4
    r = runner.invoke(app, ["calibrate", "--detector", "cnn", "--data", "builtin", "--split",
                            "val", "--per-photo", "2", "--sides", "16", "--few-colors", "0",
                            "--out", str(tmp_path / "cli0")])
    assert r.exit_code == 0, r.output
    assert "few_colors" not in load_detector(tmp_path / "cli0").size_calibration_
    # enough real images at a side, but few of few colors: the band's threshold is warned of
    r = runner.invoke(app, ["calibrate", "--detector", "cnn", "--data", "builtin", "--split",
                            "train", "--per-photo", "7", "--sides", "16", "--out",
                            str(tmp_path / "cli64")])
    assert r.exit_code == 0, r.output
    saved = load_detector(tmp_path / "cli64").size_calibration_
    assert saved["few_colors"] == 64 and saved["n"] == [112] and 0 < saved["few_n"][0] < 100
    assert (f"few real images at 16 px, <= 64 colors ({saved['few_n'][0]})"
            in " ".join(r.output.split()))


def test_a_fusion_calibrated_by_size_keeps_real_crops_of_every_side_and_palette_under_it(
        cnn_det, splits, tmp_path):
    """A fusion's threshold comes from its validation images (8x8, photographed); the first
    shippable one flagged 20-31% of real crops through palettes, its cnn members 0-2%.
    ``calibrate_sizes`` gives it thresholds per side from such crops, as a cnn has."""
    from igpt_forensics.detectors.cnn import calibration_palettes, palette_views
    from igpt_forensics.detectors.fusion import FusionDetector

    from igpt_forensics.data import ImageSource, real_views

    photos = real_views(ImageSource("builtin"), (8, 16, 32), per_photo=6, split="val")
    palettes = calibration_palettes(photos[8], seed=0)
    views = {side: ims + palette_views(ims, palettes) for side, ims in photos.items()}
    # a member calibrated on the photos alone: through palettes it flags more of them
    member = load_detector(cnn_det.save(tmp_path / "cnn")).calibrate_sizes(photos)
    member = str(member.save(tmp_path / "member"))
    va = splits["val"]
    fusion = FusionDetector(members=[member, member], folds=3).fit(va.real, va.fake)
    assert fusion.size_calibration_ is None
    fusion.calibrate_sizes(views)
    t = fusion.size_calibration_
    assert t["sides"] == [8, 16, 32] and t["n"] == [12, 12, 12]
    for k, (side, ims) in enumerate(views.items()):
        scores, loc = fusion.score_and_localize(ims)
        assert np.all(scores <= fusion.threshold_ + 1e-9), side  # 1% of 12: none above
        # the shift is the fusion's own, on top of its members' (theirs are in the decision)
        unshifted = fusion._unshifted_outputs(ims)[0]
        np.testing.assert_allclose(scores, unshifted - (t["image"][k] - t["image"][0]))
        np.testing.assert_allclose(fusion.score(ims), scores)
    again = load_detector(fusion.save(tmp_path / "fusion"))
    assert again.size_calibration_ == t
    np.testing.assert_allclose(again.score(views[32]), fusion.score(views[32]))
    assert fusion.fit(va.real, va.fake).size_calibration_ is None  # a new regression


def test_cnn_inference_in_pixel_bounded_chunks_gives_the_same_scores(cnn_det, splits,
                                                                    monkeypatch):
    import igpt_forensics.detectors.cnn as cnn

    ims = splits["test"].real[:10]
    whole = cnn_det.score(ims)
    monkeypatch.setattr(cnn, "FORWARD_PIXELS", 3 * ims.shape[1] * ims.shape[2])  # 3 a pass
    np.testing.assert_allclose(cnn_det.score(ims), whole, rtol=1e-5, atol=1e-5)


def test_calibrate_cli_sets_size_thresholds_of_a_saved_cnn(cnn_det, tmp_path):
    src = cnn_det.save(tmp_path / "cnn")
    r = runner.invoke(app, ["calibrate", "--detector", str(src), "--data", "builtin",
                            "--split", "val", "--per-photo", "3", "--sides", "8,16",
                            "--out", str(tmp_path / "cal")])
    assert r.exit_code == 0, r.output
    assert "thresholds per image side" in " ".join(r.output.split())
    table = load_detector(tmp_path / "cal").size_calibration_
    assert table["sides"] == [8, 16]
    text = " ".join(r.output.split())  # 2 val photos x 3 crops x 2 forms: too few for 1%
    assert f"few real images at 8 px ({table['n'][0]}), 16 px ({table['n'][1]})" in text
    assert "calibrated in" in text
    # by default the crops come as photographed and through palettes in turn: twice as many
    r = runner.invoke(app, ["calibrate", "--detector", str(src), "--data", "builtin",
                            "--split", "val", "--per-photo", "3", "--sides", "8,16",
                            "--photos-only", "--out", str(tmp_path / "photos")])
    assert r.exit_code == 0, r.output
    photos = load_detector(tmp_path / "photos").size_calibration_
    assert table["n"] == [2 * n for n in photos["n"]]
    # (of them, those of at most 64 colors have thresholds apart: at 8x8, every crop)
    assert table["few_colors"] == 64 and table["few_n"][0] == table["n"][0]
    # the palettes take turns: the bundled generator's, then 16-256 colors fitted on the crops
    from igpt_forensics.generators.checkpoint import generator_palette

    from igpt_forensics.data import ImageSource, real_views

    crops = real_views(ImageSource("builtin"), (32,), per_photo=3, split="val")[32]
    palettes = calibration_palettes(crops, seed=0)
    np.testing.assert_array_equal(palettes[0].colors, generator_palette().colors)
    assert [len(p.colors) for p in palettes[1:]] == [16, 32, 64, 128, 256]
    r = runner.invoke(app, ["calibrate", "--detector", str(src), "--sides", "8,x",
                            "--out", str(tmp_path / "bad")])
    assert r.exit_code == 1 and "--sides" in r.output


def test_score_warns_when_a_cnn_without_size_thresholds_meets_a_large_image(cnn_det, splits,
                                                                           tmp_path):
    src = cnn_det.save(tmp_path / "cnn")
    big = np.asarray(Image.fromarray(splits["test"].real[0]).resize((40, 40)))
    Image.fromarray(big).save(tmp_path / "big.png")
    Image.fromarray(splits["test"].real[1]).save(tmp_path / "small.png")
    r = runner.invoke(app, ["score", str(tmp_path / "small.png"), "--detector", str(src)])
    assert r.exit_code == 0 and "calibrate it first" not in r.output
    r = runner.invoke(app, ["score", str(tmp_path / "big.png"), "--detector", str(src)])
    assert r.exit_code == 0 and "calibrate it first" in r.output, r.output
    det = load_detector(src)
    det.calibrate_sizes({8: list(splits["val"].real[:5]), 40: [big]}).save(tmp_path / "cal")
    r = runner.invoke(app, ["score", str(tmp_path / "big.png"), "--detector",
                            str(tmp_path / "cal")])
    assert r.exit_code == 0 and "calibrate it first" not in r.output, r.output


def test_cnn_relative_maps_rank_pixels_against_their_own_image(cnn_det, splits, tmp_path):
    """maps="relative" (the default): each map is the pixel logits minus the image's median,
    so every image's median pixel sits at 0.5 and the pixels keep their order; masks keep
    the real-calibrated threshold and drop pixels below the median; a file saved before the
    parameters existed loads with the absolute maps and the single view it was calibrated
    for."""

    fakes = splits["test"].fake
    assert cnn_det.maps == "relative"
    loc_rel = cnn_det.localize(fakes)
    loc_abs = cnn_det.set_params(maps="absolute").localize(fakes)
    one_view = cnn_det.set_params(tta="none").localize(fakes).maps
    cnn_det.set_params(maps="relative", tta="flip")
    rel, absolute = loc_rel.maps, loc_abs.maps
    # masks: above the threshold calibrated on real pixels, and above the image's median
    np.testing.assert_array_equal(loc_rel.masks, loc_abs.masks & (rel > 0.5))
    assert loc_rel.masks.any() and (loc_abs.masks & ~loc_rel.masks).any()
    np.testing.assert_allclose(np.median(rel.reshape(len(fakes), -1), axis=1), 0.5, atol=1e-6)
    assert not np.allclose(np.median(absolute.reshape(len(fakes), -1), axis=1), 0.5, atol=0.02)
    for r, a in zip(rel, absolute):  # one monotone map of the other within an image
        order = np.argsort(a.ravel(), kind="stable")
        assert np.all(np.diff(r.ravel()[order]) >= -1e-6)
    cnn_det.save(tmp_path / "old")
    # sealed as the code then sealed it
    reseal(tmp_path / "old", lambda meta: [meta["params"].pop(k) for k in ("maps", "tta")])
    old = load_detector(tmp_path / "old")
    assert old.maps == "absolute" and old.tta == "none"
    np.testing.assert_allclose(old.localize(fakes).maps, one_view, atol=1e-6)
    with pytest.raises(InputError, match="maps must be one of"):
        CNNDetector(maps="smooth").fit(*fit_args(splits)[0], **fit_args(splits)[1])


def test_cnn_scores_a_small_image_at_its_own_size_and_old_files_upscale_it(
        cnn_det, splits, monkeypatch, tmp_path):
    """``small="native"`` (the default): an image below the training side reaches the
    network as it is, its maps at its size; "upscale", what files saved before the parameter
    existed load as, enlarges it (Lanczos) to the training side first."""
    seen = []
    forward = DenseDetectorNet.forward
    monkeypatch.setattr(DenseDetectorNet, "forward",
                        lambda self, x: seen.append(tuple(x.shape[-2:])) or forward(self, x))
    crops = np.ascontiguousarray(np.asarray(splits["test"].fake[:4])[:, 1:7, 2:8])
    assert cnn_det.small == "native"
    native = cnn_det.localize(crops)
    assert set(seen) == {(6, 6)} and native.maps.shape == (4, 6, 6)
    seen.clear()
    upscaled = cnn_det.set_params(small="upscale").localize(crops)
    upscaled_scores = cnn_det.score(crops)
    cnn_det.set_params(small="native")
    assert set(seen) == {(S, S)} and upscaled.maps.shape == (4, 6, 6)
    assert not np.allclose(native.region_scores, upscaled.region_scores)
    assert not np.allclose(cnn_det.score(crops), upscaled_scores)
    cnn_det.save(tmp_path / "old")
    reseal(tmp_path / "old", lambda meta: meta["params"].pop("small"))
    old = load_detector(tmp_path / "old")
    assert old.small == "upscale"
    np.testing.assert_allclose(old.score(crops), upscaled_scores, atol=1e-6)
    with pytest.raises(InputError, match="small must be one of"):
        CNNDetector(small="tiles").fit(*fit_args(splits)[0], **fit_args(splits)[1])


def test_cnn_flip_views_average_an_image_and_its_mirror(cnn_det, splits):
    """tta="flip" (the default): the image logit and the pixel logits are the mean of the
    image's and its left-right mirror's (mirrored back), so an image and its mirror get one
    score and mirrored maps; "none" scores the image alone."""
    fakes = np.asarray(splits["test"].fake[:12])
    mirror = np.ascontiguousarray(fakes[:, :, ::-1])
    assert cnn_det.tta == "flip"
    both, loc = cnn_det.set_params(maps="absolute").score_and_localize(fakes)
    both_m, loc_m = cnn_det.score_and_localize(mirror)
    alone, loc_a = cnn_det.set_params(tta="none").score_and_localize(fakes)
    alone_m, loc_am = cnn_det.score_and_localize(mirror)
    cnn_det.set_params(maps="relative", tta="flip")

    def logit(p):
        p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p))

    np.testing.assert_allclose(both, (alone + alone_m) / 2, atol=1e-5)
    np.testing.assert_allclose(both_m, both, atol=1e-5)
    assert not np.allclose(alone, alone_m, atol=1e-3)  # the network alone is not symmetric
    np.testing.assert_allclose(logit(loc.maps),
                               (logit(loc_a.maps) + logit(loc_am.maps)[:, :, ::-1]) / 2,
                               atol=2e-3)
    np.testing.assert_allclose(loc_m.maps, loc.maps[:, :, ::-1], atol=1e-5)
    with pytest.raises(InputError, match="tta must be one of"):
        CNNDetector(tta="rotate").fit(*fit_args(splits)[0], **fit_args(splits)[1])


def test_cnn_scores_the_same_bytes_in_chunks_of_any_size(cnn_det, splits, monkeypatch):
    """Images of one size are scored in chunks of at most SCORE_PIXELS pixels (memory), in
    whole forward passes: the scores, maps and masks are the bytes of one pass over all."""
    cnn = sys.modules[type(cnn_det).__module__]
    items = list(splits["test"].fake[:10]) + [np.tile(splits["test"].real[0], (2, 3, 1))]
    side = items[0].shape[0]
    monkeypatch.setattr(cnn, "FORWARD_PIXELS", 2 * side * side)  # passes of 2 small images
    whole = cnn_det._score_and_localize_arrays(items)
    monkeypatch.setattr(cnn, "SCORE_PIXELS", 5 * side * side)  # chunks of 4: whole passes
    calls = []
    forward = cnn_det._forward_all
    monkeypatch.setattr(cnn_det, "_forward_all", lambda *a, **k: calls.append(len(a[1]))
                        or forward(*a, **k))
    parts = cnn_det._score_and_localize_arrays(items)
    assert calls == [4, 4, 2, 1]
    np.testing.assert_array_equal(whole[0], parts[0])
    for a, b in zip(whole[1], parts[1]):  # maps, masks, region scores: every image
        assert len(a) == len(b) == len(items)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_train_detector_param_reaches_the_cnn_and_the_last_seed_wins(dataset, tmp_path):
    out = tmp_path / "det"
    r = runner.invoke(app, ["train-detector", "--dataset", str(dataset), "--kind", "cnn",
                            "--epochs", "1", "--device", "cpu", "--no-test", "--seed", "0",
                            "--param", "stages=2", "--param", "width=8",
                            "--param", "pixel-weight=3", "--param", "relative_weight=0.5",
                            "--param", "ema=0.9", "--param", "upscale=2",
                            "--param", "degrade=0.5", "--seed", "5",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    det = load_detector(out)
    assert (det.stages, det.width, det.pixel_weight, det.relative_weight, det.ema,
            det.upscale, det.degrade, det.seed) == (2, 8, 3, 0.5, 0.9, 2, 0.5, 5)
    from igpt_forensics.detectors.cnn import DenseDetectorNet

    n_params = [sum(p.numel() for p in DenseDetectorNet(det.arch, stages, width).parameters())
                for stages, width in ((2, 8), (3, 32))]
    assert det.fit_info_["parameters"] == n_params[0] < n_params[1]


def test_splices_paste_a_box_of_each_fakes_pixels_into_its_own_quantized_real(splits):
    """`SplitData.with_splices`: a spliced fake is its item's quantized real with the fake's
    pixels inside a box (a quarter to half of each side) cut to the synthesized pixels, and
    its mask is that cut; same seed, same bytes."""
    tr = splits["train"]
    out = tr.with_splices(2, np.random.default_rng(3))
    n, side = len(tr.fake), tr.fake.shape[1]
    np.testing.assert_array_equal(out.fake[:n], tr.fake)  # the fakes themselves are kept
    assert out.real is tr.real and out.fake_kinds[:n] == tr.fake_kinds
    assert set(out.fake_kinds[n:]) == {"splice"} and len(out.fake) > 1.9 * n
    qreal = {i.removesuffix("-qreal"): k for k, i in enumerate(tr.real_ids)
             if i.endswith("-qreal")}
    fakes = {i: j for j, i in enumerate(tr.fake_ids)}
    for image, mask, name in zip(out.fake[n:], out.fake_masks[n:], out.fake_ids[n:]):
        source, _, copy = name.rpartition("-")
        j, k = fakes[source], qreal[source.removesuffix("-fake")]
        assert copy in ("splice0", "splice1") and mask.any()
        assert not (mask & ~tr.fake_masks[j]).any()  # only synthesized pixels are pasted
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert np.ptp(rows) < side // 2 and np.ptp(cols) < side // 2
        np.testing.assert_array_equal(image[mask], tr.fake[j][mask])
        np.testing.assert_array_equal(image[~mask], tr.real[k][~mask])
    again = tr.with_splices(2, np.random.default_rng(3))
    np.testing.assert_array_equal(again.fake, out.fake)
    np.testing.assert_array_equal(again.fake_masks, out.fake_masks)
    other = tr.with_splices(2, np.random.default_rng(4))
    assert not np.array_equal(other.fake_masks, out.fake_masks)
    assert tr.with_splices(0, np.random.default_rng(3)) is tr


def test_splices_need_quantized_reals_and_a_cnn(dataset, splits, tmp_path):
    only_real = load_arrays(dataset, "val", real_forms=("real",))
    with pytest.raises(InputError, match="paired with their quantized reals"):
        only_real.with_splices(1, np.random.default_rng(0))
    r = runner.invoke(app, ["train-detector", "--dataset", str(dataset), "--kind", "cnn",
                            "--real-forms", "real", "--splices", "1", "--epochs", "1",
                            "--no-test", "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert f"{dataset}: --splices needs fakes paired" in " ".join(r.output.split())
    for args, message in ((["--kind", "cnn", "--splices", "9"], "from 0 to 8, got 9"),
                          (["--kind", "features", "--splices", "1"], "for --kind cnn")):
        r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path / "nope"), *args,
                                "--out", str(tmp_path / "d")])
        assert r.exit_code == 1 and "Traceback" not in r.output
        assert message in " ".join(r.output.split()) and "nope" not in r.output


def test_train_detector_splices_add_fakes_to_the_train_split_only(dataset, tmp_path):
    out = tmp_path / "det"
    r = runner.invoke(app, ["train-detector", "--dataset", str(dataset), "--kind", "cnn",
                            "--epochs", "1", "--device", "cpu", "--no-test", "--seed", "5",
                            "--param", "stages=2", "--param", "width=8", "--splices", "1",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    info = load_detector(out).fit_info_
    train, val = load_arrays(dataset, "train"), load_arrays(dataset, "val")
    spliced = train.with_splices(1, np.random.default_rng([5, 0]))
    assert info["splices_per_fake"] == 1
    assert info["spliced_fakes"] == len(spliced.fake) - len(train.fake) > 0
    assert info["train_fake"] == len(spliced.fake)
    assert info["val_fake"] == len(val.fake)


@pytest.mark.parametrize("spec, message", [
    ("depth=3", "KEY one of stages"), ("stages", "expected KEY=VALUE"),
    ("stages=four", "must be a number"), ("stages=true", "must be a number"),
    ("stages=0", "stages must be a positive integer"), ("lr=-1", "lr must be > 0"),
    ("ema=1", "ema must be in [0, 1)"), ("upscale=8", "upscale must be at most 4"),
    ("degrade=2", "degrade must be a probability"), ("context=9", "context must be an integer")])
def test_train_detector_refuses_a_bad_param_before_loading_data(spec, message, tmp_path):
    r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path / "nope"), "--kind",
                            "cnn", "--param", spec, "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert message in " ".join(r.output.split()) and "nope" not in r.output
    r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path), "--kind", "features",
                            "--param", "stages=4", "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "only --kind cnn takes --param" in " ".join(r.output.split())


def test_a_fusion_of_like_members_can_average_their_z_scores(cnn_det, features_det, splits,
                                                          tmp_path):
    """``combine="mean"``: nothing fitted but the scaler; the score is the members' mean
    z-score (a regression fitted on the validation splits the members early-stopped on
    weighs like members by noise; measured held out: 0.903 against 0.908 for the mean)."""
    from igpt_forensics.detectors.fusion import FusionDetector

    members = [str(cnn_det.save(tmp_path / "cnn")), str(features_det.save(tmp_path / "feat"))]
    va, te = splits["val"], splits["test"]
    det = FusionDetector(members=members, folds=3, combine="mean").fit(va.real, va.fake)
    np.testing.assert_array_equal(det.model_.coef, [0.5, 0.5])
    assert det.model_.intercept == 0.0
    x = np.stack([cnn_det.score(te.fake), features_det.score(te.fake)], axis=1)
    both = np.stack([np.r_[cnn_det.score(va.real), cnn_det.score(va.fake)],
                     np.r_[features_det.score(va.real), features_det.score(va.fake)]], axis=1)
    z = (x - both.mean(0)) / both.std(0)  # standardized on the images it was fitted on
    np.testing.assert_allclose(det.score(te.fake), z.mean(1), rtol=1e-6, atol=1e-9)
    assert det.map_weights_ == [1.0, 0.0]  # the features' maps are per tile, not dense
    again = load_detector(det.save(tmp_path / "fusion"))
    assert again.combine == "mean"
    np.testing.assert_allclose(again.score(te.fake), det.score(te.fake))
    regression = FusionDetector(members=members, folds=3).fit(va.real, va.fake)
    assert not np.allclose(regression.model_.coef, det.model_.coef)
    with pytest.raises(InputError, match="combine must be one of regression, mean"):
        FusionDetector(members=members, combine="median").fit(va.real, va.fake)


def test_fusion_masks_are_the_weighted_vote_of_the_members_masks(fusion_det, splits, tmp_path):

    fakes = list(splits["test"].fake[:16])
    _, loc = fusion_det.score_and_localize(fakes)
    votes = np.zeros(np.shape(loc.maps))
    flags = np.zeros(len(fakes))
    for w, m in zip(fusion_det.map_weights_, fusion_det.members_):
        member = m.localize(fakes)
        votes += w * np.asarray(member.masks, np.float64)
        flags += w * np.asarray(member.region_flags, np.float64)
    np.testing.assert_array_equal(loc.masks, np.clip(votes, 0, 1).astype(np.float32) >= 0.5)
    # region flags too: each member's own (size-calibrated) region threshold votes
    np.testing.assert_array_equal(loc.region_flags, flags >= 0.5)
    # a file saved before the vote loads with the old rule: the fused map over a threshold
    fusion_det.save(tmp_path / "old")
    assert json.loads((tmp_path / "old" / "detector.json").read_text())["params"]["masks"] == "vote"
    reseal(tmp_path / "old", lambda meta: meta["params"].pop("masks"))
    old = load_detector(tmp_path / "old")
    old_loc = old.localize(fakes)
    assert old.masks == "threshold"
    np.testing.assert_array_equal(old_loc.masks, np.asarray(loc.maps) > old.map_threshold_)
    np.testing.assert_array_equal(old_loc.region_flags,
                                  old_loc.region_scores > old.region_threshold_)
    assert (np.asarray(old_loc.masks) != np.asarray(loc.masks)).any()


def test_two_equal_map_members_vote_as_their_union(saved_members, splits):
    """A vote needs half the weight: with two map members of equal weight, a pixel (or a
    region flag) is in the fusion's mask where either puts it in theirs. Measured on the
    shipped files, this union flagged 12.5% of 512 px real crops through odd palettes where
    one map member flagged 6%, and requiring both cut held-out mask IoU on top halves by
    0.05-0.22 (docs/results.md): the shipped fusion maps with one member."""
    from igpt_forensics.detectors.fusion import FusionDetector

    va, fakes = splits["val"], list(splits["test"].fake[:16])
    det = FusionDetector(members=saved_members[:2], combine="mean").fit(va.real, va.fake)
    assert det.map_weights_ == [0.5, 0.5]
    _, loc = det.score_and_localize(fakes)
    lik, cnn = (m.localize(fakes) for m in det.members_)
    both = np.asarray(lik.masks, bool) & np.asarray(cnn.masks, bool)
    either = np.asarray(lik.masks, bool) | np.asarray(cnn.masks, bool)
    assert (both != either).any()  # the members disagree somewhere, so the rule shows
    np.testing.assert_array_equal(np.asarray(loc.masks), either)
    np.testing.assert_array_equal(loc.region_flags, np.asarray(lik.region_flags, bool)
                                  | np.asarray(cnn.region_flags, bool))


def test_a_member_for_maps_alone_draws_and_does_not_score(saved_members, splits, dataset,
                                                           tmp_path, monkeypatch):
    """``score_members``: a member left out of them draws maps (averaged with equal weights
    with the other map members) but its score never enters the combination, nor is it run
    for scores alone; ``mask_members``: only those vote masks and region flags (the shipped
    fusion: six cnns score, two draw maps, one votes masks, so that two map members' union
    does not double the false alarms on real crops)."""
    from igpt_forensics.detectors.fusion import FusionDetector

    va, fakes = splits["val"], list(splits["test"].fake[:12])
    lik, cnn, feats = saved_members
    det = FusionDetector(members=[lik, cnn, feats], folds=3, combine="mean",
                         score_members=[0, 2], map_members=[0, 1], mask_members=[1])
    det.fit(va.real, va.fake)
    twin = FusionDetector(members=[lik, feats], folds=3, combine="mean").fit(va.real, va.fake)
    np.testing.assert_allclose(det.score(fakes), twin.score(fakes))  # the cnn adds nothing
    assert det.map_weights_ == [0.5, 0.5, 0.0] and det.mask_weights_ == [0.0, 1.0, 0.0]
    assert [m["coef"] for m in det.fit_info_["members"]] == [0.5, None, 0.5]
    scores, loc = det.score_and_localize(fakes)
    np.testing.assert_allclose(scores, twin.score(fakes))
    own = [m.localize(fakes) for m in det.members_[:2]]
    np.testing.assert_allclose(np.asarray(loc.maps), np.clip(
        0.5 * np.asarray(own[0].maps, np.float64) + 0.5 * np.asarray(own[1].maps), 0, 1),
        atol=1e-6)
    np.testing.assert_array_equal(loc.masks, own[1].masks)
    np.testing.assert_array_equal(loc.region_flags, own[1].region_flags)
    assert (np.asarray(own[0].masks) != np.asarray(own[1].masks)).any()  # the rule shows

    def not_run(*args, **kwargs):
        raise AssertionError("a member for maps alone was run for scores")
    monkeypatch.setattr(det.members_[1], "score", not_run)
    monkeypatch.setattr(det.members_[1], "score_and_localize", not_run)
    np.testing.assert_allclose(det.score(fakes), scores)
    monkeypatch.undo()
    again = load_detector(det.save(tmp_path / "fusion"))
    s2, loc2 = again.score_and_localize(fakes)
    np.testing.assert_allclose(s2, scores)
    np.testing.assert_array_equal(np.asarray(loc2.maps), np.asarray(loc.maps))
    np.testing.assert_array_equal(loc2.masks, loc.masks)
    # a file whose mask weights point at a member that draws nothing, or are all 0
    for bad in ([0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.5, 0.5]):
        reseal(tmp_path / "fusion", lambda meta, w=bad: meta["state"].update(mask_weights_=w))
        with pytest.raises(InputError, match="fusion: .*mask weights"):
            load_detector(tmp_path / "fusion")
    # a file saved before mask_members votes with its map weights
    reseal(tmp_path / "fusion", lambda meta: (meta["state"].pop("mask_weights_"),
                                              meta["params"].update(mask_members=None)))
    assert load_detector(tmp_path / "fusion").mask_weights_ == [0.5, 0.5, 0.0]
    with pytest.raises(InputError, match="mask_members needs map_members"):
        FusionDetector(members=saved_members, mask_members=[1]).fit(va.real, va.fake)
    with pytest.raises(InputError, match="score_members must name members by position"):
        FusionDetector(members=saved_members, score_members=[3]).fit(va.real, va.fake)
    r = runner.invoke(app, ["train-detector", "--dataset", str(dataset), "--kind", "fusion",
                            *(x for m in saved_members for x in ("--member", m)),
                            "--score-member", "0", "--score-member", "2", "--map-member", "0",
                            "--map-member", "1", "--mask-member", "1", "--combine", "mean",
                            "--no-test", "--out", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    assert "maps only" in r.output  # the member table names the member without a score
    cli = load_detector(tmp_path / "cli")
    assert cli.map_weights_ == [0.5, 0.5, 0.0] and cli.mask_weights_ == [0.0, 1.0, 0.0]
    assert cli.model_.features == ["0:likelihood", "2:features"]
    r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path / "nope"), "--kind",
                            "cnn", "--score-member", "0", "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "--score-member: only --kind fusion has members" in " ".join(
        r.output.split())


def test_a_fusion_draws_its_maps_from_the_members_named_for_them(saved_members, fusion_det,
                                                                 splits, tmp_path):
    """``map_members``: the members score together, the named ones alone draw the maps,
    masks and region flags (the shipped fusion: scores of four cnns, maps of one trained
    with the relative-map loss)."""
    from igpt_forensics.detectors.fusion import FusionDetector

    va, fakes = splits["val"], list(splits["test"].fake[:12])
    det = FusionDetector(members=saved_members, folds=3, map_members=[1]).fit(va.real, va.fake)
    assert det.map_weights_ == [0.0, 1.0, 0.0]  # members: likelihood, cnn, features
    np.testing.assert_array_equal(det.model_.coef, fusion_det.model_.coef)  # scores as before
    np.testing.assert_allclose(det.score(fakes), fusion_det.score(fakes))
    assert fusion_det.map_weights_[0] > 0  # without it, the likelihood paints the map too
    _, loc = det.score_and_localize(fakes)
    cnn = det.members_[1].localize(fakes)
    np.testing.assert_allclose(np.asarray(loc.maps), np.clip(np.asarray(cnn.maps), 0, 1))
    np.testing.assert_array_equal(loc.masks, cnn.masks)
    np.testing.assert_array_equal(loc.region_flags, cnn.region_flags)
    again = load_detector(det.save(tmp_path / "fusion"))
    assert again.map_members == [1] and again.map_weights_ == det.map_weights_
    # a file that names a member it does not have
    reseal(tmp_path / "fusion", lambda meta: meta["params"].update(map_members=[7]))
    with pytest.raises(InputError, match="fusion: map_members must name members by position"):
        load_detector(tmp_path / "fusion")
    for bad in ([3], [], 1, ["1"], [True]):
        with pytest.raises(InputError, match="map_members must name members by position"):
            FusionDetector(members=saved_members, map_members=bad).fit(va.real, va.fake)
    # equal weights: a member named twice would not weigh twice, so it is refused
    with pytest.raises(InputError, match="map_members names member 1 twice"):
        FusionDetector(members=saved_members, map_members=[1, 2, 1]).fit(va.real, va.fake)
    r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path / "nope"), "--kind",
                            "fusion", "--member", saved_members[0], "--map-member", "2",
                            "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "Traceback" not in r.output  # refused before reading data
    assert "map_members must name members by position (0 to 0)" in " ".join(r.output.split())
    r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path / "nope"), "--kind",
                            "cnn", "--map-member", "0", "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "only --kind fusion has members" in " ".join(r.output.split())
