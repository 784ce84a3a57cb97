"""The benchmark harness end to end on a tiny generated dataset: metrics.json validates
against its schema, metrics agree with scikit-learn, report.html is self-contained and every
embedded image decodes; an outside detector plugs in by its import path."""

import base64
import importlib.util
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from igpt_forensics.generators.dataset import generate_dataset
from PIL import Image
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from examples.outside_detector import StreakDetector
from igpt_forensics.bench import Study, run_benchmark, validate
from igpt_forensics.cli import app
from igpt_forensics.errors import InputError
from igpt_forensics.splits import load_split


def _benchmark_script(name: str):
    """benchmarks/NAME.py imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).parents[2] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_outside_detector_and_report(tiny_dataset, tmp_path):
    study = Study(datasets={"tiny": str(tiny_dataset)},
                  detectors={"streak": "examples.outside_detector:StreakDetector"},
                  perturbations=["none", "jpeg75"], bootstrap=30, out=str(tmp_path / "rep"))
    doc = run_benchmark(study, {"streak": StreakDetector()})
    validate(doc)
    on_disk = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    validate(on_disk)
    assert {r["perturbation"] for r in doc["image"]} == {"none", "jpeg75"}
    # the AUC in the table is scikit-learn's on the same scores
    test = load_split(tiny_dataset, "test")
    s_neg = StreakDetector().score(test.qreal)
    s_pos = StreakDetector().score(test.fake)
    row = next(r for r in doc["image"] if r["perturbation"] == "none"
               and r["real_form"] == "qreal" and r["fakes"] == "all")
    want = roc_auc_score(np.r_[np.zeros(len(s_neg)), np.ones(len(s_pos))], np.r_[s_neg, s_pos])
    assert row["auc"] == pytest.approx(want)
    assert row["auc_lo"] <= row["auc"] <= row["auc_hi"]
    assert {r["fakes"] for r in doc["region"]} == {"top-half", "box"}
    csv_text = (tmp_path / "rep" / "metrics.csv").read_text()
    assert csv_text.splitlines()[0].startswith("level,detector,dataset")
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<html" in page and "http://" not in page and "https://" not in page
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) >= 4
    for uri in uris:
        Image.open(io.BytesIO(base64.b64decode(uri))).load()  # every embedded image decodes


def test_bench_cli_with_a_study_file(tiny_dataset, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text('out = "rep2"\nperturbations = ["none"]\nbootstrap = 20\n'
                     f'[datasets]\ntiny = "{tiny_dataset}"\n'
                     '[detectors]\nstreak = "examples.outside_detector:StreakDetector"\n')
    r = CliRunner().invoke(app, ["bench", "--config", str(study)])
    assert r.exit_code == 0, r.output
    assert "streak" in r.output and (tmp_path / "rep2" / "report.html").exists()
    assert "benchmarking: streak on tiny" in r.output  # off a terminal: plain progress lines
    # the report's warnings reach the terminal too, on stderr (the tiny test split is small)
    assert "warning: dataset tiny: only" in " ".join(r.stderr.split())


def test_bench_errors(tiny_dataset, tmp_path):
    with pytest.raises(InputError, match="missing 'image'"):
        validate({"format": "igpt-forensics-metrics-v1", "tool_version": "x", "created": "x",
                  "machine": {}, "settings": {"split": "test", "perturbations": [], "seed": 0},
                  "datasets": [], "detectors": [], "region": [], "cross": []})
    r = CliRunner().invoke(app, ["bench", "--dataset", str(tiny_dataset), "--detector",
                                 "nosuchmodule:X", "--out", str(tmp_path / "r")])
    assert r.exit_code == 1 and "cannot import" in r.output
    r = CliRunner().invoke(app, ["score", str(tiny_dataset / "images"), "--detector",
                                 "examples.outside_detector:StreakDetector"])
    assert r.exit_code == 1 and "score needs" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["bench", "--dataset", str(tmp_path / "missing"),
                                 "--detector", "examples.outside_detector:StreakDetector"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["bench", "--dataset", str(tiny_dataset), "--perturb", "rot9"])
    assert r.exit_code == 1 and "unknown perturbation" in r.output


def test_a_study_file_makes_its_own_datasets_then_reuses_them(tiny_checkpoint, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text('out = "rep"\nbootstrap = 20\n'
                     '[detectors]\nstreak = "examples.outside_detector:StreakDetector"\n'
                     f'[datasets.t1]\npath = "ds/t1"\nn = 60\nmodel = "{tiny_checkpoint}"\n'
                     'masks = "top-half,full"\nseed = 3\n'
                     f'[datasets.topk]\npath = "ds/topk"\nn = 60\nmodel = "{tiny_checkpoint}"\n'
                     'top_k = 4\nseed = 3\n')
    r = CliRunner().invoke(app, ["bench", "--config", str(study)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rep" / "report.html").exists()  # relative to the study file
    info = json.loads((tmp_path / "ds" / "topk" / "dataset.json").read_text())
    assert info["settings"]["top_k"] == 4 and info["settings"]["n"] == 60
    assert "t1" in r.output and "topk" in r.output  # two datasets: the cross table is shown
    before = (tmp_path / "ds" / "t1" / "manifest.jsonl").read_bytes()
    r = CliRunner().invoke(app, ["bench", "--config", str(study)])
    assert r.exit_code == 0, r.output
    assert "items made" not in r.output  # complete datasets are reused, not remade
    assert (tmp_path / "ds" / "t1" / "manifest.jsonl").read_bytes() == before


def test_datasets_only_makes_the_datasets_and_benchmarks_nothing(tiny_checkpoint, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text('out = "rep"\n[detectors]\nlikelihood = "likelihood"\n'
                     f'[datasets.t1]\npath = "ds/t1"\nn = 12\nmodel = "{tiny_checkpoint}"\n'
                     'masks = "full"\nseed = 3\n')
    r = CliRunner().invoke(app, ["bench", "--config", str(study), "--datasets-only"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (tmp_path / "ds" / "t1" / "manifest.jsonl").open()]
    assert sum(r["label"] == "fake" for r in rows) == 12 and "datasets ready" in r.output
    assert not (tmp_path / "rep").exists()  # no detector was loaded or run
    r = CliRunner().invoke(app, ["bench", "--datasets-only"])
    assert r.exit_code == 1 and "needs a --config" in r.output


@pytest.mark.parametrize("body, message", [
    ('[datasets.a]\nn = 3\n', "needs a folder"),
    ('[datasets.a]\npath = "x"\n', "needs n = ITEMS"),
    ('[datasets.a]\npath = "x"\nn = 3\ntemprature = 2\n', "unknown keys ['temprature']"),
    ('colour = 1\n[datasets]\na = "x"\n', "unknown keys ['colour']"),
    ('[datasets.a]\npath = "x"\nn = 3\ntemperature = "hot"\n', "temperature = 'hot' is not"),
    ('[datasets\n', "not a valid TOML"),
])
def test_bad_study_files_are_one_line_errors(tmp_path, body, message):
    study = tmp_path / "study.toml"
    study.write_text(body)
    with pytest.raises(InputError, match=re.escape(message)):
        Study.from_toml(study)


def test_demo_runs_the_main_job_on_the_bundled_default(tmp_path):
    """The README's main job, smaller: bundled generator, the shipped detectors (likelihood
    calibration, cnn, fusion), a features detector trained on the spot, a table and a report whose images decode."""
    r = CliRunner().invoke(app, ["demo", "--n", "40", "--out", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    assert "likelihood" in r.output and "features" in r.output and "demo finished" in r.output
    doc = json.loads((tmp_path / "demo" / "report" / "metrics.json").read_text())
    validate(doc)
    assert {r["detector"] for r in doc["image"]} == {
        "likelihood", "cnn (shipped)", "fusion (shipped)", "features", "rowcol",
        "laplacian", "colors"}
    assert {r["perturbation"] for r in doc["image"]} == {"none", "jpeg75"}
    page = (tmp_path / "demo" / "report" / "report.html").read_text()
    for uri in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        Image.open(io.BytesIO(base64.b64decode(uri))).load()


@pytest.mark.parametrize("line, message", [
    ('bootstrap = "abc"', "bootstrap = 'abc' must be an integer"),
    ("out = 5", "out = 5 must be a string"),
    ("seed = 1.5", "seed = 1.5 must be an integer"),
    ('perturbations = "none"', "perturbations = 'none' must be a list of strs"),
    ('perturbations = ["rot9"]', "unknown perturbation"),
    ('detectors = ["likelihood"]', "must be a table"),
    ('split = "holdout"', "split must be"),
    ('out = "../elsewhere"', "must be relative"),
    ('out = "/tmp/elsewhere"', "must be relative"),
])
def test_study_values_are_checked_at_the_edge(tmp_path, line, message):
    study = tmp_path / "s" / "study.toml"
    study.parent.mkdir()
    study.write_text(f'{line}\n[datasets]\nx = "ds"\n')
    r = CliRunner().invoke(app, ["bench", "--config", str(study)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert message in " ".join(r.output.split()), r.output
    assert not (tmp_path / "elsewhere").exists()


class CountingStreak(StreakDetector):
    """The outside detector, counting the images it scores and localizes (its copies too:
    a recalibrated threshold is a copy of the detector, `retarget`)."""

    def __init__(self):
        self.counts = {"scored": 0, "localized": 0}  # one dict, shared by the copies

    scored = property(lambda self: self.counts["scored"])
    localized = property(lambda self: self.counts["localized"])

    def score(self, images):
        self.counts["scored"] += len(images)
        return super().score(images)

    def localize(self, images):
        self.counts["localized"] += len(images)
        return super().localize(images)


def test_bench_scores_each_image_once_per_perturbation(tiny_dataset, tmp_path):
    det = CountingStreak()
    study = Study(datasets={"a": str(tiny_dataset), "b": str(tiny_dataset)},
                  detectors={"streak": "counting"}, perturbations=["none", "jpeg75"],
                  bootstrap=10, out=str(tmp_path / "rep"))
    run_benchmark(study, {"streak": det})
    test, val = load_split(tiny_dataset, "test"), load_split(tiny_dataset, "val")
    per_test = len(test.real) + len(test.qreal) + len(test.fake)
    # 2 datasets x 2 perturbations, each test image once; the cross matrix reuses those
    # scores and only scores the val reals it takes each threshold from
    assert det.scored == 2 * 2 * per_test + 2 * (len(val.real) + len(val.qreal))
    partial = sum(k in ("top-half", "box") for k in test.kinds)
    assert det.localized == 2 * 2 * partial  # maps of the partial fakes, once each


def test_leave_one_generator_out_never_tests_on_a_seen_generator(tiny_checkpoint, tiny_dataset,
                                                                   tmp_path):
    from igpt_forensics.generators.config import TrainConfig
    from igpt_forensics.generators.train import train_generator

    from tests.conftest import TINY_TRAIN

    other = tmp_path / "topk"  # the same generator as tiny_dataset, other sampling
    generate_dataset(other, 60, model=tiny_checkpoint, masks="top-half,full", top_k=4, seed=2,
                     batch_size=32)
    train_generator(TrainConfig(**{**TINY_TRAIN, "steps": 40, "seed": 1}), tmp_path / "gen2")
    third = tmp_path / "t07"  # another generator
    generate_dataset(third, 60, model=tmp_path / "gen2", masks="box,full", temperature=0.7,
                     seed=3, batch_size=32)
    r = CliRunner().invoke(app, [
        "bench", "--dataset", str(tiny_dataset), "--dataset", str(other), "--dataset",
        str(third), "--detector", "examples.outside_detector:StreakDetector", "--train",
        "rowcol", "--bootstrap", "10", "--leave-one-out", "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert "leave-one-generator-out" in r.output
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    rows = doc["leave_one_out"]
    names = {"ds", "topk", "t07"}
    detectors = {"examples.outside_detector:StreakDetector", "rowcol"}
    assert sorted((x["detector"], x["held_out"]) for x in rows) == sorted(
        (d, h) for d in detectors for h in names)
    made_by = {d["name"]: d["generator_sha256"] for d in doc["datasets"]}
    assert made_by["ds"] == made_by["topk"] != made_by["t07"]
    for x in rows:  # never tested on a generator whose fakes (any sampling) it trained on
        assert all(made_by[a] != made_by[x["held_out"]] for a in x["trained_on"])
        assert x["held_out_generator"] == made_by[x["held_out"]]
        assert set(x["trained_on"]) == ({"t07"} if x["held_out"] != "t07" else {"ds", "topk"})
        assert 0.0 <= x["auc"] <= 1.0
    assert set(doc["leave_one_out_mean_auc"]) == {x["detector"] for x in rows}
    # leave-one-out reuses the fixed detectors' test and validation scores: it scores
    # nothing that the evaluation and the cross matrix did not score already
    scored = []
    for loo in (False, True):
        det = CountingStreak()
        run_benchmark(Study(datasets={"ds": str(tiny_dataset), "topk": str(other),
                                      "t07": str(third)}, detectors={"s": "counting"},
                            bootstrap=10, leave_one_out=loo, out=str(tmp_path / f"r{loo}")),
                      {"s": det})
        scored.append(det.scored)
    assert scored[0] == scored[1] > 0
    r = CliRunner().invoke(app, [  # one generator only: nothing to leave out
        "bench", "--dataset", str(tiny_dataset), "--dataset", str(other), "--train", "rowcol",
        "--leave-one-out", "--out", str(tmp_path / "rep2")])
    assert r.exit_code == 1 and "2 or more generators" in r.output


def test_report_summary_names_the_detector_to_trust_and_warns():
    from igpt_forensics.report import detector_colors, summary

    def row(det, auc, form="qreal", fpr=0.01, n_real=300, lo=None):
        return {"detector": det, "dataset": "d", "perturbation": "none", "fakes": "all",
                "real_form": form, "auc": auc, "auc_lo": lo if lo is not None else auc - 0.05,
                "auc_hi": auc + 0.02, "fpr_at_threshold": fpr, "n_real": n_real}

    doc = {"image": [row("cnn", 0.95), row("likelihood", 0.70, fpr=0.08),
                     row("rowcol", 0.80), row("colors", 0.20), row("colors", 0.97, "real"),
                     row("cnn", 0.96, "real")]}
    s = summary(doc)
    assert s["best"]["detector"] == "cnn"  # baselines are never the detector to trust
    text = " ".join(s["warnings"])
    assert "baseline rowcol (AUC 0.800) beats likelihood" in text
    assert "likelihood on d: its threshold lets 8.0% of real images through" in text
    assert "colors on d: AUC 0.970 against photographed reals but 0.200" in text
    small = summary({"image": [row("cnn", 0.9, n_real=18)]})
    assert small["warnings"][0].startswith("dataset d: only 18 real test images")
    c1, c2 = detector_colors(["b", "a", "c"]), detector_colors(["c", "a", "b", "a"])
    assert c1 == c2 and len(set(c1.values())) == 3  # one color per detector, every plot


def test_report_opens_with_the_verdict_box(tiny_dataset, tmp_path):
    study = Study(datasets={"tiny": str(tiny_dataset)},
                  detectors={"streak": "examples.outside_detector:StreakDetector"},
                  bootstrap=20, out=str(tmp_path / "rep"))
    run_benchmark(study, {"streak": StreakDetector()})
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.index("class='verdict'") < page.index("<h2>Datasets")
    assert "Detector to trust here: streak" in page and "{'python'" not in page
    assert "TPR @ 1% FPR" in page and "tpr_at_1fpr" not in page


def test_an_outside_labeled_folder_is_benchmarked_with_no_conversion(tiny_dataset, tmp_path):
    from igpt_forensics import provenance as pv

    exported = tmp_path / "exp"  # OUT/<split>/0_real, 1_fake: CNNDetection's layout
    pv.export_folders(tiny_dataset, exported, real="qreal")
    flat = tmp_path / "flat" / "gen-a"  # 0_real/ 1_fake/ with no split folders
    for label in ("0_real", "1_fake"):
        (flat / label).mkdir(parents=True)
        for p in sorted((exported).glob(f"*/{label}/*.png"))[:40]:
            (flat / label / p.name).write_bytes(p.read_bytes())
    (flat / "1_fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nno")
    test = load_split(exported, "test")
    ref = load_split(tiny_dataset, "test")
    assert len(test.real) == len(ref.qreal) and len(test.fake) == len(ref.fake)
    assert test.kinds == ["full"] * len(test.fake) and not test.qreal
    r = CliRunner().invoke(app, ["bench", "--dataset", str(exported), "--dataset",
                                 str(tmp_path / "flat"), "--detector",
                                 "examples.outside_detector:StreakDetector", "--bootstrap", "10",
                                 "--split", "train", "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert {d["name"] for d in doc["datasets"]} == {"exp", "flat"}
    assert any("broken.png" in line for d in doc["datasets"] for line in d["skipped"])
    assert {x["real_form"] for x in doc["cross"]} == {"real"}


def test_two_detector_folders_of_one_name_are_both_benchmarked(tiny_dataset, tmp_path):
    """runs/a/det and runs/b/det: both are scored and reported, named by their place on the
    command line (the second once silently replaced the first)."""
    from igpt_forensics.detectors.base import create_detector

    split = load_split(tiny_dataset, "train")
    for where, kind in (("a", "rowcol"), ("b", "laplacian")):
        create_detector(kind).fit(split.qreal, split.fake).save(tmp_path / where / "det")
    r = CliRunner().invoke(app, ["bench", "--dataset", str(tiny_dataset), "--detector",
                                 str(tmp_path / "a" / "det"), "--detector",
                                 str(tmp_path / "b" / "det"), "--bootstrap", "0",
                                 "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert [(d["name"], d["kind"]) for d in doc["detectors"]] == [("det-0", "rowcol"),
                                                                  ("det-1", "laplacian")]
    assert {x["detector"] for x in doc["image"]} == {"det-0", "det-1"}


def test_bench_without_bootstrap_writes_its_metrics_without_intervals(tiny_dataset, tmp_path):
    """``--bootstrap 0`` (allowed: no resamples) skips the AUC intervals; everything else is
    written, and the report reads it (it once failed the metrics schema after all the work)."""
    r = CliRunner().invoke(app, ["bench", "--dataset", str(tiny_dataset), "--detector",
                                 "examples.outside_detector:StreakDetector", "--bootstrap", "0",
                                 "--perturb", "none,blur1", "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert {x["perturbation"] for x in doc["image"]} == {"none", "blur1"}
    assert all("auc_lo" not in x and 0.0 <= x["auc"] <= 1.0 for x in doc["image"])
    assert (tmp_path / "rep" / "report.html").stat().st_size > 0


def test_logo_pool_script_never_trains_on_the_held_out_generator(tmp_path):
    """benchmarks/logo_pool.py: every dataset of the held-out generator (here two sampling
    settings of one checkpoint) is left out of its training, `all` takes the whole pool, and
    a finished detector is not trained again."""
    logo = _benchmark_script("logo_pool")
    made_by = {"t1": "a" * 64, "topp": "a" * 64, "vq": "b" * 64, "outside": None}
    lines = []
    for name, sha in made_by.items():
        (tmp_path / name).mkdir()
        info = {"generator": {"sha256": sha}} if sha else {}
        (tmp_path / name / "dataset.json").write_text(json.dumps(info))
        lines.append(f"{name} {tmp_path / name}")
    (tmp_path / "pool.txt").write_text("\n".join(lines) + "\n")
    pool = logo.read_pool(tmp_path / "pool.txt")
    gs = logo.groups(pool)
    assert gs == {"t1": ["t1", "topp"], "vq": ["vq"], "outside": ["outside"]}
    done = tmp_path / "out" / "detectors" / "vq" / "npr"
    done.mkdir(parents=True)
    (done / "detector.json").write_text("{}")
    jobs = {name: cmd for name, cmd, _ in logo.plan(pool, gs, [["npr", "--inputs npr"]],
                                                    tmp_path / "out")}
    assert list(jobs) == ["npr/all", "npr/t1", "npr/outside"]  # npr/vq is done
    trained_on = {name: {Path(cmd[i + 1]).name for i, a in enumerate(cmd) if a == "--dataset"}
                  for name, cmd in jobs.items()}
    assert trained_on == {"npr/all": set(made_by), "npr/t1": {"vq", "outside"},
                          "npr/outside": {"t1", "topp", "vq"}}
    assert all(cmd[cmd.index("--inputs") + 1] == "npr" for cmd in jobs.values())
    # --held: only the groups named, in their order, every variant of one before the next
    two = [["npr", "--inputs npr"], ["rgb", "--inputs rgb"]]
    ordered = [name for name, _, _ in logo.plan(pool, gs, two, tmp_path / "out",
                                                 held_order=["outside", "all"])]
    assert ordered == ["npr/outside", "rgb/outside", "npr/all", "rgb/all"]


def test_logo_pool_set_option_keeps_lists_with_commas_whole():
    """benchmarks/logo_pool.py --set: pairs split at the commas outside brackets, values read
    as JSON where they parse (map_members=[2,3] is one list, not a pair and a stray '3]')."""
    logo = _benchmark_script("logo_pool")
    assert logo._sets("combine=mean,map_members=[2,3],tta=flip") == {
        "combine": "mean", "map_members": [2, 3], "tta": "flip"}
    assert logo._sets("w={\"a\": [1, 2]},n=0.5") == {"w": {"a": [1, 2]}, "n": 0.5}
    assert logo._sets("") == {}


def test_paired_detectors_script_reports_each_pair_on_the_same_images(tiny_dataset, tmp_path,
                                                                       monkeypatch):
    """benchmarks/paired_detectors.py: a detector paired with itself differs by exactly 0 on
    every resample; a pair of different detectors gets the difference of their own AUCs on
    the split's quantized reals and fakes, per mask kind and perturbation."""
    import sys

    paired = _benchmark_script("paired_detectors")
    streak = "examples.outside_detector:StreakDetector"
    out = tmp_path / "paired.json"
    monkeypatch.setattr(sys, "argv", [
        "paired_detectors.py", "--dataset", str(tiny_dataset), "--pair", f"cnn,{streak}",
        "--pair", "cnn,cnn", "--perturb", "none,blur1", "--bootstrap", "50", "--json", str(out)])
    paired.main()
    rows = json.loads(out.read_text())["rows"]
    data = load_split(tiny_dataset, "test")
    kinds = ["all", *sorted(set(data.kinds))]
    assert [(r["perturbation"], r["b"], r["fakes"]) for r in rows] == [
        (p, b, k) for p in ("none", "blur1") for b in (streak, "cnn") for k in kinds]
    same = [r for r in rows if r["b"] == "cnn"]
    assert all(r["auc_a_minus_b"] == r["lo"] == r["hi"] == 0.0 for r in same)
    from igpt_forensics.detectors.base import open_detector

    images = list(data.qreal) + list(data.fake)
    labels = np.r_[np.zeros(len(data.qreal)), np.ones(len(data.fake))]
    want = (roc_auc_score(labels, open_detector("cnn").score(images))
            - roc_auc_score(labels, StreakDetector().score(images)))
    got = next(r for r in rows if r["perturbation"] == "none" and r["b"] == streak
               and r["fakes"] == "all")
    assert got["auc_a_minus_b"] == pytest.approx(want, abs=1e-4)
    assert got["lo"] <= got["auc_a_minus_b"] <= got["hi"] and got["lo"] < got["hi"]
    assert got["n_real"] == len(data.qreal) and got["n_fake"] == len(data.fake)


