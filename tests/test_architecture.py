"""The one-way flow of the design (README, Layout), kept true by a test: core <- generators <-
detectors <- applications (the CLI, the web page).

The core modules of igpt_forensics never import the CLI, the web page, the generators or the
detectors; generators never import detectors or an application; detectors never import an
application; the web page never imports the CLI.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ("igpt_forensics.cli", "igpt_forensics.web")
GENERATORS, DETECTORS = "igpt_forensics.generators", "igpt_forensics.detectors"
# the folders at the repository root and the packages they install as (pyproject package-dir)
PACKAGE_OF = {"generators": GENERATORS, "detectors": DETECTORS}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    pkg = path.relative_to(ROOT).with_suffix("").parts[:-1]
    if pkg and pkg[0] in PACKAGE_OF:
        pkg = (*PACKAGE_OF[pkg[0]].split("."), *pkg[1:])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ((node.module,) if node.module else ()))
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def layer_violations(package: str, forbidden: tuple[str, ...], skip: tuple[str, ...] = ()):
    bad = []
    for f in sorted((ROOT / package).rglob("*.py")):
        rel = f.relative_to(ROOT).as_posix()
        if rel.startswith(skip) if skip else False:
            continue
        for name in imports_of(f):
            if any(name == x or name.startswith(x + ".") for x in forbidden):
                bad.append(f"{rel} imports {name}")
    return bad


def test_core_imports_nothing_above_it():
    assert layer_violations("igpt_forensics", APPS + (GENERATORS, DETECTORS),
                            skip=("igpt_forensics/cli", "igpt_forensics/web",
                                  "igpt_forensics/__main__.py")) == []


def test_generators_do_not_import_detectors_or_applications():
    assert layer_violations("generators", (DETECTORS,) + APPS) == []


def test_detectors_do_not_import_applications():
    assert layer_violations("detectors", APPS) == []


def test_the_web_page_does_not_import_the_cli():
    assert layer_violations("igpt_forensics/web", ("igpt_forensics.cli",)) == []


def test_the_walker_sees_relative_imports():
    names = imports_of(ROOT / "igpt_forensics" / "cli" / "__init__.py")
    assert "igpt_forensics.cli.common" in names or "igpt_forensics.cli.common.DEBUG" in names


def test_generators_and_detectors_are_imported_under_igpt_forensics_only():
    """The root folders install as igpt_forensics.generators / .detectors (no top-level
    package another distribution could collide with); a bare `import generators` would load
    a second copy of every module (two detector registries) where the repo root is on the
    path, and fail once installed."""
    bare = []
    for top in ("igpt_forensics", "generators", "detectors", "tests", "benchmarks", "examples"):
        for f in sorted((ROOT / top).rglob("*.py")):
            for name in imports_of(f):
                if name.split(".")[0] in PACKAGE_OF:
                    bare.append(f"{f.relative_to(ROOT)} imports {name}")
    assert bare == []


def test_the_relative_imports_of_a_root_folder_resolve_to_its_installed_name():
    names = imports_of(ROOT / "detectors" / "cnn.py")
    assert any(n.startswith(DETECTORS + ".") for n in names)


def test_no_command_help_imports_torch_or_sklearn():
    """Every command's ``--help`` is fast (issue 18: under a second): it imports neither
    torch nor scikit-learn, which take 1.5-3 s to load. The commands import them when they
    run; their help options read light modules (generators.config, detectors.config)."""
    import subprocess
    import sys

    code = """
import sys
from igpt_forensics.cli import COMMANDS, main
for name in COMMANDS:
    sys.argv = ["igpt-forensics", name, "--help"]
    try:
        main()
    except SystemExit as e:
        assert e.code in (0, None), (name, e.code)
    heavy = sorted(m for m in ("torch", "sklearn", "timm", "matplotlib") if m in sys.modules)
    assert not heavy, f"{name} --help imported {heavy}"
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
