"""Crafted inputs, as an attacker or a careless user would write them: nothing is read or
written outside its folder, and each is one clear line with exit code 1, never a traceback."""

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from igpt_forensics import provenance as pv
from igpt_forensics.cli import app
from igpt_forensics.errors import InputError
from igpt_forensics.files import check_plain_name, check_relative, inside
from igpt_forensics.splits import load_split
from tests.core.test_provenance import make_dataset, tree
from tests.detectors.conftest import reseal

runner = CliRunner()

ESCAPES = ["../x.png", "../../etc/passwd", "/etc/passwd", "images/../../x.png", "..",
           "images\\..\\..\\x.png", "C:/x.png", "", "a\0b.png"]


@pytest.mark.parametrize("rel", ESCAPES)
def test_path_guard_refuses_every_escape(tmp_path, rel):
    with pytest.raises(InputError, match="relative|outside"):
        inside(tmp_path, rel, "m.jsonl:1")
    assert inside(tmp_path, "images/00000/a.png", "x") == tmp_path.resolve() / "images/00000/a.png"


def test_path_guard_follows_symlinks_out_of_the_root(tmp_path):
    (tmp_path / "root").mkdir()
    os.symlink("/etc", tmp_path / "root" / "link")
    with pytest.raises(InputError, match="outside"):
        inside(tmp_path / "root", "link/passwd", "m.jsonl:1")


@given(st.text(min_size=0, max_size=12))
def test_plain_names_never_hold_a_separator(name):
    try:
        check_plain_name(name, "x")
    except InputError:
        return
    assert "/" not in name and "\\" not in name and name not in (".", "..") and name


@given(st.lists(st.sampled_from(["..", ".", "a", "b.png", "", "/", "\\", "C:"]), min_size=1,
                max_size=5).map("/".join))
def test_relative_paths_that_pass_stay_below_their_root(rel):
    try:
        check_relative(rel, "x")
    except InputError:
        return
    depth = 0
    for part in rel.split("/"):
        depth += {"..": -1, ".": 0, "": 0}.get(part, 1)
        assert depth >= 0


def _tamper(ds, field, value, row=2):
    path = ds / pv.MANIFEST
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[row][field] = value
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _one_line_error(result):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.output  # (a progress bar may have started before)
    return errors[0]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["path", "mask_path", "split", "id"]),
       value=st.sampled_from(ESCAPES + ["../../outside", "train/../../x", 5, None, ["x"]]))
def test_crafted_manifest_rows_make_export_and_merge_fail_cleanly(tmp_path_factory, field, value):
    base = tmp_path_factory.mktemp("crafted")
    ds = make_dataset(base / "sub" / "ds", n=5)
    victim = base / "x.png"
    victim.write_bytes(b"secret")
    if field == "mask_path" and value is None:
        return  # a fake without a mask path is refused elsewhere; nothing to escape with
    _tamper(ds, field, value, row=2)  # item 0's fake
    before = tree(base)
    for args in (["dataset", "export", str(ds), str(base / "sub" / "out")],
                 ["dataset", "merge", str(ds), "--out", str(base / "sub" / "merged")]):
        r = runner.invoke(app, args)
        _one_line_error(r)
        assert tree(base) == before, "a file was written (or changed) after all"
    with pytest.raises(InputError):
        load_split(ds, "train")


# -- allocation before validation, packaged files, key files ----------------------------------


@pytest.mark.parametrize("field, value", [("n_layer", 10000), ("vocab_size", 10**9),
                                          ("n_embd", 10**6), ("image_size", 10**5),
                                          ("vocab_size", 1e9), ("n_head", True)])
def test_crafted_checkpoint_configs_are_refused_before_allocation(tiny_checkpoint, tmp_path,
                                                                  field, value):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, ck, ignore=shutil.ignore_patterns("state"))
    cfg = json.loads((ck / "config.json").read_text())
    cfg["model"][field] = value
    (ck / "config.json").write_text(json.dumps(cfg))
    r = runner.invoke(app, ["nll", str(Path(__file__)), "--model", str(ck)])
    line = _one_line_error(r)
    assert field in line or "parameters" in line


