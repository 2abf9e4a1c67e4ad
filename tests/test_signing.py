"""``edge-lstm keygen`` and ``edge-lstm sign`` (the device's check of the result is in
device/tests/bundle/test_signing.py), and export removing a signature its new manifest makes stale."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from edge_lstm_device.bundle import signing
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, SentimentModel

from edge_lstm.cli import main
from edge_lstm.commands.export import signature_note
from edge_lstm.export import exporter
from edge_lstm.transaction import BundleTransaction


def run(*argv: str):
    return CliRunner().invoke(main, list(argv))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    """A copy of the shipped reference bundle (exporting one takes minutes)."""
    return Path(shutil.copytree(REFERENCE_BUNDLE, tmp_path / "bundle"))


@pytest.fixture()
def key(tmp_path: Path) -> Path:
    result = run("keygen", "--out", str(tmp_path / "signing.key"))
    assert result.exit_code == 0, result.output
    return tmp_path / "signing.key"


def test_keygen_writes_a_private_and_a_public_key(tmp_path: Path) -> None:
    out = tmp_path / "k"
    result = run("keygen", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert mode(out) == 0o600 and mode(tmp_path / "k.pub") == 0o644
    assert out.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert report["key_id"] == signing.load_trusted_key(tmp_path / "k.pub").key_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k", "k.pub"]  # no temporary file left


@pytest.mark.parametrize("existing", [["k"], ["k.pub"], ["k", "k.pub"]])
def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path, existing: list[str]) -> None:
    for name in existing:
        (tmp_path / name).write_text("precious")
    result = run("keygen", "--out", str(tmp_path / "k"))
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "already exist" in result.output and "--force" in result.output
    assert all((tmp_path / name).read_text() == "precious" for name in existing)
    result = run("keygen", "--out", str(tmp_path / "k"), "--force")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "k").read_text() != "precious" and mode(tmp_path / "k") == 0o600
    signing.load_trusted_key(tmp_path / "k.pub")


def test_keygen_makes_a_private_folder_or_says_why_it_cannot(tmp_path: Path) -> None:
    result = run("keygen", "--out", str(tmp_path / "keys" / "k"))
    assert result.exit_code == 0, result.output
    assert mode(tmp_path / "keys") == 0o700 and mode(tmp_path / "keys" / "k") == 0o600
    (tmp_path / "file").write_text("")
    result = run("keygen", "--out", str(tmp_path / "file" / "k"))
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "cannot write" in result.output


@pytest.mark.process
def test_sign_writes_a_signature_the_device_accepts(bundle: Path, key: Path) -> None:
    result = run("sign", "--bundle", str(bundle), "--key", str(key), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["key_id"] == signing.load_trusted_key(key.with_name("signing.key.pub")).key_id
    assert "model_int8_loop.tflite" in report["files_checked"]
    assert not list(bundle.glob(".manifest.sig.*"))  # written through a temporary file, renamed
    model = SentimentModel.load(bundle, "int8_loop_tflite", trust=key.with_name("signing.key.pub"))
    assert model.predict("What a wonderful film").label == "positive"


@pytest.mark.process
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_verifies_the_signature(bundle: Path, key: Path, tmp_path: Path) -> None:
    assert run("sign", "--bundle", str(bundle), "--key", str(key)).exit_code == 0
    fields = dict(line.split(": ", 1) for line in (bundle / "manifest.sig").read_text().splitlines())
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(fields["signature"]))
    check = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key) + ".pub", "-rawin",
                            "-in", str(bundle / "manifest.json"), "-sigfile", str(tmp_path / "sig.bin")],
                           capture_output=True, text=True)
    assert check.returncode == 0 and "Verified Successfully" in check.stdout, check.stdout + check.stderr


@pytest.mark.parametrize("name", ["tokenizer.json", "model_numpy.npz"])
def test_sign_refuses_a_bundle_whose_files_do_not_match(bundle: Path, key: Path, name: str) -> None:
    changed = bundle / name
    changed.write_bytes(changed.read_bytes().replace(b"the" if name.endswith("json") else b"structure", b"thE", 1))
    result = run("sign", "--bundle", str(bundle), "--key", str(key))
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "does not match the manifest" in result.output
    assert not (bundle / "manifest.sig").exists()


@pytest.mark.parametrize("which", ["public", "encrypted", "missing", "no bundle"])
def test_sign_errors_are_one_line(bundle: Path, key: Path, tmp_path: Path, which: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    (tmp_path / "encrypted").write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")))
    args = {"public": [str(bundle), str(key) + ".pub"], "encrypted": [str(bundle), str(tmp_path / "encrypted")],
            "missing": [str(bundle), str(tmp_path / "nokey")], "no bundle": [str(tmp_path / "empty"), str(key)]}[which]
    (tmp_path / "empty").mkdir()
    result = run("sign", "--bundle", args[0], "--key", args[1])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Traceback" not in result.output, result.output
    assert not (bundle / "manifest.sig").exists()


def staged_commit(bundle: Path, manifest: dict) -> str | None:
    """``exporter._commit`` of a transaction holding no artifacts, only a new manifest."""
    with BundleTransaction(bundle, owns=exporter.EXPORT_FILES, prefix=exporter.STAGING_PREFIX) as txn:
        return exporter._commit(txn, [], manifest, {"artifacts": {}})


def test_export_removes_a_signature_its_new_manifest_makes_stale(bundle: Path, key: Path) -> None:
    assert run("sign", "--bundle", str(bundle), "--key", str(key)).exit_code == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["device_order"].reverse()
    assert staged_commit(bundle, manifest) == "removed"
    assert not (bundle / "manifest.sig").exists()
    assert json.loads((bundle / "manifest.json").read_text())["device_order"] == manifest["device_order"]
    assert "sign the bundle again" in signature_note({"signature": "removed"})


def test_export_keeps_a_signature_of_the_same_manifest_bytes(bundle: Path, key: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert staged_commit(bundle, manifest) is None  # unsigned: nothing to say
    assert run("sign", "--bundle", str(bundle), "--key", str(key)).exit_code == 0
    assert staged_commit(bundle, manifest) == "kept"
    signing.read_trusted_manifest(bundle, str(key) + ".pub")  # still valid (the commit removed the artifacts)
    assert signature_note({}) is None and "kept" in signature_note({"signature": "kept"})


# --- bundle_version (rollback protection; the device's side is device/tests/bundle/test_rollback.py)


def test_a_reexport_keeps_the_version_and_a_changed_manifest_gets_a_newer_one(
        bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_lstm.export.manifest import stamp_version

    previous = json.loads((bundle / "manifest.json").read_text())
    version = previous["bundle_version"]
    assert stamp_version({k: v for k, v in previous.items() if k != "bundle_version"}, previous) == previous
    changed = {**previous, "device_order": previous["device_order"][::-1]}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(version + 1000))
    assert stamp_version(changed, previous)["bundle_version"] == version + 1000  # the build's time
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000")  # a clock behind: still newer than the folder's last
    stamped = stamp_version(changed, previous)
    assert stamped["bundle_version"] == version + 1 and list(stamped)[:2] == ["format_version", "bundle_version"]
    fresh = stamp_version({k: v for k, v in previous.items() if k != "bundle_version"}, None)
    assert fresh["bundle_version"] == 1000  # a new folder: the time alone


def test_export_commit_versions_the_manifest_it_writes(bundle: Path) -> None:
    before = json.loads((bundle / "manifest.json").read_text())
    manifest = {k: v for k, v in before.items() if k != "bundle_version"}
    staged_commit(bundle, manifest)
    assert json.loads((bundle / "manifest.json").read_text()) == before  # the same model: the same bytes
    manifest = {**manifest, "device_order": before["device_order"][::-1]}
    staged_commit(bundle, manifest)
    written = json.loads((bundle / "manifest.json").read_text())
    assert written["bundle_version"] > before["bundle_version"] and written == manifest  # the caller's copy too


def test_sign_versions_an_unversioned_manifest_and_leaves_a_versioned_one(bundle: Path, key: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    versioned_bytes = (bundle / "manifest.json").read_bytes()
    result = run("sign", "--bundle", str(bundle), "--key", str(key), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert not report["bundle_version_added"] and report["bundle_version"] == manifest["bundle_version"]
    assert (bundle / "manifest.json").read_bytes() == versioned_bytes
    manifest.pop("bundle_version")
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    result = run("sign", "--bundle", str(bundle), "--key", str(key))
    assert result.exit_code == 0 and "had no bundle_version" in result.output, result.output
    signed = signing.read_trusted_manifest(bundle, str(key) + ".pub")  # the signature covers the version
    assert signed["bundle_version"] >= 1_790_000_000 and {k: v for k, v in signed.items() if k != "bundle_version"} == manifest
