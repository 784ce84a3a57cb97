"""Safe loading of every kind of bad or odd file, folders, data specs and patches."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from igpt_forensics.data import (
    BUILTIN_HELDOUT,
    BUILTIN_PHOTOS,
    ImageSource,
    LoadReport,
    iter_images,
    load_image,
    sample_patches,
)
from igpt_forensics.errors import InputError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_header_png(w=30000, h=30000) -> bytes:
    """A tiny file whose header claims w x h pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b""))


def photo(h=20, w=30):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 8 % 256, y * 12 % 256, (x + y) * 5 % 256], -1).astype(np.uint8)


@pytest.fixture
def files(tmp_path):
    """Good and bad files of every kind named in the foundation issue."""
    good, bad = {}, {}
    img = photo()
    p = tmp_path / "good.png"
    Image.fromarray(img).save(p)
    good[p] = img
    p = tmp_path / "sub" / "deeper" / "good.jpg"
    p.parent.mkdir(parents=True)
    Image.fromarray(img).save(p, quality=95)
    good[p] = None  # lossy: checked for shape only
    # 16-bit grayscale PNG
    g16 = (np.arange(20 * 30).reshape(20, 30) * 100 % 65536).astype(np.uint16)
    p = tmp_path / "gray16.png"
    Image.fromarray(g16).save(p)
    good[p] = np.repeat(np.rint(g16 / 65535 * 255).astype(np.uint8)[..., None], 3, -1)
    # RGBA: transparent pixels become white, opaque ones keep their color
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    rgba[:5, :, 3] = 0
    p = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(p)
    want = img.copy()
    want[:5] = 255
    good[p] = want
    # LA (gray + alpha)
    p = tmp_path / "la.png"
    Image.fromarray(np.dstack([img[..., 0], np.full(img.shape[:2], 255, np.uint8)]), "LA").save(p)
    good[p] = np.repeat(img[..., :1], 3, -1)
    # palette PNG
    pal_img = Image.fromarray(img).quantize(colors=16)
    p = tmp_path / "palette.png"
    pal_img.save(p)
    good[p] = np.asarray(pal_img.convert("RGB"))
    # 1-bit
    bw = (img[..., 0] > 128)
    p = tmp_path / "bw.png"
    Image.fromarray(bw).save(p)
    good[p] = np.repeat((bw * 255).astype(np.uint8)[..., None], 3, -1)
    # CMYK JPEG: pure red in CMYK
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(p, quality=95)
    good[p] = "red"
    # GIF: first frame
    p = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(p, save_all=True, append_images=frames[1:])
    good[p] = np.full((8, 8, 3), (255, 0, 0), np.uint8)
    for ext in ("bmp", "tiff", "webp"):
        p = tmp_path / f"good.{ext}"
        Image.fromarray(img).save(p, **({"lossless": True} if ext == "webp" else {}))
        good[p] = img
    # bad files
    buf = (tmp_path / "good.png").read_bytes()
    p = tmp_path / "truncated.png"
    p.write_bytes(buf[: len(buf) // 2])
    bad[p] = "truncated"
    p = tmp_path / "text.png"
    p.write_text("this is not an image\n")
    bad[p] = "not an image"
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    bad[p] = "empty"
    p = tmp_path / "bomb.png"
    p.write_bytes(huge_header_png())
    bad[p] = "too large"
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    return good, bad


def test_each_good_file_loads_as_rgb_uint8(files):
    good, _ = files
    for path, want in good.items():
        got = load_image(path)
        assert got.dtype == np.uint8 and got.ndim == 3 and got.shape[2] == 3, path
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want, err_msg=str(path))
        elif want == "red":
            assert np.abs(got.astype(int) - [255, 0, 0]).max() < 10, got[0, 0]


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "g16.png"
    Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16)).save(p)
    np.testing.assert_array_equal(load_image(p)[0, :, 0], [0, 100, 255])


def test_each_bad_file_gets_one_line_naming_it(files):
    _, bad = files
    for path, why in bad.items():
        with pytest.raises(InputError) as e:
            load_image(path)
        msg = str(e.value)
        assert str(path) in msg and "\n" not in msg, msg
        assert why in msg, msg


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path)


def test_exif_orientation_is_applied(tmp_path):
    img = photo(10, 40)  # wide
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = tmp_path / "rot.jpg"
    Image.fromarray(img).save(p, exif=exif)
    assert load_image(p).shape == (40, 10, 3)


def test_folder_mixing_good_and_bad_yields_all_good_and_reports_bad(files, tmp_path):
    good, bad = files
    report = LoadReport()
    loaded = dict(iter_images([tmp_path, tmp_path / "missing_dir"], report))
    assert set(loaded) == set(good)
    assert len(report.bad) == len(bad) + 1
    for path in bad:
        assert any(str(path) in line for line in report.bad)
    assert any("missing_dir" in line for line in report.bad)


