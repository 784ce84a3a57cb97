"""The web page and its API (`igpt_forensics.web`), through FastAPI's test client, and once in
a real browser (headless Chromium, skipped where it is not installed)."""

import base64
import io
import json
import shutil
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
from igpt_forensics.detectors.base import judge, open_detector, region_boxes
from PIL import Image

from igpt_forensics.web import EXAMPLES, create_app
from igpt_forensics.web.app import EXAMPLES_DIR

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app({"cnn": "cnn"}, max_upload_bytes=200_000, max_pixels=300 * 300))


def example(name: str) -> bytes:
    return (EXAMPLES_DIR / EXAMPLES[name][0]).read_bytes()


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def post(client, data: bytes, kind="image/png", **params):
    return client.post("/score", content=data, headers={"content-type": kind}, params=params)


def test_region_boxes_are_the_parts_of_the_mask_largest_first():
    mask = np.zeros((20, 30), bool)
    mask[2:5, 3:7] = True  # 12 pixels
    mask[10:18, 20:29] = True  # 72 pixels
    mask[0, 29] = True  # one pixel: dropped
    mask[5, 7] = True  # touches the first part diagonally: joins it (8-connected)
    assert region_boxes(mask) == [[20, 10, 29, 18], [3, 2, 8, 6]]
    assert region_boxes(np.zeros((4, 4), bool)) == []


def test_page_and_detector_list(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="drop"' in page.text and "/score" in page.text
    info = client.get("/api/detectors").json()
    (cnn,) = info["detectors"]
    assert cnn["name"] == "cnn" and info["default"] == "cnn"
    assert cnn["threshold"] == pytest.approx(open_detector("cnn").threshold_)
    assert cnn["target_fpr"] == 0.01 and cnn["has_map"] and "vq" in cnn["trained_on"]
    assert cnn["map_relative"] and "median pixel" in page.text  # what its 0.5 means
    assert set(info["examples"]) == set(EXAMPLES)


def test_a_stamped_completion_is_scored_shown_and_checked(client):
    data = example("completion")
    res = post(client, data).json()
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    # the same answer as the library's one verdict rule on the same pixels
    (row,), _ = judge(open_detector("cnn"), [image])
    assert res["score"] == pytest.approx(row["score"], abs=1e-5)
    assert res["verdict"] == row["verdict"] == "synthetic"  # the bottom half was drawn
    assert res["score"] > res["detector"]["threshold"]
    assert res["boxes"] == row["boxes"] and res["boxes"]
    for x0, y0, x1, y1 in res["boxes"]:
        assert 0 <= x0 < x1 <= res["width"] and 0 <= y0 < y1 <= res["height"]
    head, b64 = res["overlay"].split(",", 1)
    assert head == "data:image/png;base64"
    overlay = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert overlay.size == (res["width"], res["height"]) == (image.shape[1], image.shape[0])
    assert res["provenance"]["status"] == "intact"
    assert res["provenance"]["kind"] == "completion"
    assert res["watermark"] is None and res["c2pa"]["status"] == "absent"


def test_an_edited_file_is_reported_tampered(client):
    image = np.asarray(Image.open(io.BytesIO(example("completion"))).convert("RGB")).copy()
    text = Image.open(io.BytesIO(example("completion"))).text
    image[0, 0] ^= 1
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", pnginfo=info)
    res = post(client, buf.getvalue()).json()
    assert res["provenance"]["status"] == "tampered"


@pytest.mark.parametrize("case, status, words", [
    ("not an image", 422, "not an image"),
    ("text type", 415, "image type"),
    ("no type", 415, "not 'none'"),
    ("empty", 400, "empty"),
    ("too many bytes", 413, "upload limit"),
    ("too many pixels", 413, "too large"),
    ("unknown detector", 404, "this server offers: cnn"),
    ("path as detector", 404, "unknown detector"),
])
def test_every_bad_upload_is_a_4xx_with_one_line(client, case, status, words):
    ok = example("completion")
    r = {
        "not an image": lambda: post(client, b"GIF89a but not really"),
        "text type": lambda: post(client, ok, kind="text/plain"),
        "no type": lambda: client.post("/score", content=ok),
        "empty": lambda: post(client, b""),
        "too many bytes": lambda: post(client, png(np.random.default_rng(0).integers(
            0, 256, (290, 290, 3), dtype=np.uint8))),
        "too many pixels": lambda: post(client, png(np.zeros((301, 300, 3), np.uint8))),
        "unknown detector": lambda: post(client, ok, detector="fusion"),
        "path as detector": lambda: post(client, ok, detector=str(EXAMPLES_DIR.parent /
                                                                  "cnn-default")),
    }[case]()
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert words in error and "\n" not in error


def test_a_detector_that_cannot_be_opened_is_one_line_500(tmp_path):
    (tmp_path / "det").mkdir()
    broken = TestClient(create_app({"mine": str(tmp_path / "det")}))
    r = post(broken, example("completion"))
    assert r.status_code == 500 and "detector 'mine' could not be opened" in r.json()["error"]


def test_unknown_examples_and_routes_are_one_line_4xx(client):
    r = client.get("/api/examples/..%2f..%2fsetup.py")
    assert r.status_code == 404 and r.json()["error"]
    r = client.get("/api/examples/cat")
    assert r.status_code == 404 and "no example 'cat'" in r.json()["error"]
    r = client.get("/score")
    assert r.status_code == 405 and r.json()["error"] == "Method Not Allowed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Chromium is not installed (apt-get install chromium)")
def test_the_page_works_in_a_real_browser(tmp_path):
    """Headless Chromium loads the page, which fetches the example completion, posts it to
    /score and fills in the verdict: the DOM it dumps shows the result."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app({"cnn": "cnn"}), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.1)
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
             "--dump-dom", f"http://127.0.0.1:{port}/?example=completion"],
            capture_output=True, text=True, timeout=120).stdout
    finally:
        server.should_exit = True
        thread.join(10)
    assert 'id="verdict" class="synthetic"' in dom, dom[-2000:]
    assert "against threshold" in dom and "intact" in dom
    assert 'class="box"' in dom
    json.dumps(dom)  # one string, the whole page


def test_the_page_reads_a_c2pa_manifest_and_sees_a_modified_image(client, c2pa_chain):
    from igpt_forensics.credentials import Credentials
    from tests.core.test_credentials import edit_one_pixel

    signed = Credentials.from_files(*c2pa_chain[:2]).sign_png(
        example("completion"), title="completion.png", agent={"name": "pixel-gpt"},
        parent=example("photo"))
    res = post(client, signed).json()
    assert res["c2pa"]["status"] == "valid" and res["c2pa"]["action"] == "c2pa.edited"
    assert "C2PA valid: c2pa.edited by pixel-gpt" in res["c2pa"]["detail"]
    res = post(client, edit_one_pixel(signed)).json()
    assert res["c2pa"]["status"] == "invalid" and res["provenance"]["status"] == "tampered"
