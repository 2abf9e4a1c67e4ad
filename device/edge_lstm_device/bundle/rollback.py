"""Rollback protection for signed bundles (docs/serve.md#signed-bundles).

A signature proves who made a bundle, not that it is the newest: whoever can write the bundle's
folder could put back an older bundle the same key once signed (one with a known bad model).
So the signed manifest carries ``bundle_version`` (an integer that only grows, set by ``export``
and ``sign``), and a device that trusts a key remembers, per key, the version of the last bundle
it ran. A bundle older than that is refused unless the operator allows it (``--allow-downgrade``).

The state is a small JSON file in the device's cache folder, written atomically and only after a
bundle was accepted and loaded. Without a trusted key nothing here runs: an unsigned bundle could
be replaced by any bundle at all, so its version would prove nothing.

No numpy and no ``cryptography`` here (the key is already checked by ``signing.py``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from edge_lstm_device.bundle.files import atomic_write_json, cache_dir
from edge_lstm_device.bundle.manifest import BundleError, bundle_version, read_bounded

STATE_FILE = "bundle-versions.json"
STATE_FORMAT = 1
MAX_STATE_BYTES = 1 << 20
ALLOW_HINT = "--allow-downgrade"


class DowngradeError(BundleError):
    """The bundle is signed by the trusted key but older than the one this device last ran."""


class VersionStateError(BundleError):
    """The file that remembers the versions run cannot be read or written."""


def describe(version: int) -> str:
    """A version for people: export's versions are UTC seconds, so say when, if it looks like one."""
    if version >= 1_000_000_000:  # 2001-09-09 and later: a timestamp, not a small counter
        return f"{version} ({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(version))} UTC)"
    return str(version)


def state_path() -> Path:
    return cache_dir() / STATE_FILE


@dataclass(frozen=True)
class VersionState:
    """The version of the last bundle run, per trusted key id (``signing.key_id``)."""

    path: Path

    def read(self) -> dict[str, dict]:
        """Every key's record; ``{}`` when the file does not exist yet. A file that exists but
        cannot be read is an error, not an empty state: failing open would let a damaged file
        (or one an attacker truncated) switch the protection off silently."""
        if not self.path.exists() and not self.path.is_symlink():
            return {}
        try:
            state = json.loads(read_bounded(self.path, MAX_STATE_BYTES))
        except (BundleError, UnicodeDecodeError, ValueError) as err:
            raise self._unreadable(str(err)) from err
        keys = state.get("keys") if isinstance(state, dict) and state.get("format") == STATE_FORMAT else None
        if not isinstance(keys, dict) or not all(isinstance(r, dict) and type(r.get("version")) is int
                                                 for r in keys.values()):
            raise self._unreadable("not an edge-lstm bundle-version file")
        return keys

    def last_version(self, key_id: str) -> int | None:
        record = self.read().get(key_id)
        return None if record is None else record["version"]

    def remember(self, key_id: str, version: int, bundle: str) -> None:
        """Record the bundle now running (its version becomes the floor, also after an allowed
        downgrade: the operator chose it). A damaged file is replaced, as the operator allowed."""
        try:
            keys = self.read()
        except VersionStateError:
            keys = {}  # only reached with --allow-downgrade: the check read the file first
        keys[key_id] = {"version": version, "bundle": bundle,
                        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"format": STATE_FORMAT, "keys": dict(sorted(keys.items()))})
        except OSError as err:
            raise VersionStateError(f"cannot write {self.path}: {err.strerror or err}") from err

    def _unreadable(self, why: str) -> VersionStateError:
        return VersionStateError(f"cannot read {self.path} (the bundle versions this device ran): {why}; "
                                 f"remove it, or pass {ALLOW_HINT} once (the bundle run then rewrites it)")


@dataclass(frozen=True)
class RollbackGuard:
    """What ``predict`` and ``serve`` check before loading a signed bundle, and record after."""

    state: VersionState
    allow_downgrade: bool = False

    @classmethod
    def default(cls, allow_downgrade: bool = False) -> RollbackGuard:
        return cls(VersionState(state_path()), allow_downgrade)

    def check(self, manifest: dict, key_id: str, bundle_dir: Path) -> None:
        """``DowngradeError`` if the bundle is older than the last one run under this key."""
        version = bundle_version(manifest)
        if self.allow_downgrade:
            return
        last = self.state.last_version(key_id)
        if last is not None and version < last:
            raise DowngradeError(
                f"{bundle_dir} has bundle_version {describe(version)}, older than {describe(last)}, the last "
                f"bundle signed by key {key_id} that this device ran: refused (a rollback; pass {ALLOW_HINT} "
                "to run it anyway)")

    def remember(self, manifest: dict, key_id: str, bundle_dir: Path) -> None:
        """Record the bundle just loaded and accepted (only then: a bundle that fails to load must
        not raise the floor above the one still running)."""
        self.state.remember(key_id, bundle_version(manifest), str(Path(bundle_dir).resolve()))