def test_paired_detectors_script_pairs_maps_on_the_partial_fakes(tiny_dataset, tmp_path,
                                                                 monkeypatch):
    """``--maps``: per partial mask kind, the pooled pixel AUC of A's maps minus B's on the
    same fakes (as bench computes each), 0 with an interval of 0 for a detector against
    itself; no map row for wholly synthesized fakes."""
    import sys

    from igpt_forensics.detectors.base import open_detector

    from igpt_forensics.metrics import pixel_metrics

    paired = _benchmark_script("paired_detectors")
    streak = "examples.outside_detector:StreakDetector"
    out = tmp_path / "paired.json"
    monkeypatch.setattr(sys, "argv", [
        "paired_detectors.py", "--dataset", str(tiny_dataset), "--pair", f"cnn,{streak}",
        "--pair", "cnn,cnn", "--maps", "--bootstrap", "50", "--json", str(out)])
    paired.main()
    rows = [r for r in json.loads(out.read_text())["rows"] if r.get("level") == "pixel"]
    data = load_split(tiny_dataset, "test")
    partial = sorted(set(data.kinds) - {"full"})
    assert partial and [(r["b"], r["fakes"]) for r in rows] == [
        (b, k) for b in (streak, "cnn") for k in partial]
    assert all(r["pixel_auc_a_minus_b"] == r["lo"] == r["hi"] == 0.0 for r in rows
               if r["b"] == "cnn")
    kinds = np.array(data.kinds)
    for r in (r for r in rows if r["b"] == streak):
        idx = np.flatnonzero(kinds == r["fakes"])
        fakes = [data.fake[i] for i in idx]
        masks = [data.masks[i] for i in idx]
        want = (pixel_metrics(masks, open_detector("cnn").localize(fakes).maps)["pixel_auc"]
                - pixel_metrics(masks, StreakDetector().localize(fakes).maps)["pixel_auc"])
        assert r["pixel_auc_a_minus_b"] == pytest.approx(want, abs=1e-4)
        assert r["n_fake"] == len(idx) and r["lo"] <= r["pixel_auc_a_minus_b"] <= r["hi"]


