"""C2PA manifests ("Content Credentials"): how provenance travels outside this toolkit.

Our stamp (`igpt_forensics.stamp`) is a private PNG text chunk anyone can write; a C2PA
manifest is the standard that cameras, generators, browsers and Adobe tools read, signed with
an X.509 certificate. `Credentials` signs a PNG the tool made: the action (``c2pa.created``
for a wholly synthesized image, ``c2pa.edited`` for a completion of a real photo), the
generator as ``softwareAgent``, IPTC's digital source type, and the synthesized-region mask
as an assertion of its own (``org.igpt-forensics.region``: the mask's bits as `stamp.pack_mask`
writes them, the fraction synthesized and the hash of the pixels). `read` reports a file's
manifest as ``valid`` (the signature verifies and the image is the one signed), ``invalid``
(a hash or signature fails: the file was modified after signing) or ``absent``.

``trusted`` says whether the signing certificate chains to a trust anchor given to `read`
(none by default: a valid manifest signed by an unknown certificate is valid, not trusted).

The C2PA box carries random salts and a fresh signature, so a signed file's bytes differ from
run to run (its pixels, stamp and records do not): signing is opt-in, and a dataset whose
fakes are signed records the certificate's fingerprint in its settings. Uses ``c2pa-python``
(``pip install 'igpt-forensics[c2pa]'``); without it, reading reports ``unavailable``.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .errors import InputError
from .files import read_bounded
from .stamp import pack_mask

REGION_LABEL = "org.igpt-forensics.region"
SOURCE_TYPES = {  # IPTC digital source types
    "c2pa.created": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
    "c2pa.edited": "http://cv.iptc.org/newscodes/digitalsourcetype/"
                   "compositeWithTrainedAlgorithmicMedia",
}
STATUSES = ("valid", "invalid", "absent", "unavailable")
MAX_PEM_BYTES = 1 << 20
INSTALL_HINT = "pip install 'igpt-forensics[c2pa]' (c2pa-python)"


def _c2pa():
    try:
        import c2pa
    except ImportError:
        raise InputError(f"C2PA needs the c2pa-python package: {INSTALL_HINT}") from None
    return c2pa


def _x509():
    try:
        from cryptography import x509
    except ImportError:
        raise InputError(f"C2PA needs the cryptography package: {INSTALL_HINT}") from None
    return x509


def _context(c2pa, trust_pem: str | None = None):
    # no thumbnail: a 32x32 PNG would grow thirty-fold for a JPEG preview of itself
    settings: dict = {"builder": {"thumbnail": {"enabled": False}}}
    if trust_pem:
        settings["trust"] = {"trust_anchors": trust_pem}
        settings["verify"] = {"verify_trust": True}
    return c2pa.Context.from_dict(settings)


def _algorithm(cert_pem: bytes, key_pem: bytes, cert: Path, where: Path) -> str:
    """The C2PA signing algorithm of a PEM private key (EC P-256/384/521, Ed25519, RSA),
    checked to be the key of the chain's first certificate."""
    x509 = _x509()
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_private_key,
    )

    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise InputError(f"{where}: not an unencrypted PEM private key ({e})") from None
    try:
        signer = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError as e:
        raise InputError(f"{cert}: not a PEM certificate chain ({e})") from None
    der = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if signer.public_key().public_bytes(*der) != key.public_key().public_bytes(*der):
        raise InputError(f"{where}: not the key of {cert}'s first certificate "
                         f"({signer.subject.rfc4514_string()})")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}.get(
            key.curve.name)
        if alg:
            return alg
        raise InputError(f"{where}: EC curve {key.curve.name} is not one C2PA signs with "
                         "(P-256, P-384, P-521)")
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise InputError(f"{where}: a {type(key).__name__} key; C2PA signs with EC, Ed25519 or RSA")