def test_folder_source_skips_bad_photos_and_reports_them(files, tmp_path):
    good, bad = files
    source = ImageSource(tmp_path)
    ids = source.photo_ids("all")
    assert len(ids) == len(good) + len(bad)
    patches, crops = sample_patches(source, 50, size=8, seed=0, split="all")
    assert patches.shape == (50, 8, 8, 3)
    used = {c.photo_id for c in crops}
    assert not used & {p.name for p in bad}
    assert len(source.report.bad) == len(bad)


def test_builtin_split_is_by_photo_and_fixed():
    source = ImageSource("builtin")
    train, held = source.photo_ids("train"), source.photo_ids("heldout")
    assert set(held) == set(BUILTIN_HELDOUT)
    assert set(train) | set(held) == set(BUILTIN_PHOTOS) and not set(train) & set(held)
    assert source.photo_ids("val") == ["coffee"]
    assert set(source.photo_ids("test")) == {"flower", "grace_hopper"}
    _, crops = sample_patches(source, 40, size=16, seed=3, split="heldout")
    assert {c.photo_id for c in crops} <= set(BUILTIN_HELDOUT)
    # several splits joined by commas: their photos, in the source's order
    assert source.photo_ids("val, test") == held
    assert source.photo_ids("train,val") == [p for p in source.ids if p not in
                                              source.photo_ids("test")]
    assert "coffee" in source.photo_ids("train,val") and "coffee" not in train
    _, crops = sample_patches(source, 40, size=16, seed=3, split="train,val")
    assert not {c.photo_id for c in crops} & {"flower", "grace_hopper"}
    with pytest.raises(InputError, match="unknown split 'tset' in 'train,tset'"):
        source.photo_ids("train,tset")


def test_builtin_photos_are_real_rgb_photos():
    source = ImageSource("builtin")
    for pid, image in source.photos():
        assert image.ndim == 3 and min(image.shape[:2]) >= 256, pid
        assert image.std() > 20, pid  # not a flat test pattern
    assert not source.report


def test_patches_are_seeded_and_prefix_stable():
    source = ImageSource("builtin")
    a, ca = sample_patches(source, 30, size=16, seed=7)
    b, cb = sample_patches(source, 60, size=16, seed=7)
    np.testing.assert_array_equal(a, b[:30])
    assert ca == cb[:30]
    c, _ = sample_patches(source, 30, size=16, seed=8)
    assert not np.array_equal(a, c)
    assert len({(cr.side) for cr in cb}) > 10  # random scales


def test_folder_splits_are_disjoint_and_stable(tmp_path):
    for i in range(40):
        Image.fromarray(photo()).save(tmp_path / f"p{i:02d}.png")
    source = ImageSource(tmp_path)
    parts = {s: set(source.photo_ids(s)) for s in ("train", "val", "test")}
    assert sum(map(len, parts.values())) == 40 and len(set.union(*parts.values())) == 40
    assert parts["val"] | parts["test"] == set(source.photo_ids("heldout"))
    assert 0 < len(parts["train"]) < 40
    Image.fromarray(photo()).save(tmp_path / "zz-new.png")  # adding a file moves no other
    again = ImageSource(tmp_path)
    assert all(set(again.photo_ids(s)) >= parts[s] for s in parts)


def test_npz_source(tmp_path):
    stack = np.stack([photo(), photo()[::-1]])
    np.savez(tmp_path / "d.npz", stack=stack, single=photo(), gray=photo()[..., 0])
    source = ImageSource(tmp_path / "d.npz")
    assert len(source.ids) == 4
    patches, _ = sample_patches(source, 5, size=8, seed=0, split="all")
    assert patches.shape == (5, 8, 8, 3)
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError, match="bad.npz.*uint8"):
        ImageSource(tmp_path / "bad.npz")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="obj.npz"):
        ImageSource(tmp_path / "obj.npz")