def test_map_pairs_script_averages_the_maps_of_a_side(tiny_dataset, tmp_path, monkeypatch):
    """benchmarks/map_pairs.py: "A+B" is the pixel-by-pixel mean of A's and B's maps; a side
    against itself differs by exactly 0; each side's pixel AUC is bench's on those maps."""
    import sys

    from igpt_forensics.detectors.base import open_detector

    from igpt_forensics.metrics import pixel_metrics

    script = _benchmark_script("map_pairs")
    streak = "examples.outside_detector:StreakDetector"
    out = tmp_path / "pairs.json"
    monkeypatch.setattr(sys, "argv", [
        "map_pairs.py", "--dataset", str(tiny_dataset), "--pair", f"cnn+{streak},cnn",
        "--pair", "cnn+cnn,cnn", "--bootstrap", "50", "--json", str(out)])
    script.main()
    rows = json.loads(out.read_text())["rows"]
    data = load_split(tiny_dataset, "test")
    partial = sorted(set(data.kinds) - {"full"})
    assert [(r["fakes"], r["a"]) for r in rows] == [
        (k, a) for k in partial for a in (f"cnn+{streak}", "cnn+cnn")]
    assert all(r["a_minus_b"] == r["lo"] == r["hi"] == 0.0 for r in rows if r["a"] == "cnn+cnn")
    kinds = np.array(data.kinds)
    for r in (r for r in rows if r["a"] != "cnn+cnn"):
        idx = np.flatnonzero(kinds == r["fakes"])
        fakes, masks = [data.fake[i] for i in idx], [data.masks[i] for i in idx]
        cnn = open_detector("cnn").localize(fakes).maps
        both = [(c + s) / 2 for c, s in zip(cnn, StreakDetector().localize(fakes).maps)]
        assert r["pixel_auc_a"] == pytest.approx(pixel_metrics(masks, both)["pixel_auc"],
                                                 abs=1e-4)
        assert r["pixel_auc_b"] == pytest.approx(pixel_metrics(masks, cnn)["pixel_auc"],
                                                 abs=1e-4)
        assert r["a_minus_b"] == pytest.approx(r["pixel_auc_a"] - r["pixel_auc_b"], abs=2e-4)


