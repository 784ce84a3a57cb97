"""`generate` end to end on a tiny trained checkpoint (8x8, 16 colors): resume after SIGKILL,
shards merged, same seed same bytes, masks that tell the truth, provenance, CLI."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from igpt_forensics.generators.checkpoint import DEFAULT_MODEL, load_checkpoint
from igpt_forensics.generators.dataset import generate_dataset
from PIL import Image
from typer.testing import CliRunner

from igpt_forensics import __version__
from igpt_forensics import provenance as pv
from igpt_forensics.cli import app
from igpt_forensics.data import ImageSource, PatchSampler, image_sha256, sample_patches
from igpt_forensics.files import sha256_file

ROOT = Path(__file__).resolve().parents[2]
N = 60  # items: 180 images, 20 fakes of each mask kind
runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint):
    return Path(tiny_checkpoint)


@pytest.fixture(scope="module")
def ref(ckpt, tmp_path_factory):
    """One uninterrupted run: the dataset every other way of making it must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "ds"
    generate_dataset(out, N, model=ckpt, batch_size=8, device="cpu")
    return out


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def rows(folder: Path) -> list[dict]:
    return list(pv.read_manifest(folder / pv.MANIFEST))


def load(folder: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(folder / rel))


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


# -- reproducibility --------------------------------------------------------------------------


def test_same_seed_same_bytes_whatever_the_batch_size(ckpt, ref, tmp_path):
    generate_dataset(tmp_path / "again", N, model=ckpt, batch_size=5, device="cpu")
    assert tree(tmp_path / "again") == tree(ref)
    generate_dataset(tmp_path / "seed1", 6, model=ckpt, seed=1, device="cpu")
    other = {r["id"]: r["sha256"] for r in rows(tmp_path / "seed1")}
    assert all(other[r["id"]] != r["sha256"] for r in rows(ref)[:18] if r["form"] == "fake")


def test_two_shards_merged_equal_one_run(ckpt, ref, tmp_path):
    for i in (1, 0):
        generate_dataset(tmp_path / f"s{i}", N, model=ckpt, shard=f"{i}/2", batch_size=7,
                         device="cpu")
        assert {r["item"] % 2 for r in rows(tmp_path / f"s{i}")} == {i}
    r = runner.invoke(app, ["dataset", "merge", str(tmp_path / "s0"), str(tmp_path / "s1"),
                            "--out", str(tmp_path / "merged")])
    assert r.exit_code == 0, r.output
    assert tree(tmp_path / "merged") == tree(ref)  # files, manifest and dataset.json


