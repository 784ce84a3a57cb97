"""C2PA manifests (`igpt_forensics.credentials`), signed with a throwaway certificate chain
made in the test and read back by c2pa-python's own reader."""

from pathlib import Path

import numpy as np
import pytest

from igpt_forensics import credentials as cr
from igpt_forensics import stamp
from igpt_forensics.errors import InputError
from igpt_forensics.viz import png_bytes


def _chunks(png: bytes):
    at = 8
    while at < len(png):
        n = int.from_bytes(png[at:at + 4], "big")
        yield png[at + 4:at + 8], png[at:at + 12 + n]
        at += 12 + n


def edit_one_pixel(png: bytes) -> bytes:
    """The file with one pixel changed and every other chunk (stamp, C2PA box) kept: the
    new pixels' IDAT chunks spliced in place of the old ones (a valid PNG)."""
    import io

    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).copy()
    image[0, 0] ^= 1
    idat = b"".join(c for t, c in _chunks(png_bytes(image)) if t == b"IDAT")
    out, placed = png[:8], False
    for t, c in _chunks(png):
        if t == b"IDAT":
            out += b"" if placed else idat
            placed = True
        else:
            out += c
    return out


@pytest.fixture(scope="module")
def signed(c2pa_chain):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), bool)
    mask[8:] = True
    png = stamp.stamped_png(image, {"id": "x", "pixels_sha256": "p"})
    creds = cr.Credentials.from_files(*c2pa_chain[:2])
    out = creds.sign_png(png, title="x.png", agent={"name": "pixel-gpt default"},
                         parent=png_bytes(image[::-1]),
                         mask=mask, pixels_sha256="p")
    return image, mask, png, out, creds


def test_a_signed_png_validates_and_names_action_agent_and_region(signed, c2pa_chain):
    image, mask, png, out, creds = signed
    report = cr.read(out)
    assert report.status == "valid" and not report.failures and not report.trusted
    assert report.action == "c2pa.edited" and report.software_agent == "pixel-gpt default"
    assert "test signer" in report.signer
    assert report.region["mask_bits"] == stamp.pack_mask(mask)
    assert report.region["fraction"] == 0.5
    # the pixels and our stamp survive signing
    assert stamp.read_stamp(out)[1] == stamp.read_stamp(png)[1]
    from igpt_forensics.data import load_image
    assert np.array_equal(load_image(out), image)
    # given its CA as a trust anchor, the same file is trusted
    assert cr.read(out, trust_pem=c2pa_chain[2].read_text()).trusted


def test_a_modified_image_is_invalid_and_an_unsigned_one_absent(signed):
    image, mask, png, out, _ = signed
    bad = edit_one_pixel(out)
    assert stamp.read_stamp(bad)[1] == stamp.read_stamp(out)[1]
    report = cr.read(bad)
    assert report.status == "invalid" and "assertion.dataHash.mismatch" in report.failures
    assert cr.read(png).status == "absent"
    assert cr.read(png_bytes(image)).status == "absent"


def test_whole_images_are_created_and_ed25519_keys_sign(tmp_path):
    pytest.importorskip("c2pa")
    creds = cr.Credentials.from_files(*cr.throwaway_chain(tmp_path, "ed25519")[:2])
    assert creds.alg == "ed25519"
    out = creds.sign_png(png_bytes(np.zeros((8, 8, 3), np.uint8)), title="y.png",
                         agent={"name": "g"})
    report = cr.read(out)
    assert report.status == "valid" and report.action == "c2pa.created"
    assert report.region == {"pixels_sha256": None}


def test_bad_certificate_files_are_one_line(c2pa_chain, tmp_path):
    chain, key, ca = c2pa_chain
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(InputError, match="not a PEM certificate chain"):
        cr.Credentials.from_files(tmp_path / "junk.pem", key)
    with pytest.raises(InputError, match="not an unencrypted PEM private key"):
        cr.Credentials.from_files(chain, tmp_path / "junk.pem")
    with pytest.raises(InputError, match="no such C2PA certificate chain"):
        cr.Credentials.from_files(tmp_path / "nope.pem", key)
    other_key = cr.throwaway_chain(tmp_path)[1]  # a key that is not the certificate's
    with pytest.raises(InputError, match="not the key of"):
        cr.Credentials.from_files(chain, other_key)