def test_likelihood_ceiling_script_fits_self_drawn_and_supervised(tiny_dataset, tmp_path,
                                                                  monkeypatch):
    """benchmarks/likelihood_ceiling.py: the likelihood detector's features fitted on its own
    samples (as shipped and through palettes) and supervised on a dataset's train split, each
    scored on every test split; the supervised figure is the regression of the *train*
    split's quantized reals (0) against its fakes (1), scored on the test split."""
    import sys

    from igpt_forensics.detectors.likelihood import (
        IMAGE_FEATURES,
        LikelihoodDetector,
        _mean_by_owner,
        image_features,
    )
    from igpt_forensics.detectors.linear import QuadraticLogistic

    ceiling = _benchmark_script("likelihood_ceiling")
    out = tmp_path / "ceiling.json"
    monkeypatch.setattr(sys, "argv", [
        "likelihood_ceiling.py", "--dataset", str(tiny_dataset), "--data", "builtin",
        "--n-real", "8", "--n-samples", "4", "--seeds", "0", "--max-items", "12",
        "--threads", "1", "--json", str(out)])
    ceiling.main()
    doc = json.loads(out.read_text())
    name = tiny_dataset.name
    assert [r["seed"] for r in doc["self_drawn"]] == [0] and doc["n_real_patches"] == 8
    for fit in ("as_shipped_fit", "palette_parity"):
        assert 0.0 <= doc["self_drawn"][0][fit][name] <= 1.0

    det = LikelihoodDetector()

    def feats(images):
        tiles, _, owner = det._tiles(list(images))
        return image_features(det.pixel_stats(tiles)), owner

    train, test = (load_split(tiny_dataset, split, 12) for split in ("train", "test"))
    fr, fs = feats(train.qreal)[0], feats(train.fake)[0]
    model = QuadraticLogistic.fit(np.concatenate([fr, fs]), np.r_[np.zeros(len(fr)),
                                  np.ones(len(fs))], IMAGE_FEATURES, det.C, 0)
    f, owner = feats(test.qreal + test.fake)
    y = np.r_[np.zeros(len(test.qreal)), np.ones(len(test.fake))]
    s = _mean_by_owner(model.decision(f)[:, None], owner, len(y))[:, 0]
    assert doc["supervised"][name][name] == round(float(roc_auc_score(y, s)), 3)