def test_resume_after_sigkill_equals_an_uninterrupted_run(ckpt, ref, tmp_path):
    out = tmp_path / "killed"
    args = ["generate", "--model", str(ckpt), "--n", str(N), "--batch-size", "2",
            "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "stderr.txt", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "igpt_forensics", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    manifest = out / pv.MANIFEST
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and manifest.read_bytes().count(b"\n") >= 12:
                break
            time.sleep(0.01)
        assert proc.poll() is None, ("generate finished (or died) before it could be killed: "
                                     + (tmp_path / "stderr.txt").read_text()[-2000:])
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    killed_rows = manifest.read_bytes().count(b"\n")
    assert 12 <= killed_rows < 3 * N  # midway
    assert not pv.read_info(out)["complete"]
    with open(manifest, "ab") as f:  # and a row torn by the crash
        f.write(b'{"id":"000000')

    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output
    got, want = tree(out), tree(ref)
    assert got.pop(pv.MANIFEST) is not None and want.pop(pv.MANIFEST) is not None
    assert got == want  # every image, mask and dataset.json; no temporary files left
    key = lambda r: r["id"]  # noqa: E731
    assert sorted(rows(out), key=key) == sorted(rows(ref), key=key)
    assert len(rows(out)) == 3 * N


def test_resume_regenerates_rows_whose_files_vanished(ckpt, ref, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(ref, out)
    (out / pv.item_paths(7)["fake"]).unlink()
    (out / pv.item_paths(2)["mask"]).unlink()
    info = pv.read_info(out)
    pv.write_info(out, {**info, "complete": False})
    generate_dataset(out, N, model=ckpt, batch_size=8, device="cpu")
    assert tree(out) == tree(ref)


# -- the truth of masks and records -------------------------------------------------------------


def test_every_fake_differs_from_its_quantized_real_only_inside_its_mask(ckpt, ref):
    _, palette, _ = load_checkpoint(ckpt)
    synthesized_changed = 0
    for r in rows(ref):
        if r["form"] != "fake":
            continue
        fake = load(ref, r["path"])
        qreal = load(ref, pv.item_paths(r["item"])["qreal"])
        real = load(ref, pv.item_paths(r["item"])["real"])
        mask = load(ref, r["mask_path"])
        assert set(np.unique(mask)) <= {0, 255}
        mask = mask == 255
        assert np.array_equal(qreal, palette.quantize(real))
        differs = (fake != qreal).any(-1)
        assert not (differs & ~mask).any(), r["id"]  # outside the mask: the given pixels
        synthesized_changed += int(differs.sum())
        assert r["masked_pixels"] == mask.sum()
        assert np.isin(fake.reshape(-1, 3).view([("", np.uint8)] * 3),
                       palette.colors.view([("", np.uint8)] * 3)).all()  # palette colors only
        kind = r["mask_kind"]
        want = np.zeros((8, 8), bool)
        if kind == "full":
            want[:] = True
        elif kind == "top-half":
            want[4:] = True
        else:
            assert kind == "box" and r["box"] is not None
            t, left, h, w = r["box"]
            want[t:t + h, left:left + w] = True
        assert np.array_equal(mask, want), r["id"]
        assert kind == ("top-half", "box", "full")[r["item"] % 3]
    assert synthesized_changed > N * 8  # the generator really drew pixels


def test_manifest_records_are_complete_and_true(ckpt, ref):
    info = pv.read_info(ref)
    weights_sha = sha256_file(ckpt / "model.safetensors")
    _, palette, _ = load_checkpoint(ckpt)
    records = rows(ref)
    assert [(r["item"], r["form"]) for r in records] == [
        (i, f) for i in range(N) for f in pv.FORMS]  # canonical order, no gaps
    source = ImageSource("builtin")
    patches, crops = sample_patches(source, N, 8, 0, split="all")
    photo_split, photo_sha = {}, {}
    for r in records:
        assert tuple(r) == pv.RECORD_FIELDS
        data = (ref / r["path"]).read_bytes()
        assert r["sha256"] == hashlib.sha256(data).hexdigest()
        pixels = load(ref, r["path"])
        assert r["pixels_sha256"] == image_sha256(pixels) and pixels.shape == (8, 8, 3)
        assert r["label"] == ("fake" if r["form"] == "fake" else "real")
        crop = crops[r["item"]]
        assert (r["photo_id"], r["crop"]) == (crop.photo_id, [crop.top, crop.left, crop.side])
        if r["photo_id"] not in photo_sha:
            photo_sha[r["photo_id"]] = image_sha256(source.load(r["photo_id"]))
        assert r["photo_sha256"] == photo_sha[r["photo_id"]]
        assert photo_split.setdefault(r["photo_id"], r["split"]) == r["split"]
        assert r["split"] == source.split_of(r["photo_id"])
        if r["form"] == "real":
            assert np.array_equal(pixels, patches[r["item"]])
        assert (r["palette_sha256"] is None) == (r["form"] == "real")
        fake_only = ("mask_kind", "mask_path", "mask_sha256", "masked_pixels",
                     "generator_sha256", "generator_preset", "generator_shape", "temperature",
                     "top_k", "top_p", "seed")
        if r["form"] == "fake":
            assert r["palette_sha256"] == palette.sha256
            assert r["generator_sha256"] == weights_sha and r["generator_preset"] == "tiny"
            assert r["generator_shape"]["image_size"] == 8
            assert (r["temperature"], r["top_k"], r["top_p"]) == (1.0, 0, 1.0)
            assert r["seed"] == pv.item_seed(0, r["item"], "sample")
            assert r["mask_sha256"] == sha256_file(ref / r["mask_path"])
        else:
            assert all(r[k] is None for k in fake_only)
    assert {"train", "val", "test"} <= set(photo_split.values())
    assert info["complete"] and info["tool_version"] == __version__
    assert info["counts"] == pv.count_records(records)
    assert info["counts"]["by_form"] == {"real": N, "qreal": N, "fake": N}
    assert info["counts"]["fakes_by_mask_kind"] == {"box": 20, "full": 20, "top-half": 20}
    assert info["settings"]["generator_sha256"] == weights_sha
    assert {p["id"] for p in info["photos"]} == set(source.ids)


def test_photo_patches_cut_any_range_like_sample_patches():
    source = ImageSource("builtin")
    want, crops = sample_patches(source, 40, 8, seed=3, split="all")
    cutter = PatchSampler(source, 8, seed=3)
    got, got_crops = cutter.patches([39, 5, 17])
    assert np.array_equal(got, want[[39, 5, 17]])
    assert got_crops == [crops[39], crops[5], crops[17]]


# -- the commands -------------------------------------------------------------------------------


def test_generate_command_stats_and_export(ckpt, ref, tmp_path):
    out = tmp_path / "ds"
    r = runner.invoke(app, ["generate", "--model", str(ckpt), "--n", "4", "--masks", "box:1,2,3,4",
                            "--top-k", "5", "--temperature", "0.8", "--seed", "9",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "images/s" in r.output and "box:1,2,3,4" in r.output
    recs = rows(out)
    fakes = [x for x in recs if x["form"] == "fake"]
    assert len(recs) == 12 and all(x["box"] == [1, 2, 3, 4] for x in fakes)
    assert all((x["temperature"], x["top_k"]) == (0.8, 5) for x in fakes)

    r = runner.invoke(app, ["dataset", "stats", str(ref), "--json", "-"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["images"] == 3 * N and s["by_label"] == {"real": 2 * N, "fake": N}
    assert s["by_split"] == pv.read_info(ref)["counts"]["by_split"]
    r = runner.invoke(app, ["dataset", "stats", str(ref)])
    assert r.exit_code == 0 and "top-half" in r.output and "fakes by mask kind" in r.output

    exp = tmp_path / "export"
    r = runner.invoke(app, ["dataset", "export", str(ref), "--layout", "folders", str(exp)])
    assert r.exit_code == 0, r.output
    by_split = s["by_split"]
    for split, count in by_split.items():
        reals = list((exp / split / "0_real").glob("*.png"))
        fakes = list((exp / split / "1_fake").glob("*.png"))
        assert len(reals) == 2 * count // 3 and len(fakes) == count // 3
    assert sum(1 for _ in exp.rglob("*.png")) == 3 * N
    one_line_error(runner.invoke(app, ["dataset", "export", str(ref), "--layout", "zip",
                                       str(tmp_path / "e2")]))


@pytest.mark.parametrize("extra, message", [
    (["--n", "0"], "--n must be a number of items from 1"),
    (["--masks", "box:5,5,6,6"], "does not fit in a 8x8"),
    (["--masks", "top-half,blob"], "unknown mask 'blob'"),
    (["--size", "16"], "--size 16 does not match the generator"),
    (["--shard", "2/2"], "--shard '2/2'"),
    (["--shard", "half"], "--shard 'half'"),
    (["--top-p", "0"], "--top-p"),
    (["--temperature", "0"], "--temperature"),
    (["--temperature", "inf"], "--temperature"),
    (["--temperature", "nan"], "--temperature"),
])
def test_bad_settings_are_one_line_errors_before_any_work(ckpt, tmp_path, extra, message):
    out = tmp_path / "ds"
    r = runner.invoke(app, ["generate", "--model", str(ckpt), "--out", str(out), *extra])
    assert message in one_line_error(r)
    assert not out.exists()


def test_default_model_missing_is_a_clear_error(tmp_path, monkeypatch):
    from igpt_forensics.assets import GENERATOR_NAMES
    assert DEFAULT_MODEL.is_dir()  # shipped; hide it to see what a broken install reports
    monkeypatch.setitem(GENERATOR_NAMES, "pixel-default", tmp_path / "missing")
    r = runner.invoke(app, ["generate", "--n", "3", "--out", str(tmp_path / "ds")])
    assert "--model" in one_line_error(r)


def test_refuses_to_resume_with_other_settings_or_into_a_foreign_folder(ckpt, ref, tmp_path):
    before = tree(ref)
    r = runner.invoke(app, ["generate", "--model", str(ckpt), "--n", str(N), "--seed", "1",
                            "--out", str(ref)])
    assert "different settings (dataset vs this command: seed: 0 vs 1)" in one_line_error(r)
    r = runner.invoke(app, ["generate", "--model", str(ckpt), "--n", str(N), "--masks", "full",
                            "--out", str(ref)])
    assert "masks" in one_line_error(r)
    assert tree(ref) == before
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not mine")
    r = runner.invoke(app, ["generate", "--model", str(ckpt), "--n", "3", "--out", str(foreign)])
    assert "not a dataset" in one_line_error(r)
    r = runner.invoke(app, ["generate", "--model", str(ckpt), "--n", str(N), "--out", str(ref)])
    assert r.exit_code == 0 and tree(ref) == before  # same settings: complete, nothing to do


def test_a_kill_while_the_first_dataset_json_is_written_does_not_block_the_rerun(ckpt, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / ".dataset.json.k2j3.tmp").write_text('{"format": "igpt-for')  # torn atomic write
    r = runner.invoke(app, ["generate", "--model", str(ckpt), "--n", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert pv.read_info(out)["complete"]