def test_generate_and_complete_sign_and_verify_reports_it(c2pa_chain, tiny_checkpoint,
                                                           tmp_path):
    from typer.testing import CliRunner

    from igpt_forensics import provenance as pv
    from igpt_forensics.cli import app

    chain, key, ca = c2pa_chain
    sign = ["--c2pa-cert", str(chain), "--c2pa-key", str(key)]
    runner = CliRunner()
    r = runner.invoke(app, ["generate", "--n", "6", "--model", str(tiny_checkpoint),
                            "--masks", "top-half,full", "--out", str(tmp_path / "ds"), *sign])
    assert r.exit_code == 0, r.output
    rows = {x["id"]: x for x in pv.read_manifest(tmp_path / "ds" / pv.MANIFEST)}
    assert pv.read_info(tmp_path / "ds")["settings"]["c2pa"]["cert_sha256"]
    fakes = [x for x in rows.values() if x["form"] == "fake"]
    for x in fakes:
        report = cr.read((tmp_path / "ds" / x["path"]).read_bytes())
        assert report.status == "valid"
        assert report.action == ("c2pa.created" if x["mask_kind"] == "full" else "c2pa.edited")
        assert report.region["mask_bits"] == stamp.pack_mask(
            pv.read_rows(tmp_path / "ds", [x]).__next__()[2])
    real = next(x for x in rows.values() if x["form"] == "real")
    assert cr.read((tmp_path / "ds" / real["path"]).read_bytes()).status == "absent"
    # the dataset's own integrity still holds: the manifest hashes the signed files
    assert len(list(pv.read_rows(tmp_path / "ds", list(rows.values()), verify=True))) == 18
    # complete: each saved completion is an edit of its photo
    from PIL import Image
    from skimage import data as skd
    Image.fromarray(skd.astronaut()).save(tmp_path / "a.png")
    r = runner.invoke(app, ["complete", str(tmp_path / "a.png"), "--model",
                            str(tiny_checkpoint), "--samples", "1", "--out",
                            str(tmp_path / "g.png"), "--save-dir", str(tmp_path / "c"), *sign])
    assert r.exit_code == 0, r.output
    done = next((tmp_path / "c").glob("*.png"))
    assert cr.read(done.read_bytes()).action == "c2pa.edited"
    # verify: valid, trusted with the CA, invalid once modified, in one table
    bad = tmp_path / "bad.png"
    bad.write_bytes(edit_one_pixel(done.read_bytes()))
    r = runner.invoke(app, ["verify", str(done), str(bad), "--model", str(tiny_checkpoint),
                            "--c2pa-trust", str(ca), "--json", str(tmp_path / "v.json")])
    assert r.exit_code == 0, r.output
    import json
    by = {Path(x["path"]).name: x["c2pa"] for x in
          json.loads((tmp_path / "v.json").read_text())["rows"]}
    assert by[done.name]["status"] == "valid" and by[done.name]["trusted"]
    assert by["bad.png"]["status"] == "invalid"
    assert "C2PA invalid" in r.output and "assertion.dataHash.mismatch" in r.output
    r = runner.invoke(app, ["complete", str(tmp_path / "a.png"), "--model",
                            str(tiny_checkpoint), "--c2pa-cert", str(chain)])
    assert r.exit_code == 1 and "needs both --c2pa-cert and --c2pa-key" in r.output
    (tmp_path / "junk.pem").write_text("not a certificate")
    r = runner.invoke(app, ["verify", str(done), "--c2pa-trust", str(tmp_path / "junk.pem")])
    assert r.exit_code == 1 and "not a PEM file of CA certificates" in r.output