def test_box_anatomy_script_gives_box_image_auc_by_size(tiny_dataset, tmp_path, monkeypatch):
    """benchmarks/box_anatomy.py: the box fakes' image AUC against the split's quantized reals,
    over all boxes and by size third, as the detector's own scores give it."""
    import sys

    from igpt_forensics.detectors.base import open_detector

    anatomy = _benchmark_script("box_anatomy")
    shipped = Path(__file__).parents[2] / "igpt_forensics" / "assets" / "cnn-default"
    out = tmp_path / "anatomy.json"
    monkeypatch.setattr(sys, "argv", [
        "box_anatomy.py", "--dataset", str(tiny_dataset), "--detector", str(shipped),
        "--json", str(out)])
    anatomy.main()
    got = json.loads(out.read_text())["box_image_auc"]
    data = load_split(tiny_dataset, "test")
    box = [k == "box" for k in data.kinds]
    boxes = [f for f, keep in zip(data.fake, box) if keep]
    sizes = np.array([m.sum() for m, keep in zip(data.masks, box) if keep])
    cnn = open_detector("cnn")
    real, fake = cnn.score(list(data.qreal)), cnn.score(boxes)

    def auc(sel):
        return roc_auc_score(np.r_[np.zeros(len(real)), np.ones(sel.sum())],
                             np.r_[real, fake[sel]])

    assert got["quantized_reals"] == len(data.qreal)
    assert got["all"] == pytest.approx(auc(sizes > 0), abs=1e-4)
    lo, hi = np.quantile(sizes, [1 / 3, 2 / 3])
    thirds = [sizes <= lo, (sizes > lo) & (sizes <= hi), sizes > hi]
    assert got["by_size_third"] == [pytest.approx(auc(t), abs=1e-4) if t.any() else None
                                    for t in thirds]
    assert sum(t.any() for t in thirds) >= 2  # the tiny split has boxes of several sizes


