"""Signed bundles on the device: with a trusted key only a bundle whose manifest.sig signs its
manifest's exact bytes runs; without one, nothing changes. Needs the ``signing`` extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from edge_lstm_device import cli
from edge_lstm_device.bundle import signing  # noqa: E402
from edge_lstm_device.bundle.manifest import read_manifest  # noqa: E402
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, SentimentModel  # noqa: E402
from edge_lstm_device.runtime.pool import ModelPool  # noqa: E402

TEXT = "What a wonderful film"


def write_public_key(key: Ed25519PrivateKey, path: Path) -> Path:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path.write_bytes(pem)
    return path


def sign(bundle: Path, key: Ed25519PrivateKey) -> None:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signature = key.sign((bundle / "manifest.json").read_bytes())
    (bundle / signing.SIGNATURE_FILE).write_bytes(signing.format_signature(signature, signing.key_id(raw)))


@pytest.fixture()
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture()
def trusted(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    return write_public_key(key, tmp_path / "trusted.pub")


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    """A copy of the shipped reference bundle (unsigned)."""
    return Path(shutil.copytree(REFERENCE_BUNDLE, tmp_path / "bundle"))


@pytest.fixture()
def signed(bundle: Path, key: Ed25519PrivateKey) -> Path:
    sign(bundle, key)
    return bundle


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(capsys: pytest.CaptureFixture, argv: list[str], *needles: str) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.process
def test_a_signed_bundle_runs_with_its_key(signed: Path, trusted: Path) -> None:
    model = SentimentModel.load(signed, "int8_loop_tflite", trust=trusted)
    plain = SentimentModel.load(REFERENCE_BUNDLE, "int8_loop_tflite")
    assert model.predict(TEXT) == plain.predict(TEXT)


def test_the_signature_file_is_the_documented_text(signed: Path, key: Ed25519PrivateKey) -> None:
    lines = (signed / "manifest.sig").read_text("ascii").splitlines()
    assert [line.split(": ")[0] for line in lines] == ["edge-lstm-signature", "algorithm", "key-id", "signature"]
    signer, signature = signing.parse_signature((signed / "manifest.sig").read_bytes(), "manifest.sig")
    key.public_key().verify(signature, (signed / "manifest.json").read_bytes())  # raises if not
    assert signer == signing.load_trusted_key(write_public_key(key, signed.parent / "k.pub")).key_id


@pytest.mark.process
def test_one_changed_manifest_byte_is_refused(signed: Path, trusted: Path) -> None:
    path = signed / "manifest.json"
    data = path.read_bytes()
    changed = data.replace(b"Dense(1, sigmoid)", b"Dense(2, sigmoid)", 1)
    assert len(changed) == len(data) and sum(a != b for a, b in zip(data, changed)) == 1
    path.write_bytes(changed)
    SentimentModel.load(signed, "int8_loop_tflite")  # the hashes still match: only the signature tells
    with pytest.raises(signing.SignatureError, match="changed after signing"):
        SentimentModel.load(signed, trust=trusted)


def test_an_unsigned_bundle_is_refused_with_a_key(bundle: Path, trusted: Path) -> None:
    with pytest.raises(signing.SignatureError, match="not signed"):
        ModelPool.load(bundle, workers=1, trust=trusted)
    with pytest.raises(signing.SignatureError, match="not signed"):
        SentimentModel.load(trust=trusted)  # the shipped reference bundle is unsigned


def test_a_signature_by_another_key_is_refused(signed: Path, tmp_path: Path) -> None:
    other = write_public_key(Ed25519PrivateKey.generate(), tmp_path / "other.pub")
    with pytest.raises(signing.SignatureError, match="not by the trusted key"):
        SentimentModel.load(signed, trust=other)


@pytest.mark.parametrize("content", [b"", b"edge-lstm-signature: 1\nalgorithm: ed25519\nsignature: AAAA\n",
                                     b"edge-lstm-signature: 2\nalgorithm: ed25519\n", b"\xff\xfe"])
def test_a_malformed_signature_file_is_refused(signed: Path, trusted: Path, content: bytes) -> None:
    (signed / "manifest.sig").write_bytes(content)
    with pytest.raises(signing.SignatureError):
        SentimentModel.load(signed, trust=trusted)


def test_the_signature_is_checked_on_the_bytes_that_are_parsed(signed: Path, trusted: Path) -> None:
    seen: list[bytes] = []
    check = signing.manifest_check(signed, trusted)
    manifest = read_manifest(signed, lambda data: (seen.append(data), check(data)))
    assert len(seen) == 1 and manifest == read_manifest(signed)
    assert seen[0] == (signed / "manifest.json").read_bytes()


@pytest.mark.process
def test_the_cli_trusts_a_key_given_by_flag_or_environment(signed: Path, trusted: Path, capsys, monkeypatch) -> None:
    code, out, _ = run_cli(capsys, "predict", "--bundle", str(signed), "--trust", str(trusted), "--workers", "1", TEXT)
    assert code == 0 and out.startswith("positive")
    monkeypatch.setenv(signing.TRUST_ENV, str(trusted))
    code, out, _ = run_cli(capsys, "info", "--bundle", str(signed))
    assert code == 0 and f"valid, by the trusted key {signing.load_trusted_key(trusted).key_id}" in out
    assert_refused(capsys, ["predict", TEXT], "not signed", str(trusted))  # the unsigned reference bundle
    (signed / "manifest.sig").unlink()
    for verb in (["predict", "--workers", "1", TEXT], ["info"], ["bench", "--reviews", "1"]):
        assert_refused(capsys, [verb[0], "--bundle", str(signed), *verb[1:]], "not signed")
    serve = subprocess.run([sys.executable, "-m", "edge_lstm_device", "serve", "--bundle", str(signed), "--port", "0"],
                           capture_output=True, text=True, timeout=60)  # (its own process: it installs signal handlers)
    assert serve.returncode == 1 and serve.stdout == "" and serve.stderr.count("\n") == 1, serve.stderr
    assert "not signed" in serve.stderr


@pytest.mark.process
def test_without_a_key_nothing_is_checked(signed: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv(signing.TRUST_ENV, raising=False)
    (signed / "manifest.sig").write_bytes(b"not a signature")
    code, out, _ = run_cli(capsys, "predict", "--bundle", str(signed), "--workers", "1", TEXT)
    assert code == 0 and out.startswith("positive")
    code, out, _ = run_cli(capsys, "info")
    assert code == 0 and "not checked" in out


def test_key_file_problems_are_one_line_errors(signed: Path, tmp_path: Path, key, capsys) -> None:
    private = tmp_path / "private.key"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    garbage = tmp_path / "garbage.pub"
    garbage.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    p256 = tmp_path / "p256.pub"
    p256.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    base = ["predict", "--bundle", str(signed), TEXT]
    assert_refused(capsys, [*base, "--trust", str(tmp_path / "missing.pub")], "missing.pub")
    for wrong in (private, garbage, p256):
        assert_refused(capsys, [*base, "--trust", str(wrong)], "not an ed25519 public key")
    assert_refused(capsys, [*base, "--trust", str(tmp_path)], "cannot use the trusted key")


def test_without_cryptography_a_key_asks_for_the_extra(signed: Path, trusted: Path, capsys, monkeypatch) -> None:
    for name in ("cryptography", "cryptography.exceptions", "cryptography.hazmat.primitives.serialization",
                 "cryptography.hazmat.primitives.asymmetric.ed25519"):
        monkeypatch.setitem(sys.modules, name, None)
    assert_refused(capsys, ["predict", "--bundle", str(signed), "--trust", str(trusted), TEXT],
                   "pip install ./device[signing]")
