"""Signed bundles: ``manifest.sig``, an ed25519 signature over ``manifest.json``'s exact bytes
(docs/bundle-format.md#signatures-manifestsig). The manifest pins every other file, so a valid
signature covers the whole bundle.

No numpy here. ``cryptography`` (the ``signing`` extra) is imported only when a key is used.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

from edge_lstm_device.bundle.files import bytes_sha256
from edge_lstm_device.bundle.manifest import BundleError, read_bounded, read_manifest

SIGNATURE_FILE = "manifest.sig"
TRUST_ENV = "EDGE_LSTM_TRUST"  # the trusted public key when --trust is not given
ALGORITHM = "ed25519"
SIGNATURE_VERSION = "1"
SIGNATURE_BYTES = 64
MAX_SIGNATURE_FILE_BYTES = 4096
MAX_KEY_FILE_BYTES = 64 << 10
INSTALL_HINT = "pip install ./device[signing]"  # (or: pip install 'edge-lstm-device[signing]')


class SignatureError(BundleError):
    """A bundle's ``manifest.sig`` is missing, malformed, or not a valid signature of its
    ``manifest.json`` by the trusted key."""


class KeyFileError(BundleError):
    """The trusted key cannot be used: missing, not an ed25519 public key, or ``cryptography``
    is not installed."""


@dataclass(frozen=True)
class TrustedKey:
    """An ed25519 public key, and its id (the first 16 hex digits of the raw key's sha256)."""

    key: Any  # cryptography's Ed25519PublicKey
    key_id: str
    path: Path


Trust = Union[TrustedKey, Path, str, None]


def key_id(raw_public_key: bytes) -> str:
    return bytes_sha256(raw_public_key)[:16]


def crypto() -> Any:
    """The ``cryptography`` modules signing needs; ``KeyFileError`` if it is not installed."""
    try:
        from cryptography import exceptions
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as err:
        raise KeyFileError(f"signatures need the 'cryptography' package: {INSTALL_HINT}") from err
    return _Crypto(exceptions, serialization, ed25519)


@dataclass(frozen=True)
class _Crypto:
    exceptions: Any
    serialization: Any
    ed25519: Any

    def raw_public(self, public_key: Any) -> bytes:
        raw = self.serialization.Encoding.Raw
        return public_key.public_bytes(raw, self.serialization.PublicFormat.Raw)


def load_pem_key(path: Path | str, private: bool = False) -> Any:
    """The ed25519 public key (or, ``private``, the unencrypted private key) in a PEM file, as
    ``edge-lstm keygen`` writes them; ``KeyFileError`` otherwise."""
    path, lib = Path(path), crypto()
    try:
        data = read_bounded(path, MAX_KEY_FILE_BYTES)
    except BundleError as err:
        raise KeyFileError(f"cannot use the {'signing' if private else 'trusted'} key {path}: {err}") from err
    kind = "an unencrypted ed25519 private key" if private else "an ed25519 public key"
    not_a_key = KeyFileError(f"{path} is not {kind} in PEM (edge-lstm keygen writes one)")
    serialization = lib.serialization
    try:
        key = serialization.load_pem_private_key(data, None) if private else serialization.load_pem_public_key(data)
    except (ValueError, TypeError, lib.exceptions.UnsupportedAlgorithm) as err:
        raise not_a_key from err
    if not isinstance(key, lib.ed25519.Ed25519PrivateKey if private else lib.ed25519.Ed25519PublicKey):
        raise not_a_key
    return key


def load_trusted_key(path: Path | str) -> TrustedKey:
    """The ed25519 public key in a PEM file (``edge-lstm keygen`` writes ``KEY.pub``)."""
    key = load_pem_key(path)
    return TrustedKey(key, key_id(crypto().raw_public(key)), Path(path))


def resolve_trust(trust: Trust) -> TrustedKey | None:
    """A loaded key from a key or the path of a key file; ``None`` (nothing checked) for ``None``."""
    if trust is None or isinstance(trust, TrustedKey):
        return trust
    return load_trusted_key(trust)


def format_signature(signature: bytes, signer_id: str) -> bytes:
    """The text of ``manifest.sig``."""
    encoded = base64.b64encode(signature).decode("ascii")
    return (f"edge-lstm-signature: {SIGNATURE_VERSION}\nalgorithm: {ALGORITHM}\nkey-id: {signer_id}\n"
            f"signature: {encoded}\n").encode("ascii")


def parse_signature(data: bytes, source: str) -> tuple[str, bytes]:
    """(key id, 64 signature bytes) of a ``manifest.sig``'s text; ``SignatureError`` if malformed."""
    try:
        lines = data.decode("ascii").splitlines()
        fields = dict(line.split(": ", 1) for line in lines if line)
    except (UnicodeDecodeError, ValueError) as err:
        raise SignatureError(f"{source} is not an edge-lstm signature file") from err
    if fields.get("edge-lstm-signature") != SIGNATURE_VERSION or fields.get("algorithm") != ALGORITHM:
        raise SignatureError(f"{source}: unsupported signature (expected edge-lstm-signature 1, ed25519)")
    try:
        signature = base64.b64decode(fields.get("signature", ""), validate=True)
    except binascii.Error as err:
        raise SignatureError(f"{source}: the signature is not base64") from err
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"{source}: the signature is not {SIGNATURE_BYTES} bytes")
    return fields.get("key-id", "?")[:64], signature


def verify_manifest_bytes(bundle_dir: Path, manifest_bytes: bytes, trusted: TrustedKey) -> None:
    """``SignatureError`` unless the bundle's ``manifest.sig`` signs exactly ``manifest_bytes``
    with the trusted key."""
    path = Path(bundle_dir) / SIGNATURE_FILE
    if not os.path.lexists(path):
        raise SignatureError(f"{bundle_dir} is not signed (no {SIGNATURE_FILE}) and a trusted key is set "
                             f"(--trust or ${TRUST_ENV}: {trusted.path})")
    signer_id, signature = parse_signature(read_bounded(path, MAX_SIGNATURE_FILE_BYTES), str(path))
    try:
        trusted.key.verify(signature, manifest_bytes)
    except crypto().exceptions.InvalidSignature:
        why = ("the manifest was changed after signing" if signer_id == trusted.key_id else
               f"signed by key {signer_id}, not by the trusted key {trusted.key_id}")
        raise SignatureError(f"{path} is not a valid signature of {bundle_dir}/manifest.json by the "
                             f"trusted key ({why}): refused") from None


def manifest_check(bundle_dir: Path, trust: Trust) -> Callable[[bytes], None] | None:
    """What ``read_manifest`` runs on the manifest's bytes before parsing them (``None``: no key)."""
    trusted = resolve_trust(trust)
    if trusted is None:
        return None
    return lambda data: verify_manifest_bytes(bundle_dir, data, trusted)


def read_trusted_manifest(bundle_dir: Path, trust: Trust) -> dict:
    """The bundle's manifest; with a trusted key, only if ``manifest.sig`` signs the bytes parsed."""
    return read_manifest(bundle_dir, manifest_check(bundle_dir, trust))