def test_detector_speed_script_times_each_detector_on_the_same_images(tmp_path, monkeypatch):
    """benchmarks/detector_speed.py: one row per detector, call and side; the first detector
    is the reference (ratio 1), the others' ratios are their medians over its median."""
    import sys

    script = _benchmark_script("detector_speed")
    out = tmp_path / "speed.json"
    monkeypatch.setattr(sys, "argv", [
        "detector_speed.py", "--detector", "cnn", "--detector", "fusion", "--sides", "16,40",
        "--batch", "2,1", "--repeats", "2", "--threads", "1", "--json", str(out)])
    script.main()
    rows = json.loads(out.read_text())["rows"]
    assert [(r["side"], r["call"], r["detector"]) for r in rows] == [
        (s, c, d) for s in (16, 40) for c in ("score", "score_and_localize")
        for d in ("cnn", "fusion")]
    assert [r["images"] for r in rows] == [2] * 4 + [1] * 4
    for r in rows:
        first = next(x for x in rows if (x["side"], x["call"], x["detector"]) == (
            r["side"], r["call"], "cnn"))
        # (both rounded: compare to 2%)
        assert r["ratio_to_first"] == pytest.approx(r["median_s"] / first["median_s"], rel=0.02)
        assert r["per_image_s"] == pytest.approx(r["median_s"] / r["images"], abs=1e-4)
    # the fusion runs seven cnns where the cnn runs one
    assert all(r["ratio_to_first"] > 1.5 for r in rows if r["detector"] == "fusion")


