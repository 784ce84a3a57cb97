"""The CLI skeleton through typer's CliRunner: exit codes, outputs, one-line errors."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from igpt_forensics.cli import app
from igpt_forensics.palette import Palette

runner = CliRunner()


def test_help_and_module_entry_point():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0 and "palette" in r.output and "info" in r.output
    p = subprocess.run([sys.executable, "-m", "igpt_forensics", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "info" in p.stdout


def test_version_prints_the_installed_version_and_nothing_else():
    from importlib.metadata import version

    p = subprocess.run([sys.executable, "-m", "igpt_forensics", "--version"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"igpt-forensics {version('igpt-forensics')}\n"


def test_info_lists_versions_and_device():
    r = runner.invoke(app, ["info"])
    assert r.exit_code == 0, r.output
    assert "torch" in r.output and "device" in r.output and "cpu_threads" in r.output


def test_palette_fit_writes_a_palette_and_prints_psnr(tmp_path):
    out = tmp_path / "pal.json"
    r = runner.invoke(app, ["palette", "fit", "--colors", "16", "--size", "8", "--n", "100",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "PSNR" in r.output
    assert Palette.load(out).n_colors == 16


def test_data_show_writes_grid(tmp_path):
    out = tmp_path / "grid.png"
    r = runner.invoke(app, ["data", "show", "--n", "9", "--size", "8", "--scale", "2",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    grid = np.asarray(Image.open(out))
    assert grid.shape == (3 * 17 + 1, 3 * 17 + 1, 3)


def test_user_mistakes_are_one_red_line_without_traceback(tmp_path):
    for args in (["palette", "fit", "--colors", "1000"],
                 ["data", "show", "--data", str(tmp_path / "missing")]):
        r = runner.invoke(app, args)
        assert r.exit_code == 1
        assert "error:" in r.output and "Traceback" not in r.output
        assert len([line for line in r.output.splitlines() if line.strip()]) == 1, r.output


def test_data_show_reports_bad_files_and_keeps_good(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(d / "ok.png")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    r = runner.invoke(app, ["data", "show", "--data", str(d), "--split", "all", "--n", "4",
                            "--size", "8", "--out", str(tmp_path / "g.png")])
    assert r.exit_code == 0, r.output
    assert "skipped 1 file" in r.output and "broken.png" in r.output


def test_threads_option_sets_torch_threads_before_or_after_the_command(monkeypatch):
    import torch

    from igpt_forensics.cli import hoist_global_options
    from igpt_forensics.device import THREADS_ENV, default_threads

    before = torch.get_num_threads()
    try:
        for n in (2, 3):  # neither is the conftest's one thread: an ignored option fails
            torch.set_num_threads(1)
            r = runner.invoke(app, ["--threads", str(n), "info"])
            assert r.exit_code == 0, r.output
            assert torch.get_num_threads() == n
        r = runner.invoke(app, ["--threads", "0", "info"])
        assert r.exit_code != 0 and "--threads" in r.output
        args = hoist_global_options(["score", "x.png", "--threads", "2", "--debug", "--csv", "o"])
        assert args == ["--threads", "2", "--debug", "score", "x.png", "--csv", "o"]
        assert hoist_global_options(["info", "--threads=3"]) == ["--threads=3", "info"]
        torch.set_num_threads(1)
        assert runner.invoke(app, hoist_global_options(["info", "--threads", "3"])).exit_code == 0
        assert torch.get_num_threads() == 3
        monkeypatch.setenv(THREADS_ENV, "2")  # no option: the environment, else free cores
        assert default_threads() == 2
        monkeypatch.delenv(THREADS_ENV)
        import os

        monkeypatch.setattr(os, "cpu_count", lambda: 8)
        for load, want in ((0.2, 8), (5.4, 3), (20.0, 1)):  # one thread per free core
            monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
            assert default_threads() == want, load

        def no_loadavg():
            raise OSError

        monkeypatch.setattr(os, "getloadavg", no_loadavg)  # unknown load: every core
        assert default_threads() == 8
    finally:
        torch.set_num_threads(before)


def test_json_means_a_file_or_stdout_in_every_command(tiny_checkpoint, tmp_path):
    import json

    photo = tmp_path / "p.png"
    Image.fromarray(np.full((12, 12, 3), 120, np.uint8)).save(photo)
    to_file = tmp_path / "nll.json"
    r = runner.invoke(app, ["nll", str(photo), "--model", str(tiny_checkpoint), "--json",
                            str(to_file)])
    assert r.exit_code == 0 and "bits/dim" in r.output  # the table, and the file
    assert json.loads(to_file.read_text())["rows"][0]["path"] == str(photo)
    r = runner.invoke(app, ["nll", str(photo), "--model", str(tiny_checkpoint), "--json", "-"])
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"]  # stdout holds the JSON alone
    for command in (["score"], ["train-detector"], ["generate"], ["verify"], ["nll"],
                    ["dataset", "stats"], ["dataset", "export"]):
        r = runner.invoke(app, [*command, "--help"])
        assert "'-' for standard output" in " ".join(r.output.replace("│", " ").split()), command


def test_progress_off_a_terminal_is_plain_lines_in_time():
    from igpt_forensics.cli.common import PlainProgress, err_console

    clock = [0.0]
    with err_console.capture() as cap:
        with PlainProgress("images", fields=("loss",), every=10,
                           get_time=lambda: clock[0]) as bar:
            task = bar.add_task("dataset t1", total=100, loss="")
            for _ in range(30):  # 30 images in 15 s: one line at 10 s, none before
                clock[0] += 0.5
                bar.advance(task)
            early = bar.add_task("training", total=30, loss="")
            clock[0] += 1
            bar.update(early, completed=12, loss="loss 0.41")  # stops early: a last line
            for _ in range(70):
                clock[0] += 0.5
                bar.advance(task)
    lines = cap.get().splitlines()
    t1 = [x for x in lines if x.startswith("dataset t1")]
    assert t1[0].startswith("dataset t1: 20/100 images (20%)") and "2.0 images/s" in t1[0]
    assert t1[-1].startswith("dataset t1: 100/100 images (100%)") and "left" not in t1[-1]
    assert len(t1) == 51 // 10 + 1  # one every 10 s of its 51 s, and one when done
    assert lines[-1].startswith("training: 12/30 images (40%)")  # its last line, at the end
    assert lines[-1].endswith("loss 0.41")


def test_the_root_help_imports_no_command_module_and_matches_the_commands():
    """`igpt-forensics --help` reads the commands' help from source (no torch import), and
    what it reads is each real command's help."""
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom igpt_forensics.cli import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "heavy = sorted(m for m in ('torch', 'sklearn', 'generators', 'detectors', "
            "'igpt_forensics.cli.score_cmds') if m in sys.modules)\nprint(heavy)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr
    import click

    from igpt_forensics.cli import COMMANDS, _loaded, _source_help

    for name, module in COMMANDS.items():
        real = _loaded(module).commands[name]
        assert _source_help(module)[name] == (real.help or ""), name
        # every command a module registers is listed (none hidden from the root)
        assert {c: module for c in _loaded(module).commands}.items() <= COMMANDS.items()
    group = typer_main_group()
    assert group.list_commands(click.Context(group)) == list(COMMANDS)


def typer_main_group():
    import typer

    return typer.main.get_command(app)


def test_flags_show_without_a_value_type():
    for args in (["--help"], ["train-detector", "--help"], ["palette", "fit", "--help"],
                 ["dataset", "export", "--help"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0 and "--help" in r.output, r.output
        assert "<bool>" not in r.output, (args, r.output)  # a flag takes no value
    r = runner.invoke(app, ["train-detector", "--help"])
    assert "--no-likelihood" in r.output and "<int>" in r.output  # values keep their type


def test_threads_reach_torch_when_the_command_imports_it_later():
    """In a fresh process the root sets the threads before torch is imported (so that
    --help never loads it): the command that then imports torch must still get them."""
    for n in (1, 2):
        r = subprocess.run([sys.executable, "-m", "igpt_forensics", "info", "--threads", str(n)],
                           capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"})
        assert r.returncode == 0, r.stderr
        row = next(line for line in r.stdout.splitlines() if "cpu_threads" in line)
        assert row.replace("│", " ").split()[1] == str(n), row
