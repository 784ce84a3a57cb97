"""The k-means palette: quality grows with colors, exact round trips, bounded encoding."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from igpt_forensics.data import load_patches
from igpt_forensics.errors import InputError
from igpt_forensics.palette import Palette


@pytest.fixture(scope="module")
def patches():
    return load_patches("builtin", 300, size=16, seed=0), load_patches(
        "builtin", 100, size=16, seed=1, split="heldout")


def test_psnr_rises_with_colors(patches):
    train, held = patches
    psnr = [Palette.fit(train, k, seed=0).psnr(held) for k in (4, 16, 64, 256)]
    assert all(b > a + 0.5 for a, b in zip(psnr, psnr[1:])), psnr
    assert psnr[-1] > 22, psnr


def test_encode_matches_brute_force_nearest(patches, rng):
    palette = Palette.fit(patches[0], 32, seed=0)
    images = rng.integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    tokens = palette.encode(images)
    assert tokens.shape == (3, 35) and tokens.dtype == np.int64
    d = ((images.reshape(-1, 1, 3).astype(int) - palette.colors[None].astype(int)) ** 2).sum(-1)
    best = d.min(1)
    chosen = d[np.arange(len(d)), tokens.reshape(-1)]
    np.testing.assert_array_equal(chosen, best)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 64), shape=st.tuples(st.integers(1, 3), st.integers(1, 9),
                                              st.integers(1, 9)), seed=st.integers(0, 1000))
def test_decode_encode_decode_is_identity(k, shape, seed):
    rng = np.random.default_rng(seed)
    palette = Palette(rng.integers(0, 256, (k, 3), dtype=np.uint8))
    tokens = rng.integers(0, palette.n_colors, (shape[0], shape[1] * shape[2]))
    images = palette.decode(tokens, shape[1:])
    assert images.shape == (*shape, 3)
    np.testing.assert_array_equal(palette.decode(palette.encode(images), shape[1:]), images)


def test_chunked_encoding_equals_single_pass(rng, monkeypatch):
    import igpt_forensics.palette as mod

    palette = Palette(rng.integers(0, 256, (64, 3), dtype=np.uint8))
    images = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    whole = palette.encode(images)
    monkeypatch.setattr(mod, "ENCODE_CHUNK", 37)
    np.testing.assert_array_equal(palette.encode(images), whole)


def test_save_load_and_hash(tmp_path, patches):
    palette = Palette.fit(patches[0], 16, seed=0)
    palette.save(tmp_path / "p.json")
    again = Palette.load(tmp_path / "p.json")
    np.testing.assert_array_equal(again.colors, palette.colors)
    assert again.sha256 == palette.sha256
    assert Palette.fit(patches[0], 16, seed=0).sha256 == palette.sha256  # seeded
    other = Palette(palette.colors[::-1])
    assert other.sha256 != palette.sha256
    d = json.loads((tmp_path / "p.json").read_text())
    d["colors"][0][0] = (d["colors"][0][0] + 1) % 256
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="hash"):
        Palette.load(tmp_path / "p.json")


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="between 2 and 512"):
        Palette.fit(np.zeros((1, 4, 4, 3), np.uint8), 1000)
    with pytest.raises(InputError, match="no such file"):
        Palette.load(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="x.json"):
        Palette.load(tmp_path / "x.json")
    palette = Palette(np.zeros((4, 3), np.uint8))
    with pytest.raises(InputError, match="square"):
        palette.decode(np.zeros((1, 10), np.int64))
    with pytest.raises(InputError, match="0..3"):
        palette.decode(np.full((1, 4), 9))
    with pytest.raises(InputError, match="shape"):
        palette.encode(np.zeros((4, 4), np.uint8))


def test_few_distinct_colors_give_an_exact_palette():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[0, :2] = (255, 0, 0)
    palette = Palette.fit(images, 16)
    assert palette.n_colors == 2 and palette.psnr(images) == float("inf")