class Credentials:
    """Signs PNG bytes with a certificate chain (PEM, signer first) and its private key."""

    def __init__(self, cert_pem: bytes, key_pem: bytes, alg: str, source: str = "<memory>"):
        self.cert_pem, self.key_pem, self.alg = cert_pem, key_pem, alg
        self.fingerprint = hashlib.sha256(cert_pem).hexdigest()  # what records keep
        self._c2pa = _c2pa()
        try:
            self._c2pa.Signer.from_info(self._info())
        except self._c2pa.C2paError as e:
            raise InputError(f"{source}: the certificate and key cannot sign C2PA ({e})") from None

    @classmethod
    def from_files(cls, cert: str | Path, key: str | Path) -> Credentials:
        _c2pa()  # the install hint before anything else
        cert, key = Path(cert), Path(key)
        cert_pem = read_bounded(cert, MAX_PEM_BYTES, "C2PA certificate chain (PEM)")
        key_pem = read_bounded(key, MAX_PEM_BYTES, "C2PA private key (PEM)")
        if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
            raise InputError(f"{cert}: not a PEM certificate chain (signer first, then its CA)")
        return cls(cert_pem, key_pem, _algorithm(cert_pem, key_pem, cert, key), f"{cert} + {key}")

    def _info(self):
        return self._c2pa.C2paSignerInfo(self.alg.encode(), self.cert_pem, self.key_pem, None)

    def describe(self) -> dict:
        return {"standard": "c2pa", "cert_sha256": self.fingerprint, "alg": self.alg}

    def sign_png(self, png: bytes, *, title: str, agent: dict, parent: bytes | None = None,
                 mask: np.ndarray | None = None, pixels_sha256: str | None = None) -> bytes:
        """``png`` with a signed manifest. With ``parent`` (the PNG of the real photo it
        completes, added as the parent ingredient): ``c2pa.opened`` then ``c2pa.edited``;
        without: ``c2pa.created`` (wholly synthesized). ``agent`` (name, version...) is the
        software agent of the synthesis; ``mask`` (True = synthesized) goes in the region
        assertion."""
        action = "c2pa.edited" if parent is not None else "c2pa.created"
        region: dict = {"pixels_sha256": pixels_sha256}
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            region.update(height=int(mask.shape[0]), width=int(mask.shape[1]),
                          fraction=float(mask.mean()), mask_bits=pack_mask(mask))
        actions = [{"action": action, "softwareAgent": agent,
                    "digitalSourceType": SOURCE_TYPES[action]}]
        if parent is not None:
            actions.insert(0, {"action": "c2pa.opened",
                               "parameters": {"ingredientIds": ["source"]}})
        manifest = {
            "claim_generator_info": [{"name": "igpt-forensics", "version": __version__}],
            "title": title, "format": "image/png",
            "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}},
                           {"label": REGION_LABEL, "data": region}],
        }
        c2pa = self._c2pa
        try:
            builder = c2pa.Builder(json.dumps(manifest), context=_context(c2pa))
            if parent is not None:
                builder.add_ingredient(json.dumps({"title": f"source of {title}",
                                                   "relationship": "parentOf",
                                                   "label": "source"}),
                                       "image/png", io.BytesIO(parent))
            out = io.BytesIO()
            builder.sign(c2pa.Signer.from_info(self._info()), "image/png", io.BytesIO(png), out)
        except c2pa.C2paError as e:
            raise InputError(f"{title}: C2PA signing failed ({e})") from None
        return out.getvalue()


@dataclass
class Report:
    """What a file's C2PA manifest says (`read`)."""

    status: str  # one of STATUSES
    trusted: bool = False
    action: str | None = None
    software_agent: str | None = None
    signer: str | None = None  # the certificate's common name and issuer
    region: dict | None = None  # our region assertion (mask bits, fraction)
    failures: list[str] = field(default_factory=list)  # C2PA validation codes that failed

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        if self.status in ("absent", "unavailable"):
            return {"absent": "no C2PA manifest",
                    "unavailable": f"C2PA not checked ({INSTALL_HINT})"}[self.status]
        what = f"{self.action or 'no action'} by {self.software_agent or 'unknown agent'}"
        trust = "trusted" if self.trusted else "signer not in the trust list"
        tail = f"; failed: {', '.join(self.failures)}" if self.failures else ""
        return f"C2PA {self.status}: {what}, signed by {self.signer} ({trust}){tail}"


