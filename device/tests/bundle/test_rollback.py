"""Rollback protection: with a trusted key, a device refuses a bundle whose ``bundle_version`` is
older than that of the last bundle it ran under that key (``--allow-downgrade`` overrides), on
start and on SIGHUP reload. Without a key nothing changes. Needs the ``signing`` extra."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

pytest.importorskip("cryptography")
pytestmark = pytest.mark.process  # loading a model probes it in a child process
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from edge_lstm_device import cli
from edge_lstm_device.bundle import rollback  # noqa: E402
from edge_lstm_device.bundle.manifest import BUNDLE_VERSION, BundleError, check_manifest  # noqa: E402
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE  # noqa: E402
from test_signing import key, sign, trusted, write_public_key  # noqa: E402, F401 (fixtures)

MODEL = ("--model", "int8_loop_tflite")  # no calibration: these tests are about which bundle runs
V1, V2 = 1_780_000_000, 1_780_000_100


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache (and so a version state) of this test's own; served processes inherit it."""
    monkeypatch.setenv("EDGE_LSTM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def versioned(dest: Path, version: int | None, key: Ed25519PrivateKey | None = None) -> Path:
    """The reference bundle copied to ``dest`` with ``bundle_version`` (``None``: without one, as
    exported before versions), signed by ``key`` if given."""
    shutil.copytree(REFERENCE_BUNDLE, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest.pop(BUNDLE_VERSION, None)
    if version is not None:
        manifest[BUNDLE_VERSION] = version
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if key is not None:
        sign(dest, key)
    return dest


def predict(capsys: pytest.CaptureFixture, bundle: Path, trusted: Path | None, *extra: str) -> tuple[int, str]:
    trust = ("--trust", str(trusted)) if trusted else ()
    code = cli.main(["predict", "--bundle", str(bundle), *trust, *MODEL, *extra, "great film"])
    return code, capsys.readouterr().err


def state(cache: Path) -> dict:
    return json.loads((cache / rollback.STATE_FILE).read_text())["keys"]


def test_the_version_is_a_whole_number_and_absent_means_zero() -> None:
    manifest = json.loads((REFERENCE_BUNDLE / "manifest.json").read_text())
    manifest.pop(BUNDLE_VERSION, None)
    assert rollback.bundle_version(check_manifest(manifest)) == 0
    for bad in (-1, 1.5, "7", True, None, 1 << 63):
        with pytest.raises(BundleError, match=BUNDLE_VERSION):
            check_manifest({**manifest, BUNDLE_VERSION: bad})


def test_the_shipped_reference_carries_a_version() -> None:
    manifest = json.loads((REFERENCE_BUNDLE / "manifest.json").read_text())
    assert rollback.bundle_version(manifest) > 1_700_000_000  # export's UTC seconds
    assert list(manifest)[:2] == ["format_version", BUNDLE_VERSION]


def test_an_older_bundle_is_refused_once_a_newer_one_ran(tmp_path: Path, key, trusted, cache, capsys) -> None:
    new, old = versioned(tmp_path / "new", V2, key), versioned(tmp_path / "old", V1, key)
    assert predict(capsys, new, trusted)[0] == 0
    key_id = next(iter(state(cache)))
    assert state(cache)[key_id]["version"] == V2 and state(cache)[key_id]["bundle"] == str(new.resolve())
    code, err = predict(capsys, old, trusted)
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert str(V1) in err and str(V2) in err and "--allow-downgrade" in err and key_id in err, err
    assert state(cache)[key_id]["version"] == V2  # a refused bundle does not lower the floor


def test_the_same_version_runs_again(tmp_path: Path, key, trusted, capsys) -> None:
    bundle = versioned(tmp_path / "b", V1, key)
    assert predict(capsys, bundle, trusted)[0] == 0
    assert predict(capsys, versioned(tmp_path / "copy", V1, key), trusted)[0] == 0


def test_allow_downgrade_runs_it_and_makes_it_the_floor(tmp_path: Path, key, trusted, cache, capsys) -> None:
    new, old = versioned(tmp_path / "new", V2, key), versioned(tmp_path / "old", V1, key)
    assert predict(capsys, new, trusted)[0] == 0
    assert predict(capsys, old, trusted, "--allow-downgrade")[0] == 0
    assert next(iter(state(cache).values()))["version"] == V1
    assert predict(capsys, old, trusted)[0] == 0  # the operator chose it: it is the last bundle run


def test_an_unversioned_signed_bundle_is_older_than_any_versioned_one(tmp_path: Path, key, trusted, capsys) -> None:
    legacy = versioned(tmp_path / "legacy", None, key)
    assert predict(capsys, legacy, trusted)[0] == 0  # nothing ran before: it runs (as version 0)
    assert predict(capsys, versioned(tmp_path / "new", V1, key), trusted)[0] == 0
    code, err = predict(capsys, legacy, trusted)
    assert code == 1 and "bundle_version 0, older than" in err, err


def test_the_floor_is_per_key(tmp_path: Path, key, trusted, capsys) -> None:
    other = Ed25519PrivateKey.generate()
    assert predict(capsys, versioned(tmp_path / "new", V2, key), trusted)[0] == 0
    other_pub = write_public_key(other, tmp_path / "other.pub")
    assert predict(capsys, versioned(tmp_path / "old", V1, other), other_pub)[0] == 0


def test_without_a_key_versions_are_not_checked_or_recorded(tmp_path: Path, cache, capsys) -> None:
    assert predict(capsys, versioned(tmp_path / "new", V2), None)[0] == 0
    assert predict(capsys, versioned(tmp_path / "legacy", None), None)[0] == 0  # an old manifest loads
    assert not (cache / rollback.STATE_FILE).exists()


@pytest.mark.parametrize("content", [b"{not json", b'{"format": 1, "keys": {"k": {"version": "x"}}}', b"\xff\xfe"])
def test_a_damaged_state_is_a_clear_error_until_allowed(tmp_path: Path, key, trusted, cache, capsys,
                                                       content: bytes) -> None:
    bundle = versioned(tmp_path / "b", V1, key)
    cache.mkdir()
    (cache / rollback.STATE_FILE).write_bytes(content)
    code, err = predict(capsys, bundle, trusted)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert rollback.STATE_FILE in err and "--allow-downgrade" in err and "remove it" in err, err
    assert predict(capsys, bundle, trusted, "--allow-downgrade")[0] == 0  # rewrites it
    assert next(iter(state(cache).values()))["version"] == V1
    assert predict(capsys, bundle, trusted)[0] == 0


def test_an_unwritable_state_refuses_to_run(tmp_path: Path, key, trusted, cache, capsys) -> None:
    cache.write_text("a file where the folder should be")
    code, err = predict(capsys, versioned(tmp_path / "b", V1, key), trusted)
    assert code == 1 and err.count("\n") == 1 and "cannot write" in err, err


def test_info_shows_the_version_and_the_floor(tmp_path: Path, key, trusted, capsys) -> None:
    bundle = versioned(tmp_path / "b", V2, key)
    assert predict(capsys, bundle, trusted)[0] == 0
    assert cli.main(["info", "--bundle", str(bundle), "--trust", str(trusted), *MODEL, "--json"]) == 0
    line = json.loads(capsys.readouterr().out)["bundle_version"]
    assert line.startswith(f"{V2} (2026-") and "last run here under key" in line and line.count(str(V2)) == 2


# --- serve ----------------------------------------------------------------------------------------


def test_serve_refuses_an_older_bundle_on_start(tmp_path: Path, key, trusted, capsys) -> None:
    assert predict(capsys, versioned(tmp_path / "new", V2, key), trusted)[0] == 0
    old = versioned(tmp_path / "old", V1, key)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:  # (serve sets its signal handlers before it loads the bundle)
        code = cli.main(["serve", "--port", "0", "--bundle", str(old), "--trust", str(trusted), *MODEL])
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "--allow-downgrade" in err and str(V1) in err, err


def test_a_reload_keeps_the_model_when_the_new_bundle_is_older(tmp_path: Path, key, trusted) -> None:
    from test_serve import predict as post
    from test_serve import start, stop
    from test_serve_ops import _info, _metrics, _replace, _value, _wait_for

    bundle = versioned(tmp_path / "bundle", V2, key)
    served = start(tmp_path, "--workers", "1", "--quiet", "--bundle", str(bundle), "--trust", str(trusted), *MODEL)
    try:
        assert _info(served.port)["bundle_version"] == V2
        _replace(bundle, versioned(tmp_path / "older", V1, key))
        served.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: "reload failed" in served.log(), 20, "the refused reload")
        line = next(line for line in served.log().splitlines() if "reload failed" in line)
        assert "older than" in line and str(V1) in line and str(V2) in line and "--allow-downgrade" in line, line
        assert _info(served.port)["bundle_version"] == V2 and post(served.port, ["great"])[0] == 200
        families = _metrics(served.port)
        assert _value(families, "edge_lstm_reload_failures", "edge_lstm_reload_failures_total") == 1
        _replace(bundle, versioned(tmp_path / "newer", V2 + 1, key))
        served.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: "reloaded in" in served.log(), 20, "the newer bundle")
        assert _info(served.port)["bundle_version"] == V2 + 1
    finally:
        stop(served.proc)
    assert next(iter(state(Path(tmp_path / "cache")).values()))["version"] == V2 + 1