def test_bad_specs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        ImageSource(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        ImageSource(tmp_path / "empty")
    with pytest.raises(InputError, match="positive"):
        sample_patches(ImageSource("builtin"), 0)


def _write_photos(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.roll(photo(24, 24), i, axis=1)).save(folder / name)


def test_several_sources_keep_their_own_splits_and_prefix_ids(tmp_path):
    _write_photos(tmp_path / "mine", [f"p{i:02d}.png" for i in range(12)])
    alone = ImageSource(tmp_path / "mine")
    both = ImageSource(["builtin", str(tmp_path / "mine")])
    assert len(both.ids) == len(BUILTIN_PHOTOS) + 12
    assert both.photo_ids("val")[:1] == ["builtin:coffee"]
    for pid in alone.ids:
        assert both.split_of(f"{tmp_path / 'mine'}:{pid}") == alone.split_of(pid)
    _, crops = sample_patches(both, 60, size=8, seed=0, split="train")
    kinds = {c.photo_id.split(":")[0] for c in crops}
    assert kinds == {"builtin", str(tmp_path / "mine")}  # patches from both sources
    with pytest.raises(InputError, match="twice"):
        ImageSource(["builtin", "builtin"])


def test_photo_list_checks_hashes_splits_and_stays_inside_its_root(tmp_path):
    import hashlib

    _write_photos(tmp_path / "root" / "a", ["x.png", "y.png", "z.png"])
    sha = {n: hashlib.sha256((tmp_path / "root" / "a" / n).read_bytes()).hexdigest()
           for n in ("x.png", "y.png", "z.png")}
    lst = tmp_path / "lists" / "photos.tsv"
    lst.parent.mkdir()
    lst.write_text("# root: ../root\npath\tsha256\tsplit\tlicence\n"
                   f"a/x.png\t{sha['x.png']}\ttrain\tCC0\n"
                   f"a/y.png\t{sha['x.png']}\tval\tCC0\n"  # wrong hash: skipped, reported
                   f"a/z.png\t\ttest\tCC0\n")
    source = ImageSource(lst)
    assert source.photo_ids("train") == ["a/x.png"] and source.photo_ids("test") == ["a/z.png"]
    assert [pid for pid, _ in source.photos()] == ["a/x.png", "a/z.png"]
    assert len(source.report.bad) == 1 and "a/y.png" in source.report.bad[0]
    assert "differs" in source.report.bad[0]
    rows = source.describe(["a/x.png"])
    assert rows == [{"id": "a/x.png", "split": "train", "file": "a/x.png",
                     "sha256": sha["x.png"]}]
    for bad in ("../root/a/x.png", str(tmp_path / "root" / "a" / "x.png"), "a/../../x.png"):
        lst.write_text(f"# root: ../root\n{bad}\n")
        with pytest.raises(InputError, match="relative|leaves"):
            ImageSource(lst)
    lst.write_text("path\tsplit\na/x.png\tholdout\n")
    with pytest.raises(InputError, match="split must be"):
        ImageSource(lst)


def test_split_subfolders_assign_photos(tmp_path):
    for split in ("train", "val", "test"):
        _write_photos(tmp_path / split, [f"{split}{i}.png" for i in range(3)])
    source = ImageSource(tmp_path)
    for split in ("train", "val", "test"):
        assert sorted(source.photo_ids(split)) == [f"{split}/{split}{i}.png" for i in range(3)]


def test_empty_npz_array_is_one_skipped_photo(tmp_path):
    np.savez(tmp_path / "d.npz", good=photo(), empty=np.zeros((0, 0, 3), np.uint8))
    source = ImageSource(tmp_path / "d.npz")
    patches, crops = sample_patches(source, 4, size=8, seed=0, split="all")
    assert {c.photo_id for c in crops} == {"d.npz:good"}
    assert len(source.report.bad) == 1 and "no pixels" in source.report.bad[0]


@pytest.mark.parametrize("n", [3, 4, 6, 9])
def test_small_folders_always_hold_out_a_val_and_a_test_photo(tmp_path, n):
    _write_photos(tmp_path, [f"img{i}.png" for i in range(n)])
    source = ImageSource(tmp_path)
    assert len(source.photo_ids("val")) >= 1 and len(source.photo_ids("test")) >= 1
    assert len(source.photo_ids("train")) >= 1
    assert ImageSource(tmp_path).photo_ids("test") == source.photo_ids("test")  # stable


def test_unencodable_file_names_skip_one_file(tmp_path):
    import os

    _write_photos(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "a.png").rename(tmp_path / os.fsdecode(b"bad\xffname.png"))
    source = ImageSource(tmp_path)
    assert sorted(source.ids) == ["b.png", "c.png"]
    assert len(source.report.bad) == 1 and "not valid UTF-8" in source.report.bad[0]
    source.report.bad[0].encode("utf-8")  # printable and JSON-able


def test_a_few_photos_keep_a_readable_val_and_test_photo(tmp_path):
    """README: 3 or more photos always keep one val and one test photo; a file that is not
    an image must not be the one held out."""
    from igpt_forensics.data import ImageSource, photo_split

    rng = np.random.default_rng(0)
    names = [f"p{i}.png" for i in range(40)]
    # three readable photos that the hash rule puts in train, and text files named .png
    photos = [n for n in names if photo_split(n) == "train"][:3]
    fakes = ([n for n in names if photo_split(n) == "val"][:1]  # held out by the hash rule
             + [n for n in names if photo_split(n) == "test"][:1])
    for n in photos:
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / n)
    for n in fakes:
        (tmp_path / n).write_text("not an image")
    source = ImageSource(tmp_path)
    split = {pid: source.split_of(pid) for pid in source.ids}
    assert [split[n] for n in fakes] == ["val", "test"]  # they keep theirs
    held = {s: [n for n in photos if split[n] == s] for s in ("val", "test")}
    assert held["val"] and held["test"], split
