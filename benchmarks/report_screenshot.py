"""The bench report (report.html) as a browser shows it: headless Chromium (Debian's
`chromium` package) renders the page, its DOM is checked (the verdict box first, one section
per protocol, every embedded image decoded), and the top of the page is saved as a PNG.

    .venv/bin/python benchmarks/report_screenshot.py runs/demo/report/report.html \
        --out docs/report.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def chromium(*args: str, profile: str) -> subprocess.CompletedProcess:
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={profile}", "--hide-scrollbars", *args],
                          check=True, capture_output=True, text=True, timeout=180)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/report.png"))
    ap.add_argument("--size", default="1200,1600", help="Window WIDTH,HEIGHT in pixels.")
    args = ap.parse_args()
    if not shutil.which("chromium"):
        sys.exit("chromium is not installed (apt-get install -y chromium)")
    url = args.report.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        dom = chromium("--dump-dom", url, profile=profile).stdout
        checks = {"verdict box first": 0 <= dom.find('class="verdict"') < dom.find("<h2>"),
                  "images embedded": dom.count("data:image/png;base64,") > 0,
                  "no raw metric names": "tpr_at_1fpr" not in dom}
        print(checks)
        if not all(checks.values()):
            sys.exit(f"the rendered report fails: {[k for k, v in checks.items() if not v]}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        chromium(f"--window-size={args.size}", f"--screenshot={args.out.resolve()}", url,
                 profile=profile)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
