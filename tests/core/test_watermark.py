"""The keyed watermark and provenance stamps without a generator: the null is the binomial it
claims, a marked image is found (whole, in a box, cropped, pasted into a larger image), a wrong
key finds nothing, and a stamp tells intact from tampered, resized and missing."""

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from igpt_forensics import stamp
from igpt_forensics import watermark as wm
from igpt_forensics.data import ImageSource, image_sha256, sample_patches
from igpt_forensics.errors import InputError
from igpt_forensics.palette import Palette

KEY, OTHER = b"the watermark key", b"another key"


@pytest.fixture(scope="module")
def palette():
    real, _ = sample_patches(ImageSource("builtin"), 200, 16, seed=1, split="train")
    return Palette.fit(real, 64, seed=0)


@pytest.fixture(scope="module")
def real(palette):
    """Quantized real test patches: palette images like the generator's, made without a key."""
    patches, _ = sample_patches(ImageSource("builtin"), 40, 32, seed=2, split="test")
    return palette.quantize(patches)


def marked_tokens(key: wm.WatermarkKey, base: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A perfectly marked image: every masked pixel, in raster order, takes the green color
    nearest to the base pixel in its context (what a large delta makes the sampler do)."""
    tokens = base.copy()
    h, w = tokens.shape
    colors = key.palette.colors.astype(np.int64)
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            ctx, _ = key._cells(tokens)  # contexts use the pixels already final
            pos = key._positions(h, w)[y, x]
            green = key.green_table[pos, ctx[y, x]][key.token_group]
            if not green.any():
                continue
            d = ((colors - colors[tokens[y, x]]) ** 2).sum(1) + np.where(green, 0, 1 << 30)
            tokens[y, x] = int(np.argmin(d))
    return tokens


# -- the key ----------------------------------------------------------------------------------


def test_key_files_missing_empty_or_folder_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no such watermark key file"):
        wm.read_key(tmp_path / "nope")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(InputError, match="empty watermark key file"):
        wm.read_key(tmp_path / "empty")
    with pytest.raises(InputError, match="is a folder"):
        wm.read_key(tmp_path)
    (tmp_path / "k").write_bytes(b"\x00secret")
    assert wm.read_key(tmp_path / "k") == b"\x00secret"
    assert wm.key_fingerprint(b"\x00secret") == hashlib.sha256(b"\x00secret").hexdigest()


def test_bad_settings_are_refused(palette):
    for kwargs in ({"gamma": 0.0}, {"gamma": 1.0}, {"delta": -1.0}, {"delta": float("nan")},
                   {"token_groups": 0}, {"period": -1}):
        with pytest.raises(InputError):
            wm.WatermarkKey(KEY, palette, **kwargs)
    with pytest.raises(InputError):
        wm.WatermarkKey(b"", palette)


def test_groups_are_deterministic_and_exact_above_the_palette(palette):
    g = wm.color_groups(palette, 16)
    assert np.array_equal(g, wm.color_groups(Palette(palette.colors.copy()), 16))
    assert g.min() == 0 and len(np.unique(g)) == g.max() + 1 <= 16
    assert np.array_equal(wm.color_groups(palette, 64), np.arange(64))
    a, b = wm.WatermarkKey(KEY, palette), wm.WatermarkKey(KEY, palette)
    assert np.array_equal(a.green_table, b.green_table)
    assert not np.array_equal(a.green_table, wm.WatermarkKey(OTHER, palette).green_table)
    assert abs(a.green_table.mean() - 0.25) < 0.02
    d = a.describe()
    assert d["key_sha256"] == wm.key_fingerprint(KEY) and "key" not in d
    again = wm.WatermarkKey.from_description(KEY, palette, d)
    assert np.array_equal(again.green_table, a.green_table)


# -- the null ---------------------------------------------------------------------------------


def test_real_images_score_like_the_binomial_null_under_many_keys(palette, real):
    # For an image made without the key, green trials ~ Binomial(trials, gamma): over keys the
    # z-scores have mean 0 and variance 1, and nothing passes the thresholds.
    z = []
    for k in range(40):
        key = wm.WatermarkKey(f"key {k}".encode(), palette)
        z.extend(key.score(image).z for image in real[:20])
        if k < 2:
            for image in real:
                v = key.verify(image)
                assert not v.detected, (k, v.to_dict())
    z = np.array(z)
    assert abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2


# -- finding the mark -------------------------------------------------------------------------


def test_marked_image_is_found_and_a_wrong_key_finds_nothing(palette, real):
    key = wm.WatermarkKey(KEY, palette)
    tokens = marked_tokens(key, key.encode(real[0]), np.ones((32, 32), bool))
    v = key.verify_tokens(tokens)
    assert v.detected and v.where == "image" and v.image.z > 4
    assert v.image.trials == 1024  # one trial per pixel of a 32x32 tile
    wrong = wm.WatermarkKey(OTHER, palette).verify_tokens(tokens)
    assert not wrong.detected and wrong.image.z < 4, wrong.to_dict()
    # the same through the image and the palette
    image = palette.decode(tokens.reshape(-1), (32, 32))
    assert key.score(image).z == v.image.z


def test_a_box_in_a_real_image_is_found_by_the_region_scan(palette, real):
    key = wm.WatermarkKey(KEY, palette)
    base = key.encode(real[1])
    mask = np.zeros((32, 32), bool)
    mask[18:30, 3:15] = True  # 144 of 1024 pixels
    marked = marked_tokens(key, base, mask)
    v = key.verify_tokens(marked)
    assert v.regions.detected, v.to_dict()
    t, left, h, w = v.regions.best.box
    overlap = mask[t:t + h, left:left + w].mean()
    assert overlap > 0.5
    assert v.regions.threshold == wm.ALPHA / v.regions.tests  # Bonferroni over the windows
    with_mask = key.verify_tokens(marked, mask=mask)  # the mask a stamp records
    assert with_mask.mask is not None and with_mask.mask.p < wm.ALPHA
    assert with_mask.mask.pixels == 144


def test_a_crop_and_a_paste_are_found_by_the_offset_search(palette, real):
    key = wm.WatermarkKey(KEY, palette)
    tokens = marked_tokens(key, key.encode(real[2]), np.ones((32, 32), bool))
    crop = tokens[5:29, 3:27]  # 24x24: positions moved by (5, 3)
    v = key.verify_tokens(crop)
    assert v.image.p > wm.ALPHA and v.shifted.detected
    assert v.shifted.best.offset == (5, 3)
    big = np.tile(key.encode(real[3]), (3, 3))  # 96x96 real, the mark pasted at (40, 21)
    big[40:72, 21:53] = tokens
    v = key.verify_tokens(big)
    assert v.shifted.detected and v.shifted.best.offset == ((-40) % 32, (-21) % 32)
    assert not key.verify_tokens(np.tile(key.encode(real[3]), (3, 3))).detected


def test_exact_token_scheme_of_the_paper_counts_distinct_pairs(palette, real):
    key = wm.WatermarkKey(KEY, palette, token_groups=64, context_groups=64, period=0)
    flat = np.full((32, 32), 7)
    s = key.score_tokens(flat)  # (start, 7) once, then (7, 7) 1023 times: 2 trials
    assert s.pixels == 1024 and s.trials == 2
    tokens = marked_tokens(key, key.encode(real[4]), np.ones((32, 32), bool))
    assert key.verify_tokens(tokens).detected
    assert key.shifted(tokens).tests == 0  # no positions, nothing to shift


# -- stamps -----------------------------------------------------------------------------------


def stamped(image, record):
    data = stamp.stamped_png(image, record)
    text, rec = stamp.read_stamp(data)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return decoded, text, rec


def test_stamp_tells_intact_tampered_resized_missing_and_invalid():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    record = {"id": "x", "size": 8, "pixels_sha256": image_sha256(image), "form": "fake",
              "mask_kind": "top-half", "box": None}
    decoded, text, rec = stamped(image, record)
    assert rec == record and stamp.check(decoded, text, rec).status == "intact"
    one = decoded.copy()
    one[4, 4, 1] ^= 1  # one pixel, one bit
    assert stamp.check(one, text, rec).status == "tampered"
    assert stamp.check(decoded[:6], text, rec).status == "resized"
    assert stamp.check(decoded, None, None).status == "missing"
    assert stamp.check(decoded, "not json", None).status == "invalid"
    jpeg = io.BytesIO()
    Image.fromarray(image).save(jpeg, format="JPEG")
    assert stamp.read_stamp(jpeg.getvalue()) == (None, None)
    assert stamp.record_mask(rec, (8, 8)).sum() == 32
    assert stamp.record_mask({**rec, "form": "real"}, (8, 8)) is None
    # deterministic bytes: no timestamps
    assert stamp.stamped_png(image, record) == stamp.stamped_png(image, record)


def test_completion_records_round_trip_their_mask():
    mask = np.zeros((8, 8), bool)
    mask[2:5, 1:7] = True
    r = stamp.completion_record(size=8, mask_bits=stamp.pack_mask(mask), seed=3,
                                pixels_sha256="0" * 64)
    assert list(r) == list(stamp.COMPLETION_FIELDS) and r["format"] == stamp.COMPLETION_FORMAT
    assert np.array_equal(stamp.record_mask(r, (8, 8)), mask)
    with pytest.raises(ValueError):
        stamp.completion_record(secret_key="x")