def read_trust(path: str | Path) -> str:
    """Trust anchors for `read` from a PEM file of CA certificates, read with a bound and
    checked: a file that holds no parsable certificate is one line, not a report of every
    manifest as invalid."""
    x509 = _x509()
    path = Path(path)
    pem = read_bounded(path, MAX_PEM_BYTES, "C2PA trust anchors (PEM)")
    try:
        if not x509.load_pem_x509_certificates(pem):
            raise ValueError("no certificate")
    except ValueError as e:
        raise InputError(f"{path}: not a PEM file of CA certificates ({e})") from None
    return pem.decode("ascii", "replace")


def mime_type(data: bytes) -> str | None:
    """The container of a file's bytes, for the C2PA reader (None: one it does not read)."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def read(data: bytes, mime: str | None = None, trust_pem: str | None = None) -> Report:
    """The C2PA manifest of a file's bytes (``mime``: its container, sniffed when None),
    checked: ``valid``, ``invalid`` or ``absent`` (``unavailable`` without c2pa-python).
    Never raises for a file's content."""
    mime = mime or mime_type(data)
    if mime is None:
        return Report("absent")
    try:
        c2pa = _c2pa()
    except InputError:
        return Report("unavailable")
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), context=_context(c2pa,
                                                                                   trust_pem))
    except c2pa.C2paError as e:
        return Report("invalid", failures=[f"unreadable manifest ({type(e).__name__})"])
    if reader is None:
        return Report("absent")
    try:
        state = reader.get_validation_state() or "Invalid"
        results = reader.get_validation_results() or {}
        manifest = reader.get_active_manifest() or {}
    except c2pa.C2paError as e:
        return Report("invalid", failures=[f"unreadable manifest ({type(e).__name__})"])
    finally:
        reader.close()
    active = results.get("activeManifest") or {}
    failures = [f["code"] for f in active.get("failure") or []
                if f.get("code") != "signingCredential.untrusted"]
    out = Report("valid" if state in ("Valid", "Trusted") and not failures else "invalid",
                 trusted=state == "Trusted", failures=failures)
    sig = manifest.get("signature_info") or {}
    out.signer = " / ".join(str(sig[k]) for k in ("common_name", "issuer") if sig.get(k))
    for a in manifest.get("assertions") or []:
        if str(a.get("label", "")).startswith("c2pa.actions"):
            acts = [x for x in (a.get("data") or {}).get("actions") or []
                    if x.get("action") != "c2pa.opened"] or [{}]
            out.action = acts[-1].get("action")
            agent = acts[-1].get("softwareAgent")
            out.software_agent = agent.get("name") if isinstance(agent, dict) else agent
        elif a.get("label") == REGION_LABEL and isinstance(a.get("data"), dict):
            out.region = a["data"]
    return out


def throwaway_chain(folder: str | Path, key_type: str = "p256") -> tuple[Path, Path, Path]:
    """A throwaway certificate chain for tests and trials, never for publishing: a CA and a
    signer it issues (digitalSignature + emailProtection, as C2PA asks of a signer), valid
    for 30 days, written to ``folder`` as (chain.pem, key.pem, ca.pem). ``key_type``: p256 or
    ed25519 (the signer's key)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "igpt-forensics tests")])

    def usage(sign, ca):
        return x509.KeyUsage(digital_signature=sign, content_commitment=False,
                             key_encipherment=False, data_encipherment=False,
                             key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                             encipher_only=False, decipher_only=False)

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ed25519.Ed25519PrivateKey.generate() if key_type == "ed25519" else \
        ec.generate_private_key(ec.SECP256R1())

    def base(subject, issuer, public):
        return (x509.CertificateBuilder().subject_name(subject)
                .issuer_name(issuer).public_key(public).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30)))

    ca = (base(name("test CA"), name("test CA"), ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(False, True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    signer = (base(name("test signer"), ca.subject, key.public_key())
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(usage(True, False), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                             critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                  ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    folder = Path(folder)
    paths = folder / "chain.pem", folder / "key.pem", folder / "ca.pem"
    paths[0].write_bytes(signer.public_bytes(pem) + ca.public_bytes(pem))
    paths[1].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].write_bytes(ca.public_bytes(pem))
    return paths


__all__ = ["Credentials", "REGION_LABEL", "Report", "STATUSES", "mime_type", "read",
           "read_trust", "throwaway_chain"]
