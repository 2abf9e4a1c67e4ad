"""Signing bundles on the build host: ed25519 key pairs (``edge-lstm keygen``) and
``manifest.sig`` (``edge-lstm sign``). The signature's format and its check are the device's
(``edge_lstm_device.bundle.signing``, docs/bundle-format.md#signatures-manifestsig)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edge_lstm_device.bundle.files import atomic_write_bytes, atomic_write_json, bytes_sha256
from edge_lstm_device.bundle.manifest import BUNDLE_VERSION, MANIFEST_FILE, NUMPY_WEIGHTS, read_manifest, read_verified
from edge_lstm_device.bundle.signing import (
    SIGNATURE_FILE,
    TrustedKey,
    crypto,
    format_signature,
    key_id,
    load_pem_key,
    verify_manifest_bytes,
)

PUBLIC_SUFFIX = ".pub"


class SigningError(Exception):
    """A key pair or a signature cannot be written (key and bundle problems are ``BundleError``s)."""


def public_path(private: Path) -> Path:
    return private.with_name(private.name + PUBLIC_SUFFIX)


def _write_key_file(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    """Write a temporary file with ``mode`` from the start, then move it into place: ``os.replace``
    with ``overwrite``, else ``os.link``, which never replaces an existing file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        (os.replace if overwrite else os.link)(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def generate_keypair(private: Path, overwrite: bool = False) -> dict:
    """Write a new ed25519 private key to ``private`` (PKCS#8 PEM, mode 0600; a missing folder is
    made with mode 0700) and its public key to ``private.pub`` (PEM, mode 0644); existing files are
    replaced only with ``overwrite``."""
    public = public_path(private)
    existing = [str(p) for p in (private, public) if os.path.lexists(p)]
    if existing and not overwrite:
        raise SigningError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: "
                           "pass --force to overwrite")
    lib = crypto()
    pem = lib.serialization.Encoding.PEM
    key = lib.ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(pem, lib.serialization.PrivateFormat.PKCS8, lib.serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(pem, lib.serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_key_file(private, private_pem, 0o600, overwrite)
        _write_key_file(public, public_pem, 0o644, overwrite)
    except OSError as err:
        raise SigningError(f"cannot write {err.filename or private}: {err.strerror or err}") from err
    return {"private_key": str(private), "public_key": str(public), "key_id": key_id(lib.raw_public(key.public_key()))}


def _check_files(bundle_dir: Path, manifest: dict) -> tuple[list[str], list[str]]:
    """(files checked, files absent): every file the manifest pins that is present must match it."""
    entries = [manifest["tokenizer"], *manifest["artifacts"].values(), *([manifest[NUMPY_WEIGHTS]] if NUMPY_WEIGHTS in manifest else [])]
    present = [e for e in entries if os.path.lexists(bundle_dir / e["file"])]
    for entry in present:
        read_verified(bundle_dir, entry)
    return [e["file"] for e in present], [e["file"] for e in entries if e not in present]


def sign_bundle(bundle_dir: Path, key_path: Path) -> dict:
    """Check the bundle's files against its manifest, then write ``manifest.sig`` (atomically):
    the signature of the manifest bytes that were checked, read back and verified."""
    key = load_pem_key(key_path, private=True)
    read: list[bytes] = []
    manifest = read_manifest(bundle_dir, read.append)  # the bytes are seen, then parsed and checked
    checked, absent = _check_files(bundle_dir, manifest)
    added = BUNDLE_VERSION not in manifest
    if added:  # exported before versions: a signed bundle needs one for devices to refuse rollbacks
        read.clear()
        manifest = _add_version(bundle_dir, manifest, read)
    public = key.public_key()
    signer = key_id(crypto().raw_public(public))
    try:
        atomic_write_bytes(bundle_dir / SIGNATURE_FILE, format_signature(key.sign(read[0]), signer))
    except OSError as err:
        raise SigningError(f"cannot write {bundle_dir / SIGNATURE_FILE}: {err.strerror or err}") from err
    verify_manifest_bytes(bundle_dir, read[0], TrustedKey(public, signer, key_path))
    return {"bundle": str(bundle_dir), "signature": str(bundle_dir / SIGNATURE_FILE), "key_id": signer,
            "manifest_sha256": bytes_sha256(read[0]), "bundle_version": manifest[BUNDLE_VERSION],
            "bundle_version_added": added, "files_checked": checked, "files_absent": absent}


def _add_version(bundle_dir: Path, manifest: dict, read: list[bytes]) -> dict:
    """Write ``manifest.json`` again with a ``bundle_version`` (atomically); the bytes written are
    appended to ``read``, and the manifest they parse to returned. A versioned manifest is never
    rewritten: signing attests the bytes an export wrote, and re-signing the same bundle must not
    make it newer than a bundle exported after it."""
    from edge_lstm.export.manifest import stamp_version

    try:
        atomic_write_json(bundle_dir / MANIFEST_FILE, stamp_version(manifest, None))
    except OSError as err:
        raise SigningError(f"cannot write {bundle_dir / MANIFEST_FILE}: {err.strerror or err}") from err
    return read_manifest(bundle_dir, read.append)