def test_false_alarm_scale_script_counts_every_view_of_the_same_crops(tmp_path, monkeypatch):
    """benchmarks/false_alarm_scale.py: every view holds the same --n test crops; the shares
    by scale, photo and palette size add up to the whole, whose count is the detector's own
    verdicts on that view; a palette file is one view more."""
    import sys

    from igpt_forensics.detectors.base import judge, open_detector
    from scipy.stats import binomtest

    from igpt_forensics.data import ImageSource, PatchSampler
    from igpt_forensics.palette import Palette

    script = _benchmark_script("false_alarm_scale")
    source = ImageSource("builtin")
    palette = Palette.fit(PatchSampler(source, 16, 3, "train").patches(range(40))[0], 3, seed=0)
    palette.save(tmp_path / "palette.json")
    out = tmp_path / "fa.json"
    monkeypatch.setattr(sys, "argv", [
        "false_alarm_scale.py", "--detector", "cnn", "--n", "24", "--size", "16", "--colors",
        "4,8", "--train-crops", "60", "--data", "builtin", "--palette",
        str(tmp_path / "palette.json"), "--threads", "1", "--json", str(out)])
    script.main()
    doc = json.loads(out.read_text())
    views = doc["views"]
    assert list(views) == ["photo", "bundled", "train-fitted", "self-fitted",
                           f"file:{tmp_path / 'palette.json'}"]
    for name, v in views.items():
        assert v["all"]["n"] == 24
        for key in ("by_scale", "by_photo") + (("by_palette",) if "fitted" in name else ()):
            assert sum(x["n"] for x in v[key].values()) == 24, (name, key)
            assert sum(x["flagged"] for x in v[key].values()) == v["all"]["flagged"]
        ci = binomtest(v["all"]["flagged"], 24).proportion_ci(method="wilson")
        assert v["all"]["ci95"] == pytest.approx([ci.low, ci.high])
        assert v["synthetic"]["flagged"] <= v["all"]["flagged"]
    assert set(views["train-fitted"]["by_palette"]) == {"4", "8"}
    # the palette file's view, judged here again
    images = PatchSampler(source, 16, 1, "test").patches(range(24))[0]
    rows = judge(open_detector("cnn"), [palette.quantize(i[None])[0] for i in images])[0]
    flagged = sum(r["verdict"] != "real" for r in rows)
    assert views[f"file:{tmp_path / 'palette.json'}"]["all"]["flagged"] == flagged > 0
    assert views["photo"]["all"]["flagged"] == 0  # 3 colors look synthetic, photos do not
    # --perturb: every view perturbed last, each crop with its own seed
    from igpt_forensics.perturb import perturb

    monkeypatch.setattr(sys, "argv", [*sys.argv[:-2], "--perturb", "jpeg50", "--json",
                                      str(out)])
    script.main()
    doc = json.loads(out.read_text())
    rows = judge(open_detector("cnn"), [perturb(palette.quantize(im[None])[0], "jpeg50",
                                                seed=i)[0] for i, im in enumerate(images)])[0]
    view = doc["views"][f"file:{tmp_path / 'palette.json'}"]
    assert doc["perturb"] == "jpeg50" and view["all"]["flagged"] == sum(
        r["verdict"] != "real" for r in rows)
    assert view["mean_score"] == pytest.approx(np.mean([r["score"] for r in rows]))
    assert view["mean_score"] != pytest.approx(views[f"file:{tmp_path / 'palette.json'}"][
        "mean_score"])  # JPEG moved the scores


