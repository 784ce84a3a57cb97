"""Dataset provenance without a generator: splits, seeds, the manifest's crash safety, merge,
export and counts, on small hand-made datasets."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from igpt_forensics import __version__
from igpt_forensics import provenance as pv
from igpt_forensics.errors import InputError
from igpt_forensics.viz import png_bytes

# -- splits, seeds, names ---------------------------------------------------------------------


def test_item_seeds_depend_on_seed_item_and_stream_only():
    a = pv.item_seed(0, 5, "sample")
    assert a == pv.item_seed(0, 5, "sample")
    assert 0 <= a < 2**44
    others = {pv.item_seed(1, 5, "sample"), pv.item_seed(0, 6, "sample"),
              pv.item_seed(0, 5, "mask")}
    assert a not in others and len(others) == 3


def test_ids_sort_as_numbers_and_paths_are_bucketed():
    assert pv.id_digits(10) == 8 and pv.id_digits(10**9 + 1) == 10
    assert pv.image_id(42, "fake") == "00000042-fake"
    paths = pv.item_paths(1234)
    assert paths["mask"] == "images/00001/00001234-mask.png"
    assert set(paths) == {"real", "qreal", "fake", "mask", "changed"}


@pytest.mark.parametrize("text, want", [("0/1", (0, 1)), ("3/4", (3, 4))])
def test_parse_shard(text, want):
    assert pv.parse_shard(text) == want


@pytest.mark.parametrize("text", ["4/4", "-1/2", "1/0", "x", "1/2/3", "a/b"])
def test_parse_shard_refuses_bad_specs(text):
    with pytest.raises(InputError, match="--shard"):
        pv.parse_shard(text)


def test_shards_partition_the_items():
    n = 23
    parts = [set(pv.shard_items(n, (i, 4))) for i in range(4)]
    assert set().union(*parts) == set(range(n)) and sum(map(len, parts)) == n


# -- the manifest -------------------------------------------------------------------------------


def record(item, form, split="train", kind=None):
    return pv.make_record(id=pv.image_id(item, form), item=item, form=form,
                          label=pv.LABEL_OF[form], split=split,
                          path=pv.item_paths(item)[form],
                          mask_kind=kind if form == "fake" else None)


def test_records_have_every_field_in_order_and_refuse_unknown_ones():
    r = record(3, "fake", kind="box")
    assert tuple(r) == pv.RECORD_FIELDS and r["box"] is None
    with pytest.raises(ValueError):
        pv.make_record(id="x", colour="red")


def test_manifest_appends_whole_lines_and_repair_cuts_a_partial_one(tmp_path):
    path = tmp_path / pv.MANIFEST
    rows = [record(0, f) for f in pv.FORMS]
    with pv.ManifestWriter(path) as w:
        for r in rows:
            w.append(r)
    whole = path.read_bytes()
    assert whole.count(b"\n") == 3
    assert pv.repair_manifest(path) == 0
    with open(path, "ab") as f:  # a write torn by a crash
        f.write(b'{"id":"00000001-real","it')
    with pytest.raises(InputError, match="partial"):
        list(pv.read_manifest(path))
    assert pv.repair_manifest(path) == len(b'{"id":"00000001-real","it')
    assert path.read_bytes() == whole
    assert list(pv.read_manifest(path)) == rows
    with pv.ManifestWriter(path) as w:  # appending after a repair continues cleanly
        w.append(record(1, "real"))
    assert [r["id"] for r in pv.read_manifest(path)][-1] == "00000001-real"


def test_a_damaged_line_inside_the_manifest_is_an_error(tmp_path):
    path = tmp_path / pv.MANIFEST
    path.write_bytes(pv.record_line(record(0, "real")) + b"garbage\n"
                     + pv.record_line(record(0, "qreal")))
    with pytest.raises(InputError, match=":2: corrupt"):
        list(pv.read_manifest(path))


def test_canonical_order_sort_and_completeness(tmp_path):
    path = tmp_path / pv.MANIFEST
    rows = [record(i, f) for i in range(3) for f in pv.FORMS]
    shuffled = [rows[k] for k in np.random.default_rng(0).permutation(len(rows))]
    pv.write_manifest(path, shuffled)
    assert not pv.is_canonical(path)
    with pytest.raises(InputError):
        pv.check_complete(tmp_path, range(3), 8)
    pv.sort_manifest(path)
    assert pv.is_canonical(path) and list(pv.read_manifest(path)) == rows
    pv.check_complete(tmp_path, range(3), 8)
    pv.write_manifest(path, rows[:4] + rows[5:])  # a gap
    with pytest.raises(InputError, match="00000001-qreal"):
        pv.check_complete(tmp_path, range(3), 8)
    pv.write_manifest(path, rows + rows[-1:])  # a duplicate
    with pytest.raises(InputError, match="duplicate"):
        pv.check_complete(tmp_path, range(3), 8)
    pv.write_manifest(path, rows[:-1])  # cut short
    with pytest.raises(InputError, match="ends before 00000002-fake"):
        pv.check_complete(tmp_path, range(3), 8)


def test_count_records():
    rows = [record(0, "real", "val"), record(0, "qreal", "val"), record(0, "fake", "val", "box"),
            record(1, "real"), record(1, "qreal"), record(1, "fake", kind="full"),
            record(2, "real"), record(2, "qreal"), record(2, "fake", kind="full")]
    c = pv.count_records(rows)
    assert c["images"] == 9
    assert c["by_split"] == {"train": 6, "val": 3}
    assert c["by_label"] == {"real": 6, "fake": 3}
    assert c["by_form"] == {"real": 3, "qreal": 3, "fake": 3}
    assert c["fakes_by_mask_kind"] == {"box": 1, "full": 2}
    assert sum(r["images"] for r in c["rows"]) == 9
    assert [r["split"] for r in c["rows"]][0] == "train"


def test_settings_diff():
    a = {"n": 10, "seed": 0, "shard": [0, 1]}
    assert pv.settings_diff(a, dict(a)) == []
    assert pv.settings_diff(a, {**a, "seed": 1}) == ["seed: 0 vs 1"]
    assert pv.settings_diff(a, {**a, "shard": [1, 2]}, ignore=("shard",)) == []


# -- hand-made datasets: merge, export, stats ---------------------------------------------------

SPLIT_OF = {0: "train", 1: "train", 2: "val", 3: "test", 4: "train"}


def make_dataset(folder, n=5, shard=(0, 1), complete=True):
    """A small dataset written with the same schema as generators.dataset (random pixels)."""
    folder.mkdir(parents=True)
    settings = {"n": n, "size": 4, "masks": ["full"], "seed": 0, "shard": list(shard)}
    info = pv.new_info(settings, "builtin", {"sha256": "0" * 64}, [], [])
    pv.write_info(folder, info)
    with pv.ManifestWriter(folder / pv.MANIFEST) as w:
        for item in pv.shard_items(n, shard):
            paths = pv.item_paths(item)
            rng = np.random.default_rng(item)
            mask_blob = png_bytes(np.full((4, 4), 255, np.uint8))
            (folder / paths["mask"]).parent.mkdir(parents=True, exist_ok=True)
            (folder / paths["mask"]).write_bytes(mask_blob)
            for form in pv.FORMS:
                blob = png_bytes(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
                (folder / paths[form]).write_bytes(blob)
                fake = form == "fake"
                w.append(pv.make_record(
                    id=pv.image_id(item, form), item=item, form=form, label=pv.LABEL_OF[form],
                    split=SPLIT_OF[item % 5], path=paths[form],
                    sha256=hashlib.sha256(blob).hexdigest(),
                    mask_kind="full" if fake else None, mask_path=paths["mask"] if fake else None,
                    mask_sha256=hashlib.sha256(mask_blob).hexdigest() if fake else None))
    if complete:
        pv.finish_info(folder, info)
    return folder


def tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_merge_of_shards_is_byte_identical_to_the_whole(tmp_path):
    whole = make_dataset(tmp_path / "whole", n=7)
    shards = [make_dataset(tmp_path / f"s{i}", n=7, shard=(i, 3)) for i in (2, 0, 1)]
    info = pv.merge_datasets(shards, tmp_path / "merged")
    assert info["settings"]["shard"] == [0, 1] and info["complete"]
    assert tree(tmp_path / "merged") == tree(whole)
    assert json.loads((whole / pv.INFO).read_text())["tool_version"] == __version__


def test_merge_refuses_gaps_overlaps_other_settings_incomplete_and_altered_files(tmp_path):
    s0 = make_dataset(tmp_path / "s0", n=6, shard=(0, 2))
    s1 = make_dataset(tmp_path / "s1", n=6, shard=(1, 2))
    with pytest.raises(InputError, match="in no shard"):
        pv.merge_datasets([s0], tmp_path / "m1")
    with pytest.raises(InputError, match="more than one shard"):
        pv.merge_datasets([s0, s1, make_dataset(tmp_path / "w", n=6)], tmp_path / "m2")
    other = make_dataset(tmp_path / "o1", n=8, shard=(1, 2))
    with pytest.raises(InputError, match="n: 6 vs 8"):
        pv.merge_datasets([s0, other], tmp_path / "m3")
    partial = make_dataset(tmp_path / "p1", n=6, shard=(1, 2), complete=False)
    with pytest.raises(InputError, match="incomplete"):
        pv.merge_datasets([s0, partial], tmp_path / "m4")
    victim = s1 / pv.item_paths(3)["qreal"]
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(InputError, match="sha256 does not match"):
        pv.merge_datasets([s0, s1], tmp_path / "m5")
    with pytest.raises(InputError, match="not empty"):
        pv.merge_datasets([s0, s1], s0)
    assert not any((tmp_path / f"m{i}").exists() for i in (1, 2, 3, 4))


@pytest.mark.parametrize("real, per_item", [("both", 2), ("qreal", 1), ("real", 1)])
def test_export_folders_layout(tmp_path, real, per_item):
    ds = make_dataset(tmp_path / "ds", n=10)
    out = tmp_path / "out"
    counts = pv.export_folders(ds, out, real=real)
    items = {"train": 6, "val": 2, "test": 2}
    assert counts == {s: {"0_real": per_item * k, "1_fake": k} for s, k in items.items()}
    for split, k in items.items():
        assert len(list((out / split / "0_real").glob("*.png"))) == per_item * k
        fakes = sorted(p.name for p in (out / split / "1_fake").glob("*.png"))
        assert len(fakes) == k and all(f.endswith("-fake.png") for f in fakes)
    src = tree(ds)
    for p in out.rglob("*.png"):  # exported bytes are the dataset's bytes
        item = int(p.name.split("-")[0])
        form = p.name.split("-")[1][:-4]
        assert p.read_bytes() == src[pv.item_paths(item)[form]]


def test_export_refuses_incomplete_datasets_and_bad_options(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=3, complete=False)
    with pytest.raises(InputError, match="incomplete"):
        pv.export_folders(ds, tmp_path / "out")
    with pytest.raises(InputError, match="--real"):
        pv.export_folders(ds, tmp_path / "out", real="fake")


def test_stats_match_dataset_json(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=10, shard=(1, 2))
    s = pv.dataset_stats(ds)
    info = pv.read_info(ds)
    assert s["images"] == info["counts"]["images"] == 15
    # items 1, 3, 5, 7, 9 -> SPLIT_OF[item % 5]: train, test, train, val, train
    assert s["by_split"] == info["counts"]["by_split"] == {"train": 9, "val": 3, "test": 3}
    assert s["shard"] == [1, 2] and s["complete"]
    with pytest.raises(InputError, match="not a dataset"):
        pv.dataset_stats(tmp_path)


def test_lock_admits_one_writer(tmp_path):
    with pv.locked(tmp_path):
        with pytest.raises(InputError, match="another process"):
            with pv.locked(tmp_path):
                pass
    with pv.locked(tmp_path):  # released
        pass


def test_one_split_reader_with_an_explicit_integrity_mode(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=6)
    rows = [r for s in pv.SPLITS for r in pv.split_rows(ds, s)]
    assert len(rows) == sum(1 for _ in pv.read_manifest(ds / pv.MANIFEST))
    fakes = [r for r in rows if r["form"] == "fake"]
    victim, corrupt = fakes[0], fakes[1]
    img = ds / victim["path"]  # still a valid PNG, other pixels: only a hash can tell
    pixels = np.asarray(Image.open(img)).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(img)
    (ds / corrupt["path"]).write_bytes(b"not a png")
    with pytest.raises(InputError, match="sha256 does not match"):
        list(pv.read_rows(ds, [victim], verify=True))
    skipped: list[str] = []
    got = list(pv.read_rows(ds, rows, verify=False, skipped=skipped))
    assert len(got) == len(rows) - 1 and len(skipped) == 1  # one bad file costs one image
    assert corrupt["path"].rsplit("/", 1)[1] in skipped[0]
    for r, image, mask in got:
        assert image.dtype == np.uint8 and (mask is None) == (r["form"] != "fake")
    with pytest.raises(InputError, match="split must be"):
        pv.split_rows(ds, "tset")
