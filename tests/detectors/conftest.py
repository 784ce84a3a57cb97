"""Fitted detectors of every kind on one tiny generated dataset (8x8 images, the session's
16-color ``tiny_checkpoint``), shared by the detector tests of the whole session."""

import json

import pytest
from igpt_forensics.detectors.cnn import CNNDetector
from igpt_forensics.detectors.features import FeaturesDetector
from igpt_forensics.detectors.fusion import FusionDetector
from igpt_forensics.detectors.likelihood import LikelihoodDetector
from igpt_forensics.detectors.trained import DIGEST_KEY, load_arrays, state_digest
from igpt_forensics.generators.dataset import generate_dataset
from safetensors.numpy import load_file

from igpt_forensics.files import write_sha256sums


@pytest.fixture(scope="session")
def dataset(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "ds"
    generate_dataset(out, 120, model=str(tiny_checkpoint), device="cpu")
    return out


@pytest.fixture(scope="session")
def splits(dataset):
    return {s: load_arrays(dataset, s) for s in ("train", "val", "test")}


def reseal(folder, edit):
    """Edit a saved trained detector's detector.json (``edit(meta)``) as an attacker, or an
    older version of the code, would write it: its digest and SHA256SUMS recomputed, so only
    the loader's own checks stand in the way."""
    meta = json.loads((folder / "detector.json").read_text())
    edit(meta)
    arrays = load_file(folder / "arrays.safetensors") if (
        folder / "arrays.safetensors").exists() else {}
    meta["state"][DIGEST_KEY] = state_digest(meta["params"], meta["state"], arrays)
    (folder / "detector.json").write_text(json.dumps(meta))
    write_sha256sums(folder)


def fit_args(splits):
    tr, va = splits["train"], splits["val"]
    return (tr.real, tr.fake, tr.fake_masks), {"val": (va.real, va.fake, va.fake_masks)}


@pytest.fixture(scope="session")
def features_det(splits, tiny_checkpoint):
    args, kw = fit_args(splits)
    det = FeaturesDetector(likelihood_model=str(tiny_checkpoint), n_estimators=60)
    assert det.fit(*args, **kw) is det
    return det


@pytest.fixture(scope="session")
def cnn_det(splits):
    args, kw = fit_args(splits)
    det = CNNDetector(epochs=12, patience=6, batch_size=32, lr=5e-3, device="cpu")
    assert det.fit(*args, **kw) is det
    return det


@pytest.fixture(scope="session")
def likelihood_det(tiny_checkpoint, splits):
    det = LikelihoodDetector(model=str(tiny_checkpoint), sampling=("temperature=1", "top_k=4"),
                             n_samples=48, batch_size=256)
    return det.fit(splits["train"].real[:90])


@pytest.fixture(scope="session")
def saved_members(tmp_path_factory, features_det, cnn_det, likelihood_det):
    root = tmp_path_factory.mktemp("members")
    return [str(d.save(root / name)) for name, d in
            (("lik", likelihood_det), ("cnn", cnn_det), ("features", features_det))]


@pytest.fixture(scope="session")
def fusion_det(saved_members, splits):
    va = splits["val"]
    det = FusionDetector(members=saved_members, folds=3)
    assert det.fit(va.real, va.fake) is det
    return det


