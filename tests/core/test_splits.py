"""The one split reader (`igpt_forensics.splits`): every labeled layout with no conversion
step (a generated dataset, 0_real/ 1_fake folders nested per generator, a CSV/JSONL list),
the integrity modes, and the outside layouts in `bench` and `train-detector`."""

import json

import numpy as np
import pytest
from igpt_forensics.detectors.trained import load_arrays, stack_split
from PIL import Image
from typer.testing import CliRunner

from igpt_forensics import provenance as pv
from igpt_forensics.cli import app
from igpt_forensics.errors import InputError
from igpt_forensics.splits import Split, load_split, split_counts

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
    return tiny_dataset


@pytest.fixture(scope="module")
def per_generator(dataset, tmp_path_factory):
    """CNNDetection's layout, two generators: OUT/<split>/<generator>/{0_real,1_fake}/; the
    fakes of 'gen-b' are the dataset's fakes flipped (another 'generator')."""
    exported = tmp_path_factory.mktemp("exp") / "exp"
    pv.export_folders(dataset, exported, real="qreal")
    root = tmp_path_factory.mktemp("multi") / "multi"
    for split_dir in sorted(exported.iterdir()):
        for i, p in enumerate(sorted(split_dir.glob("*/*.png"))):
            gen = "gen-a" if i % 2 else "gen-b"
            dest = root / split_dir.name / gen / p.parent.name / p.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            image = np.asarray(Image.open(p).convert("RGB"))
            if gen == "gen-b" and p.parent.name == "1_fake":
                image = image[:, ::-1]
            Image.fromarray(np.ascontiguousarray(image)).save(dest)
    return root


def test_a_generated_dataset_reads_in_manifest_order_in_both_integrity_modes(dataset,
                                                                             tmp_path):
    loose, strict = load_split(dataset, "test"), load_split(dataset, "test", verify=True)
    rows = pv.split_rows(dataset, "test")
    assert loose.real_order == [r["form"] for r in rows if r["form"] != "fake"]
    assert all(np.array_equal(a, b) for a, b in zip(loose.fake, strict.fake))
    images, forms, ids = loose.reals(("qreal",))
    assert forms == ["qreal"] * len(loose.qreal) and ids == loose.ids["qreal"]
    # one altered file: scoring skips it with a line, training refuses the dataset
    row = next(r for r in rows if r["form"] == "fake")
    original = (dataset / row["path"]).read_bytes()
    (dataset / row["path"]).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    try:
        assert len(load_split(dataset, "test").fake) == len(loose.fake) - 1
        with pytest.raises(InputError, match="sha256 does not match"):
            load_split(dataset, "test", verify=True)
    finally:
        (dataset / row["path"]).write_bytes(original)


def test_nested_generator_folders_make_one_test_set_per_generator(per_generator, tmp_path):
    test = load_split(per_generator, "test")
    assert set(test.generators) == {"gen-a", "gen-b"} and not test.qreal
    parts = test.by_generator()
    assert set(parts) == {"multi:gen-a", "multi:gen-b"}
    assert sum(len(p.fake) for p in parts.values()) == len(test.fake)
    assert all(len(p.real) == len(test.real) for p in parts.values())
    r = runner.invoke(app, ["bench", "--dataset", str(per_generator), "--detector",
                            "examples.outside_detector:StreakDetector", "--bootstrap", "10",
                            "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert {d["name"] for d in doc["datasets"]} == {"multi", "multi:gen-a", "multi:gen-b"}
    assert {r["dataset"] for r in doc["image"]} >= {"multi:gen-a", "multi:gen-b"}


def test_a_csv_list_with_masks_generators_splits_and_a_path_outside(dataset, tmp_path):
    test = load_split(dataset, "test")
    rows = ["path,label,mask,generator,split"]
    for i, (im, m) in enumerate(zip(test.fake[:6], test.masks[:6])):
        Image.fromarray(im).save(tmp_path / f"f{i}.png")
        Image.fromarray(m.astype(np.uint8) * 255).save(tmp_path / f"m{i}.png")
        rows.append(f"f{i}.png,1,m{i}.png,g{i % 2},test")
    for i, im in enumerate(test.qreal[:5]):
        Image.fromarray(im).save(tmp_path / f"r{i}.png")
        rows.append(f"r{i}.png,real,,,test")
    rows += ["../outside.png,1,,,test", "r0.png,maybe,,,test"]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    got = load_split(tmp_path / "list.csv", "test")
    assert len(got.fake) == 6 and len(got.real) == 5 and got.kinds == ["region"] * 6
    assert all(np.array_equal(a, b) for a, b in zip(got.masks, test.masks[:6]))
    assert got.generators == ["g0", "g1"] * 3
    assert any("outside.png" in s and "list.csv:13" in s for s in got.skipped)
    assert any("list.csv:14" in s and "label" in s for s in got.skipped)
    assert split_counts(tmp_path / "list.csv")["test"] == 11
    with pytest.raises(InputError, match="'train' split has no real/fake"):
        load_split(tmp_path / "list.csv", "train")
    (tmp_path / "bad.csv").write_text("file,class\nx.png,1\n")
    with pytest.raises(InputError, match="needs the columns path,label"):
        load_split(tmp_path / "bad.csv", "test")


def test_stacking_crops_mixed_sizes_to_the_common_one_and_reports_smaller(tmp_path):
    rng = np.random.default_rng(0)
    data = Split("mixed", tmp_path, "train")
    for i, (h, w) in enumerate([(8, 8), (8, 8), (12, 10), (4, 4)]):
        data.add("real", rng.integers(0, 256, (h, w, 3), dtype=np.uint8), f"r{i}")
        data.add("fake", rng.integers(0, 256, (h, w, 3), dtype=np.uint8), f"f{i}")
    big = data.real[2]
    out = stack_split(data, ("real",))
    assert out.real.shape == (3, 8, 8, 3) and out.fake_masks.shape == (3, 8, 8)
    assert np.array_equal(out.real[2], big[2:10, 1:9])
    assert sum("r3: 4x4, smaller than the 8x8" in s for s in data.skipped) == 1


def test_train_detector_learns_from_an_outside_folder(per_generator, tmp_path):
    data = load_arrays(per_generator, "train")
    assert set(data.real_forms) == {"real"} and len(data.fake) > 0
    r = runner.invoke(app, ["train-detector", "--dataset", str(per_generator), "--kind",
                            "features", "--no-likelihood", "--out", str(tmp_path / "det"),
                            "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["fit_info"]["trained_on"] == [{"dataset": "multi",
                                                  "layout": "0_real/1_fake"}]
    assert summary["test"]["all"]["auc"] > 0.5
    r = runner.invoke(app, ["train-detector", "--dataset", str(tmp_path), "--kind",
                            "features", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "neither a dataset written by 'generate'" in r.output
