"""One contract for every registered detector (scikit-learn's check_estimator in spirit):
parameters, fit, score, localize, threshold, save/load and determinism, on the same images.
A detector registered without a factory here fails the coverage test."""

import json
import math

import numpy as np
import pytest
from igpt_forensics.detectors.base import Detector, create_detector, list_detectors, load_detector

from igpt_forensics.errors import InputError


def _baseline(name):
    def fit(request):
        tr, va = request.getfixturevalue("splits")["train"], request.getfixturevalue("splits")["val"]
        return create_detector(name).fit(tr.real, tr.fake, val=(va.real, va.fake))
    return fit


FITTED = {
    "likelihood": lambda request: request.getfixturevalue("likelihood_det"),
    "cnn": lambda request: request.getfixturevalue("cnn_det"),
    "features": lambda request: request.getfixturevalue("features_det"),
    "fusion": lambda request: request.getfixturevalue("fusion_det"),
    "rowcol": _baseline("rowcol"),
    "laplacian": _baseline("laplacian"),
    "colors": _baseline("colors"),
}


def _json(value):
    return json.loads(json.dumps(value))


def test_every_registered_detector_is_checked_here():
    assert set(list_detectors()) == set(FITTED)


def test_the_builtin_table_names_each_detector_its_module_registers():
    """``BUILTIN`` (name -> module, read without importing the modules, so that --help stays
    fast) and the registered classes agree: each name resolves to a class of that name from
    that module, and a shipped calibration is where ``shipped_asset`` says."""
    import subprocess
    import sys

    from igpt_forensics.detectors.base import (
        BUILTIN,
        detector_class,
        ready_detectors,
        shipped_asset,
    )

    for name, module in BUILTIN.items():
        cls = detector_class(name)
        assert cls.name == name and cls.__module__.endswith(f".detectors.{module}"), name
        assert cls.default_asset in (None, shipped_asset(name)), name
    # listed before any detector module is imported: the same answer
    code = ("import sys; from igpt_forensics.detectors.base import list_detectors, "
            "ready_detectors; print(list_detectors(), ready_detectors()); "
            "assert 'torch' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{list_detectors()} {ready_detectors()}"


@pytest.fixture
def images(splits):
    test = splits["test"]
    square = list(np.concatenate([test.real[:3], test.fake[:3]]))
    tall = np.ascontiguousarray(np.tile(test.real[0], (2, 1, 1))[:13])  # 13x8: another shape
    return square + [tall]


@pytest.mark.parametrize("name", sorted(FITTED))
def test_detector_contract(name, request, images, tmp_path):
    cls = type(create_detector(name))
    fresh = cls()
    assert isinstance(fresh, Detector) and not fresh.is_fitted
    params = fresh.get_params()
    assert set(params) == set(cls._param_names())  # constructor stores parameters only
    assert cls(**params).get_params() == params
    with pytest.raises(InputError):
        fresh.score(images)

    det = FITTED[name](request)
    assert det.is_fitted and math.isfinite(det.threshold_)
    scores, loc = det.score_and_localize(images)
    assert scores.shape == (len(images),) and np.isfinite(scores).all()
    np.testing.assert_array_equal(det.score(images), scores)  # deterministic, same path
    assert len(loc.maps) == len(images) and len(loc.region_flags) == len(images)
    for image, heat in zip(images, loc.maps):
        heat = np.asarray(heat)
        assert heat.shape == image.shape[:2]  # a map at each image's own size
        assert heat.min() >= 0.0 and heat.max() <= 1.0

    folder = det.save(tmp_path / name)
    assert (folder / "SHA256SUMS").is_file()
    back = load_detector(folder)
    assert type(back) is type(det)
    assert _json(back.get_params()) == _json(det.get_params())  # (tuples come back as lists)
    s2, l2 = back.score_and_localize(images)
    np.testing.assert_array_equal(s2, scores)
    for a, b in zip(loc.maps, l2.maps):
        np.testing.assert_array_equal(a, b)