def test_mask_rules_script_scores_the_detectors_masks_and_each_peak_rule(tiny_dataset, tmp_path,
                                                                         monkeypatch):
    """benchmarks/mask_rules.py: the detector's own masks are scored as pixel_metrics scores
    them; a peak rule keeps each map's maximum, and a higher alpha never marks more of an
    image, of a fake or of a real one."""
    import sys

    from igpt_forensics.detectors.base import open_detector

    from igpt_forensics.metrics import pixel_metrics
    from igpt_forensics.splits import load_split

    script = _benchmark_script("mask_rules")
    out = tmp_path / "rules.json"
    monkeypatch.setattr(sys, "argv", ["mask_rules.py", "--detector", "cnn", "--dataset",
                                      str(tiny_dataset), "--alphas", "0.3,0.6,0.9",
                                      "--json", str(out)])
    script.main()
    rows = json.loads(out.read_text())["rows"]
    data = load_split(tiny_dataset, "test")
    kinds = np.array(data.kinds)
    assert {r["fakes"] for r in rows} == set(data.kinds)
    assert {r["rule"] for r in rows} == {"own", "peak0.3", "peak0.6", "peak0.9"}
    loc = open_detector("cnn").localize([data.fake[i] for i in np.flatnonzero(kinds == "box")])
    truth = [data.masks[i] for i in np.flatnonzero(kinds == "box")]
    own = next(r for r in rows if r["fakes"] == "box" and r["rule"] == "own")
    expected = pixel_metrics(truth, loc.maps, loc.masks)
    assert (own["f1"], own["iou"]) == (round(expected["f1"], 4), round(expected["iou"], 4))
    peak = script.peak_masks(loc.maps, 0.9)
    assert all(p[np.unravel_index(np.argmax(m), m.shape)] for p, m in zip(peak, loc.maps))
    for kind in set(data.kinds):
        shares = [next(r for r in rows if r["fakes"] == kind and r["rule"] == f"peak{a}")
                  for a in ("0.3", "0.6", "0.9")]
        assert shares[0]["mask_share"] >= shares[1]["mask_share"] >= shares[2]["mask_share"] > 0
        assert shares[0]["real_share"] >= shares[1]["real_share"] >= shares[2]["real_share"] > 0