def test_a_tampered_packaged_checkpoint_is_refused(tiny_checkpoint, tmp_path):
    from igpt_forensics.generators.checkpoint import load_checkpoint

    out = tmp_path / "pkg"
    assert runner.invoke(app, ["export-model", str(tiny_checkpoint), str(out)]).exit_code == 0
    load_checkpoint(out)  # intact: loads
    blob = bytearray((out / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (out / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(InputError, match="SHA256SUMS"):
        load_checkpoint(out)


def test_key_files_are_read_with_a_bound(tmp_path):
    from igpt_forensics.watermark import read_key

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="regular file"):
        read_key(fifo)  # would hang if it were opened
    with pytest.raises(InputError, match="regular file"):
        read_key("/dev/zero")  # would never end
    (tmp_path / "big").write_bytes(b"k" * ((1 << 20) + 1))
    with pytest.raises(InputError, match="larger"):
        read_key(tmp_path / "big")
    (tmp_path / "short").write_bytes(b"k")
    warned = []
    assert read_key(tmp_path / "short", warned.append) == b"k"
    assert len(warned) == 1 and "only 1 bytes" in warned[0]
    (tmp_path / "good").write_bytes(os.urandom(32))
    assert len(read_key(tmp_path / "good", warned.append)) == 32 and len(warned) == 1


def test_watermark_gamma_that_embeds_nothing_is_refused():
    import numpy as np

    from igpt_forensics.palette import Palette
    from igpt_forensics.watermark import WatermarkKey

    pal = Palette(np.random.default_rng(0).integers(0, 256, (16, 3)).astype(np.uint8))
    with pytest.raises(InputError, match="gamma"):
        WatermarkKey(b"k" * 32, pal, gamma=1e-12)


# -- folders replaced whole: a kill between the renames loses nothing --------------------------


def test_write_folder_survives_a_kill_at_every_point(tmp_path, monkeypatch):
    from igpt_forensics import files

    out = tmp_path / "det"
    files.write_folder(out, lambda d: (d / "a.json").write_text("old"), "a.json")
    real_replace = os.replace
    calls = []

    def killed_between_the_renames(src, dst):
        calls.append((src, dst))
        if Path(dst) == out:  # the old folder moved aside, the new one not yet in place
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", killed_between_the_renames)
    with pytest.raises(KeyboardInterrupt):
        files.write_folder(out, lambda d: (d / "a.json").write_text("new"), "a.json")
    monkeypatch.setattr(files.os, "replace", real_replace)
    assert not out.exists()  # the window: neither name holds it ...
    files.recover_folder(out)  # ... and the next reader puts the complete new one in place
    assert (out / "a.json").read_text() == "new"
    assert not any(p.name.startswith(".det.") for p in tmp_path.iterdir())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a folder of this kind"):
        files.write_folder(tmp_path / "mine", lambda d: None, "a.json")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_image_files_are_read_with_a_bound(tmp_path, monkeypatch):
    from igpt_forensics import data
    from igpt_forensics.data import ImageSource

    (tmp_path / "root").mkdir()
    os.mkfifo(tmp_path / "root" / "fifo.png")  # would hang if it were read
    (tmp_path / "root" / "big.png").write_bytes(b"\0" * 2048)
    (tmp_path / "list.txt").write_text("# root: root\nfifo.png\nbig.png\n")
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 1024)
    source = ImageSource(tmp_path / "list.txt")
    assert list(source.photos()) == []
    bad = " ".join(source.report.bad)
    assert "fifo.png: not a regular file" in bad and "big.png: 2,048 bytes, more than" in bad


# -- study files: any value of any type under any key is a Study or one InputError line --------

def _toml(v) -> str:
    """A TOML value (inline) for a Python one; hypothesis' values are arbitrary types."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v > 0 else "-inf") if abs(v) == float("inf") \
            else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON's escapes are TOML's
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(x)}" for k, x in v.items()) + "}"


_scalars = (st.booleans() | st.integers(-2**70, 2**70) | st.floats()
            | st.sampled_from(["none", "jpeg75", "../../out", "/tmp/x", "t1", "cnn", "", "..",
                               "likelihood", "test", "vq-default", "top-half,recon"])
            | st.text(max_size=6))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.sampled_from(["path", "n", "model", "seed", "masks",
                                                          "top_p", "a"]), inner, max_size=4),
                       max_leaves=8)
_study_keys = st.sampled_from(["out", "perturbations", "bootstrap", "seed", "train", "split",
                               "max_items", "leave_one_out", "detectors", "datasets",
                               "generate", "colour"])


@settings(max_examples=int(os.environ.get('FUZZ_N', 150)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(_study_keys, _values, max_size=6))
def test_any_study_file_is_a_study_or_one_clear_line(tmp_path, body):
    from igpt_forensics.bench import Study

    root = tmp_path / "s"
    root.mkdir(exist_ok=True)
    study = root / "study.toml"
    study.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in body.items()))
    try:
        s = Study.from_toml(study)
    except InputError as e:
        assert "\n" not in str(e) and str(study) in str(e)
        r = runner.invoke(app, ["bench", "--config", str(study), "--datasets-only"])
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        return
    # what it accepted is typed, and everything it would write stays below its folder
    assert isinstance(s.seed, int) and isinstance(s.bootstrap, int) and s.bootstrap >= 0
    assert all(isinstance(p, str) for p in s.perturbations)
    for name, recipe in s.generate.items():
        assert Path(s.datasets[name]).resolve().is_relative_to(root.resolve())
        assert isinstance(recipe.get("n"), int)
    assert Path(s.out).resolve().is_relative_to(root.resolve()) or s.out == "report"


# -- outside lists and folders, JSON files, saved detectors, stamps, torchrun journals --------

def _png(path, side=16, seed=0):
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)


def test_outside_folders_and_lists_refuse_escapes_and_crafted_rows(tmp_path):
    from igpt_forensics.splits import load_outside

    _png(tmp_path / "secret.png", seed=9)
    folder = tmp_path / "data"
    for i in range(2):
        _png(folder / "test" / "0_real" / f"{i}.png", seed=i)
        _png(folder / "test" / "1_fake" / f"{i}.png", seed=10 + i)
    os.symlink(tmp_path / "secret.png", folder / "test" / "0_real" / "link.png")
    split = load_outside(folder, "test")
    assert "test/0_real/link.png" not in split.ids["real"] and len(split.real) == 2
    assert any("link.png" in s and "outside" in s for s in split.skipped)
    lists = {"huge.csv": 'path,label\n"' + "a" * 200_000 + '",1\n',
             "deep.jsonl": "[" * 100_000 + "]" * 100_000 + "\n",
             "number.jsonl": '{"path": "x.png", "label": ' + "1" * 5000 + "}\n"}
    for name, text in lists.items():
        (folder / name).write_text(text)
        with pytest.raises(InputError, match=name):  # one line naming the list, no traceback
            load_outside(folder / name, "test")


@pytest.mark.timeout(60)
def test_json_and_listed_files_are_read_with_a_bound(tmp_path):
    from igpt_forensics.files import check_sha256sums, read_json

    os.mkfifo(tmp_path / "detector.json")  # would hang if it were opened
    with pytest.raises(InputError, match="regular file"):
        read_json(tmp_path / "detector.json", "missing", "unreadable")
    for name, text in (("deep.json", "[" * 100_000 + "]" * 100_000),
                       ("number.json", '{"format": ' + "1" * 5000 + "}")):
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match="unreadable"):
            read_json(tmp_path / name, "missing", "unreadable")
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  detector.json\n")  # lists the FIFO
    with pytest.raises(InputError, match="regular file"):
        check_sha256sums(tmp_path)


def _saved(tmp_path):
    """(real, fake) 16x16 images and a rowcol detector saved under tmp_path/rowcol."""
    import numpy as np
    from igpt_forensics.detectors.base import create_detector

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    fake = (real // 64 * 64).astype(np.uint8)
    create_detector("rowcol").fit(list(real), list(fake)).save(tmp_path / "rowcol")
    return real, fake


@pytest.mark.timeout(120)
def test_a_fusion_detector_loads_its_members_from_its_own_folder_only(tmp_path):
    import shutil

    from igpt_forensics.detectors.base import create_detector, load_detector

    real, fake = _saved(tmp_path)
    det = tmp_path / "fusion"
    create_detector("fusion", members=[str(tmp_path / "rowcol")], folds=2).fit(
        list(real), list(fake)).save(det)
    shutil.move(det / "members" / "0-rowcol", tmp_path / "outside")  # a detector out there

    def member(d):
        def edit(meta):
            meta["params"].pop("device", None)
            meta["state"].update(member_dirs=[d], member_files={})
        return edit

    for d in ("../outside", str(tmp_path / "outside"), ".", "members"):
        reseal(det, member(d))
        with pytest.raises(InputError, match="member_dirs"):
            load_detector(det)


@pytest.mark.timeout(120)
def test_a_detectors_recorded_sizes_are_checked_before_allocation(tmp_path):
    import shutil

    from igpt_forensics.detectors.base import create_detector, load_detector

    real, fake = _saved(tmp_path)
    saved = tmp_path / "features"
    create_detector("features", use_likelihood=False, classifier="logistic").fit(
        real, fake).save(saved)
    for size in (100_000, 0, -3, 1e400):  # 100000: a 30 GB tile of a 16-px image
        det = tmp_path / f"f{size}"
        shutil.copytree(saved, det)
        reseal(det, lambda meta, size=size: meta["state"].update(image_size_=size))
        with pytest.raises(InputError, match="image_size_"):
            load_detector(det)
    from igpt_forensics.detectors.cnn import CNNDetector

    cnn = tmp_path / "cnn"
    CNNDetector(epochs=1, batch_size=8, width=8, device="cpu").fit(real, fake).save(cnn)
    for edit in ({"width": 100_000}, {"stages": 4, "width": 4096}):  # hundreds of GB if built
        det = tmp_path / f"cnn{len(edit)}"
        shutil.copytree(cnn, det)
        reseal(det, lambda meta, edit=edit: meta["params"].update(edit))
        with pytest.raises(InputError, match="weights do not fit"):
            load_detector(det)
    from igpt_forensics.assets import ASSETS

    lik = tmp_path / "likelihood"  # not a trained one: no digest; int(Infinity) overflows
    shutil.copytree(ASSETS / "likelihood-default", lik)
    meta = json.loads((lik / "detector.json").read_text())
    meta["state"]["n_colors_"] = float("inf")
    (lik / "detector.json").write_text(json.dumps(meta))
    (lik / "SHA256SUMS").unlink()
    r = runner.invoke(app, ["score", str(Path(__file__)), "--detector", str(lik)])
    assert "detector.json: bad detector state" in _one_line_error(r)


def test_a_crafted_stamp_is_a_claim_never_a_traceback():
    import numpy as np

    from igpt_forensics.data import image_sha256
    from igpt_forensics.palette import Palette
    from igpt_forensics.stamp import stamped_png
    from igpt_forensics.verify import Verifier

    pal = Palette(np.random.default_rng(0).integers(0, 256, (16, 3)).astype(np.uint8))
    image = pal.colors[np.random.default_rng(1).integers(0, 16, (16, 16))].astype(np.uint8)
    base = {"pixels_sha256": image_sha256(image), "size": 16}
    verifier = Verifier(pal, b"k" * 32)
    for extra in ({"watermark": {"key_sha256": 5}}, {"watermark": {"key_sha256": {}}},
                  {"form": "fake", "mask_kind": "box", "box": [float("inf"), 0, 4, 4]}):
        report = verifier.data(stamped_png(image, {**base, **extra}), "x.png")
        assert report.stamp.status == "intact"
    # each upload may ask for other watermark settings: a server keeps the tables of a few
    from igpt_forensics import watermark as wm
    from igpt_forensics.verify import MAX_SCHEMES

    for period in range(2, 40):
        verifier.scheme({"scheme": wm.SCHEME, "period": period})
    assert len(verifier._schemes) <= MAX_SCHEMES


def test_an_edited_torchrun_journal_is_one_line(tmp_path):
    from igpt_forensics.cli.score_cmds import journal_results
    from igpt_forensics.distributed import Journal

    header = {"files": ["a.png"], "chunk": 16}
    path = tmp_path / "0-of-2.jsonl"
    for line in ("[" * 100_000 + "]" * 100_000, '{"piece": Infinity}', '{"piece": -1}',
                 '{"piece": "0"}'):
        path.write_text(json.dumps(header) + "\n" + line + "\n")
        assert Journal.read(path, header) == {}  # like a torn line: scored again
    row = {"path": "a.png", "score": 1.0, "verdict": "real", "region_score": 0.0,
           "region_fraction": 0.0, "boxes": []}
    good = {"piece": 0, "rows": [row], "bad": []}
    path.write_text(json.dumps(header) + "\n" + json.dumps(good) + "\n")
    assert journal_results(path, header, 1) == {0: ([row], [])}
    for entry in ({"piece": 0}, {**good, "piece": 7}, {**good, "rows": [{"path": 5}]},
                  {**good, "rows": [{**row, "verdict": "x"}]}, {**good, "bad": [1]}):
        path.write_text(json.dumps(header) + "\n" + json.dumps(entry) + "\n")
        with pytest.raises(InputError, match="0-of-2.jsonl"):
            journal_results(path, header, 1)


def test_a_manifest_line_nested_too_deep_or_with_a_huge_number_is_one_line(tmp_path):
    from igpt_forensics.provenance import read_manifest

    for line in ("[" * 100_000 + "]" * 100_000, '{"id": ' + "1" * 5000 + "}"):
        (tmp_path / "manifest.jsonl").write_text(line + "\n")
        with pytest.raises(InputError, match="manifest.jsonl:1"):
            list(read_manifest(tmp_path / "manifest.jsonl"))


# -- second sweep: VQ configs, iGPT imports, run states, palettes, outputs, study files -------

def _vq_checkpoint(tmp_path, **tokenizer):
    """The bundled VQ generator with its tokenizer's config edited (no SHA256SUMS: a crafted
    folder, not a tampered package)."""
    from igpt_forensics.assets import GENERATOR_NAMES

    src, ck = GENERATOR_NAMES["vq-default"], tmp_path / "vq"
    ck.mkdir()
    for name in ("model.safetensors", "tokenizer.safetensors"):
        (ck / name).symlink_to(src / name)
    cfg = json.loads((src / "config.json").read_text())
    cfg["tokenizer"]["model"].update(tokenizer)
    (ck / "config.json").write_text(json.dumps(cfg))
    return ck


@pytest.mark.parametrize("tokenizer, message", [
    (dict(image_size=1024, downsample=64, channels=1024), "5,149,235,211 parameters"),
    (dict(n_codes=10**9), "n_codes"), (dict(channels=1e6), "channels"),
    (dict(downsample=0), "downsample"), (dict(image_size=-32), "image_size")])
def test_a_crafted_vq_tokenizer_config_is_refused_before_allocation(tmp_path, monkeypatch,
                                                                     tokenizer, message):
    from igpt_forensics.generators import vq

    def built(*args, **kwargs):  # each field within its bound, together 20 GB of weights
        raise AssertionError("a tokenizer was built from a crafted config")

    monkeypatch.setattr(vq.VQTokenizer, "__init__", built)
    ck = _vq_checkpoint(tmp_path, **tokenizer)
    line = _one_line_error(runner.invoke(app, ["nll", str(Path(__file__)), "--model", str(ck)]))
    assert "config.json: bad tokenizer config" in line and message in line


def test_a_vq_configs_parameter_count_is_the_built_tokenizers():
    import torch
    from igpt_forensics.generators.vq import VQConfig, VQTokenizer

    for kw in (dict(), dict(downsample=2, channels=8, n_codes=1, code_dim=1),
               dict(image_size=64, downsample=16, channels=24, code_dim=256)):
        config = VQConfig(**kw)
        with torch.device("meta"):
            assert VQTokenizer(config).num_params() == config.num_params()


def _tiny_run(tmp_path):
    from igpt_forensics.generators.config import TrainConfig
    from igpt_forensics.generators.train import train_generator

    cfg = TrainConfig(size=8, colors=16, preset="tiny", steps=2, batch_size=4, warmup=1,
                      train_patches=64, eval_patches=16, eval_every=1, checkpoint_every=1)
    train_generator(cfg, tmp_path / "run")
    return cfg, tmp_path / "run"


def _model_and_optimizer():
    import torch
    from igpt_forensics.generators.model import create_model

    model = create_model("tiny", vocab_size=16, image_size=8)
    groups = [[p for p in model.parameters() if p.dim() >= 2],
              [p for p in model.parameters() if p.dim() < 2]]
    return model, torch.optim.AdamW([{"params": g} for g in groups])


@pytest.mark.timeout(120)
def test_an_edited_run_state_is_one_line_naming_its_file(tmp_path):
    import shutil

    import torch
    from igpt_forensics.generators.train import load_state, train_generator
    from safetensors.torch import load_file, save_file

    cfg, run = _tiny_run(tmp_path)
    folder = run / "state" / "step-00000002"
    shutil.copytree(folder, tmp_path / "intact")
    assert load_state(run, *_model_and_optimizer(), steps=2)[0] == 2

    def state(text):
        (folder / "state.json").write_text(text)

    def moment(name, tensor):
        path = folder / "optimizer.safetensors"
        tensors = load_file(path)
        tensors[next(k for k in tensors if k.endswith(name))] = tensor
        save_file(tensors, path)

    edits = [(lambda: state('{"step": "abc", "history": []}'), r"state\.json: 'step'"),
             (lambda: state('{"step": 1e400, "history": []}'), r"state\.json: 'step'"),
             (lambda: state('{"step": 99999999999999999999999, "history": []}'), "'step'"),
             (lambda: state('{"step": -5, "history": []}'), r"state\.json: 'step'"),
             (lambda: state('{"step": 2, "history": "abc"}'), r"state\.json: 'history'"),
             (lambda: state("[1]"), r"state\.json: 'step'"),
             (lambda: state("xx"), r"state\.json: unreadable"),
             (lambda: ((folder / "state.json").unlink(), os.mkfifo(folder / "state.json")),
              r"state\.json: not a regular file"),
             (lambda: (folder / "model.safetensors").write_bytes(b"xx"),
              r"model\.safetensors: corrupt"),
             (lambda: moment("exp_avg", torch.zeros(3, 3)),
              r"optimizer\.safetensors: .*exp_avg is .*\(3, 3\)"),
             (lambda: moment("step", torch.zeros(1000)), r"optimizer\.safetensors: .*step")]
    for edit, message in edits:
        shutil.rmtree(folder)
        shutil.copytree(tmp_path / "intact", folder)
        edit()
        with pytest.raises(InputError, match=message):
            load_state(run, *_model_and_optimizer(), steps=2)
    for text in ("xx", "[1]"):  # the run's settings, read back by --resume
        (run / "train_config.json").write_text(text)
        with pytest.raises(InputError, match=r"train_config\.json: (unreadable|not the)"):
            train_generator(cfg, run, resume=True)


@pytest.mark.parametrize("colors", ["[[Infinity, 2, 3]]", "[[1e400, 2, 3]]",
                                    f"[[{'9' * 30}, 2, 3]]", json.dumps(
                                        [[0, 0, 0]] * 513)])
def test_a_crafted_palette_file_is_one_line(tmp_path, colors):
    from igpt_forensics.palette import Palette

    (tmp_path / "p.json").write_text('{"colors": ' + colors + "}")
    with pytest.raises(InputError, match=r"p\.json: not a palette"):
        Palette.load(tmp_path / "p.json")


def test_an_output_that_cannot_be_written_is_refused_before_the_work(tmp_path):
    from igpt_forensics.assets import ASSETS
    from igpt_forensics.files import atomic_write_bytes

    photo, file = ASSETS / "examples" / "photo.png", tmp_path / "file"
    file.write_text("keep")
    for args, message in ((["--out", str(tmp_path)], "is a folder"),
                          (["--out", str(file / "grid.png")], "file is not a folder"),
                          (["--save-dir", str(file)], "exists and is not a folder")):
        line = _one_line_error(runner.invoke(app, ["complete", str(photo), "--model",
                                                   str(tmp_path / "absent"), *args]))
        assert message in line
    with pytest.raises(InputError, match="is a folder"):
        atomic_write_bytes(tmp_path, b"x")
    assert file.read_text() == "keep" and [p.name for p in tmp_path.iterdir()] == ["file"]


def test_a_study_file_that_is_a_fifo_holds_a_nul_or_a_huge_bootstrap_is_one_line(tmp_path):
    from igpt_forensics.bench import Study

    study = tmp_path / "study.toml"
    os.mkfifo(study)
    with pytest.raises(InputError, match="study.toml: not a regular file"):
        Study.from_toml(study)  # not a hang
    study.unlink()
    for body, message in (('datasets = {a = "x\\u0000y"}', "datasets holds a NUL"),
                          ('datasets = {a = {path = "x", n = 5, model = "m\\u0000"}}',
                           "datasets holds a NUL"),
                          ('datasets = {a = "x"}\ndetectors = {d = "a\\u0000"}', "detectors"),
                          ('datasets = {a = "x"}\nbootstrap = 9223372036854775807',
                           "bootstrap must be <= 10,000")):
        study.write_text(body + "\n")
        with pytest.raises(InputError, match=f"study.toml: {message}"):
            Study.from_toml(study)
    r = runner.invoke(app, ["bench", "--dataset", str(tmp_path), "--bootstrap", str(10**12)])
    assert "--bootstrap must be in 0..10,000" in _one_line_error(r)


# -- the review of 2026-12-05: thin images, unbounded reads, headers before the data ----------


def _flat_png(path, h, w):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(path)
    return path


def test_a_thin_image_is_refused_before_it_is_upscaled(tmp_path):
    import numpy as np
    from igpt_forensics.detectors.tiles import tile_image, upscale_to

    from igpt_forensics.data import load_image

    _flat_png(tmp_path / "strip.png", 1, 6000)  # 6000 pixels, 192,000 x 32 once upscaled
    _flat_png(tmp_path / "ok.png", 40, 40)
    with pytest.raises(InputError, match="strip.png: image too thin .*6000x1"):
        load_image(tmp_path / "strip.png", max_pixels=2048 * 2048)
    assert load_image(tmp_path / "strip.png", max_pixels=10**7).shape == (1, 6000, 3)
    # arrays handed to a detector directly: refused before the upscaled copy is made
    thin = np.zeros((1, 300_000, 3), np.uint8)
    for call in (lambda: upscale_to(thin, 32), lambda: tile_image(thin, 32, "tile")):
        with pytest.raises(InputError, match="too thin"):
            call()
    r = runner.invoke(app, ["score", str(tmp_path), "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert [Path(row["path"]).name for row in doc["rows"]] == ["ok.png"]
    assert "strip.png: image too thin" in " ".join(r.output.split())


def test_dataset_and_verified_images_are_read_with_a_bound(tmp_path, monkeypatch):
    from igpt_forensics import data

    ds = make_dataset(tmp_path / "ds", n=5)
    row = json.loads((ds / pv.MANIFEST).read_text().splitlines()[0])
    (ds / row["path"]).unlink()
    os.mkfifo(ds / row["path"])  # read_bytes would wait for a writer forever
    line = _one_line_error(runner.invoke(app, ["dataset", "export", str(ds),
                                               str(tmp_path / "out")]))
    assert row["path"] in line and "not a regular file" in line
    # verify: the FIFO and an oversized file are reported, the good file still verified
    folder = tmp_path / "v"
    folder.mkdir()
    _flat_png(folder / "good.png", 8, 8)
    os.mkfifo(folder / "fifo.png")
    (folder / "big.png").write_bytes(b"\0" * 4096)
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 1024)
    monkeypatch.setattr("igpt_forensics.verify.MAX_FILE_BYTES", 1024)
    r = runner.invoke(app, ["verify", str(folder), "--json", "-"])
    assert "Traceback" not in r.output
    assert "fifo.png: not a regular file" in r.output and "big.png: 4,096 bytes" in r.output
    assert "good.png" in r.stdout


def test_an_npz_is_checked_from_its_headers_before_it_is_decompressed(tmp_path, monkeypatch):
    import numpy as np

    from igpt_forensics import data
    from igpt_forensics.data import ImageSource

    np.savez_compressed(tmp_path / "signed.npz", a=np.zeros((8, 8, 3), np.int8))
    np.savez_compressed(tmp_path / "big.npz", a=np.zeros((4, 32, 32, 3), np.uint8))
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 4 * 32 * 32 * 3 - 1)

    def no_decompressing(self, key):
        raise AssertionError(f"array {key} decompressed before its header was checked")
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", no_decompressing)
    with pytest.raises(InputError, match="array 'a' has dtype int8, expected uint8"):
        ImageSource(tmp_path / "signed.npz")
    with pytest.raises(InputError, match="more than 12,287 bytes .*'a' has shape"):
        ImageSource(tmp_path / "big.npz")


def test_a_checkpoint_is_matched_to_its_weights_on_the_meta_device(tiny_checkpoint, tmp_path,
                                                                   monkeypatch):
    import shutil

    import torch
    from igpt_forensics.generators import checkpoint

    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, ck, ignore=shutil.ignore_patterns("state"))
    cfg = json.loads((ck / "config.json").read_text())
    cfg["model"]["n_layer"] *= 8  # within the bounds, but not the saved weights' shape
    (ck / "config.json").write_text(json.dumps(cfg))
    built = []
    real = checkpoint.PixelGPT

    class Watched(real):
        def __init__(self, config):
            super().__init__(config)
            built.append(next(self.parameters()).device.type)
    monkeypatch.setattr(checkpoint, "PixelGPT", Watched)
    with pytest.raises(InputError, match="weights do not match config.json"):
        checkpoint.load_checkpoint(ck)
    assert built == ["meta"]  # nothing of the crafted size was allocated
    shutil.copy(tiny_checkpoint / "config.json", ck / "config.json")
    model = checkpoint.load_checkpoint(ck)[0]
    assert built == ["meta", "meta", "cpu"] and isinstance(model, torch.nn.Module)


@pytest.mark.parametrize("settings, says", [
    (None, "'settings' must be an object"), ({"n": 10**15, "shard": [0, 1]}, "settings.n"),
    ({"n": "5", "shard": [0, 1]}, "settings.n"), ({"n": 5, "shard": [1, 1]}, "settings.shard"),
    ({"n": 5, "shard": [0, True]}, "settings.shard")])
def test_a_crafted_dataset_json_is_one_line_before_anything_is_allocated(tmp_path, settings,
                                                                          says):
    ds = make_dataset(tmp_path / "ds", n=5)
    info = json.loads((ds / pv.INFO).read_text())
    info["settings"] = settings
    (ds / pv.INFO).write_text(json.dumps(info))
    for args in (["dataset", "stats", str(ds)],
                 ["dataset", "merge", str(ds), "--out", str(tmp_path / "m")]):
        line = _one_line_error(runner.invoke(app, args))
        assert "dataset.json" in line and says in line, line
    assert not (tmp_path / "m").exists()


def test_crafted_detector_files_and_plugins_are_one_line(tmp_path):
    det = tmp_path / "det"
    det.mkdir()
    _flat_png(tmp_path / "a.png", 32, 32)
    for params in ([1], "ab"):
        (det / "detector.json").write_text(json.dumps(
            {"format": "igpt-forensics-detector-v1", "kind": "rowcol", "params": params}))
        line = _one_line_error(runner.invoke(app, ["score", str(tmp_path / "a.png"),
                                                   "--detector", str(det)]))
        assert "detector.json: 'params' must be an object" in line
    # an outside class that cannot be built with no arguments
    line = _one_line_error(runner.invoke(app, ["score", str(tmp_path / "a.png"), "--detector",
                                               "json:JSONDecodeError"]))
    assert "json:JSONDecodeError: cannot build it" in line


def test_photo_lists_are_read_with_a_bound_and_eps_is_never_decoded(tmp_path):
    from igpt_forensics.data import ImageSource, load_image

    os.mkfifo(tmp_path / "list.txt")
    with pytest.raises(InputError, match="list.txt: not a regular file"):
        ImageSource(tmp_path / "list.txt")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(InputError, match="x.png: not an image file"):
        load_image(eps, name="x.png")  # Pillow would hand EPS to Ghostscript
