"""``serve`` run for months: bounded connections, SIGHUP reload, ``GET /metrics``."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE
from edge_lstm_device.serving.connections import (
    DEFAULT_MAX_CONNECTIONS,
    OPEN_FILES_BESIDES,
    ConnectionSlots,
    fit_open_files,
)
from test_serve import HOST, JSON, ROOT, Served, call, predict, start, stop

prometheus_parser = pytest.importorskip("prometheus_client.parser")
HEAD = b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\n"  # a request head that never ends


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def _half_open(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=10)
        sock.sendall(HEAD)
        socks.append(sock)
    return socks


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _metrics(port: int, headers: dict[str, str] | None = None) -> dict[str, object]:
    status, answer_headers, body = call(port, "GET", "/metrics", headers=headers)
    assert status == 200, body
    assert answer_headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in prometheus_parser.text_string_to_metric_families(body.decode())}


def _value(families: dict, family: str, sample: str, **labels: str) -> float:
    values = [s.value for s in families[family].samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(values) == 1, (family, sample, labels, families[family].samples)
    return values[0]


# --- connections ----------------------------------------------------------------------------------


def test_slots_evict_the_longest_waiting_and_refuse_when_all_are_busy() -> None:
    slots = ConnectionSlots(limit=2, head_timeout_s=60, idle_timeout_s=60)
    pairs = [socket.socketpair() for _ in range(4)]
    a, b, c, d = (p[0] for p in pairs)
    try:
        assert slots.admit(a) and slots.admit(b)
        assert slots.admit(c) and slots.open == 2 and slots.closed["evicted"] == 1
        assert pairs[0][1].recv(1) == b""  # a (waited longest) was shut down
        slots.mark(b, "busy")
        slots.mark(c, "busy")
        assert not slots.admit(d) and slots.closed["refused"] == 1
        slots.release(b)
        assert slots.admit(d)
    finally:
        for left, right in pairs:
            left.close()
            right.close()


def test_slots_reap_connections_past_their_deadline() -> None:
    slots = ConnectionSlots(limit=4, head_timeout_s=0.05, idle_timeout_s=60)
    (a, peer_a), (b, peer_b) = socket.socketpair(), socket.socketpair()
    try:
        assert slots.admit(a) and slots.admit(b)
        slots.mark(b, "busy")
        time.sleep(0.1)
        assert slots.reap() == 1 and slots.open == 1 and slots.closed["timeout"] == 1
        assert peer_a.recv(1) == b""
    finally:
        for sock in (a, peer_a, b, peer_b):
            sock.close()


def test_slots_evict_in_the_order_connections_began_to_wait() -> None:
    """A connection that answered a request waits anew: it is evicted after those waiting since before."""
    slots = ConnectionSlots(limit=3, head_timeout_s=60, idle_timeout_s=60)
    pairs = [socket.socketpair() for _ in range(5)]
    a, b, c, d, e = (p[0] for p in pairs)
    try:
        assert slots.admit(a) and slots.admit(b) and slots.admit(c)
        slots.mark(a, "busy")
        slots.mark(a, "waiting")  # a answered: now the newest waiting
        assert slots.admit(d) and pairs[1][1].recv(1) == b""  # b went first
        assert slots.admit(e) and pairs[2][1].recv(1) == b""  # then c
        assert slots.open == 3 and slots.closed["evicted"] == 2
        slots.release(a)
        slots.release(d)
        slots.release(e)
        assert slots.open == 0 and slots.admit(b)
    finally:
        for left, right in pairs:
            left.close()
            right.close()


def test_open_files_limit_is_raised_to_fit_the_connections() -> None:
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 300
    if hard != resource.RLIM_INFINITY and hard < wanted + OPEN_FILES_BESIDES:
        pytest.skip(f"the hard open-files limit ({hard}) is too low to test raising the soft one")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, hard))
        assert fit_open_files(wanted) is None
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (wanted + OPEN_FILES_BESIDES, hard)
        assert fit_open_files(10) is None  # enough already: left as it is
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == wanted + OPEN_FILES_BESIDES
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.process
def test_serve_refuses_more_connections_than_the_process_may_open_files() -> None:
    """A hard open-files limit below --max-connections: a one-line usage error, exit 2, before loading."""
    resource = pytest.importorskip("resource")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    done = subprocess.run([sys.executable, "-m", "edge_lstm_device", "serve", "--port", "0", "--max-connections", "1000"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, preexec_fn=limited)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"needs {1000 + OPEN_FILES_BESIDES} open files" in lines[0] and "at most 256" in lines[0], lines[0]
    assert done.stdout == ""


@pytest.mark.process
def test_half_open_connections_do_not_lock_out_clients(tmp_path: Path) -> None:
    """More half-open connections than slots: the server keeps at most --max-connections, answers
    health at once, and closes a connection whose head does not arrive in time."""
    served = start(tmp_path, "--workers", "1", "--quiet", "--max-connections", "8")
    socks: list[socket.socket] = []
    try:
        socks = _half_open(served.port, 40)
        started = time.monotonic()
        assert call(served.port, "GET", "/v1/health")[0] == 200
        assert time.monotonic() - started < 2
        threads = _value(_metrics(served.port), "process_threads", "process_threads")
        assert threads <= 6, threads  # main, the event loop, scoring: none per connection
        assert sum(map(_closed_by_server, socks)) >= 40 - 8  # evicted to make room
        _wait_for(lambda: all(map(_closed_by_server, socks)), 15, "half-open connections closed (5 s head timeout)")
        families = _metrics(served.port)
        closed = {r: _value(families, "edge_lstm_connections_closed", "edge_lstm_connections_closed_total", reason=r)
                  for r in ("evicted", "timeout")}
        assert closed["evicted"] >= 32 and closed["timeout"] >= 1, closed
    finally:
        for sock in socks:
            sock.close()
        stop(served.proc)


# --- reload ---------------------------------------------------------------------------------------


def _bundle_copy(dest: Path, drop: str | None = None) -> Path:
    """The reference bundle copied to ``dest``; without the artifact ``drop`` (another default model)."""
    shutil.copytree(REFERENCE_BUNDLE, dest)
    if drop:
        manifest = json.loads((dest / "manifest.json").read_text())
        manifest["artifacts"].pop(drop)
        manifest["device_order"] = [n for n in manifest.get("device_order", []) if n != drop]
        (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest


def _replace(bundle: Path, new: Path) -> None:
    """The atomic swap docs/serve.md shows: the new bundle beside the old, then renames."""
    old = bundle.with_name(bundle.name + ".old")
    bundle.rename(old)
    new.rename(bundle)
    shutil.rmtree(old)


def _info(port: int) -> dict:
    return json.loads(call(port, "GET", "/v1/info")[2])


@pytest.fixture()
def reloadable(tmp_path: Path) -> tuple[Served, Path]:
    bundle = _bundle_copy(tmp_path / "bundle")
    served = start(tmp_path, "--workers", "2", "--quiet", "--bundle", str(bundle))
    yield served, bundle
    stop(served.proc)


def test_sighup_loads_the_new_bundle_without_failing_a_request(reloadable: tuple[Served, Path]) -> None:
    served, bundle = reloadable
    first = _info(served.port)
    failures: list[object] = []
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            status, answer = predict(served.port, ["A fine film", "Dull and far too long"])
            if status != 200 or len(answer["predictions"]) != 2:
                failures.append((status, answer))

    clients = [threading.Thread(target=hammer) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        new = _bundle_copy(bundle.with_name("incoming"), drop=first["model"])
        _replace(bundle, new)
        served.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: _info(served.port)["model"] != first["model"], 10, "the new model")
        served.proc.send_signal(signal.SIGHUP)  # the same bundle again, still under load
        _wait_for(lambda: served.log().count("reloaded in") >= 2, 10, "the second reload")
    finally:
        done.set()
        for client in clients:
            client.join(30)
    assert not failures, failures[:3]
    second = _info(served.port)
    assert second["sha256"]["model"] != first["sha256"]["model"] and second["loaded_at"] >= first["loaded_at"]
    assert predict(served.port, ["great"])[1]["model"] == second["model"]
    assert _value(_metrics(served.port), "edge_lstm_reloads", "edge_lstm_reloads_total") == 2
    assert served.proc.poll() is None and "Traceback" not in served.log()


def test_a_bundle_that_fails_to_load_keeps_the_old_model(reloadable: tuple[Served, Path]) -> None:
    served, bundle = reloadable
    before = _info(served.port)
    model_file = bundle / json.loads((bundle / "manifest.json").read_text())["artifacts"][before["model"]]["file"]
    model_file.write_bytes(model_file.read_bytes()[:-1] + b"\0")  # no longer the file the manifest pins
    served.proc.send_signal(signal.SIGHUP)
    _wait_for(lambda: "reload failed" in served.log(), 10, "the failed reload logged")
    assert _info(served.port)["sha256"] == before["sha256"]
    assert predict(served.port, ["great"])[0] == 200
    families = _metrics(served.port)
    assert _value(families, "edge_lstm_reload_failures", "edge_lstm_reload_failures_total") == 1
    assert _value(families, "edge_lstm_reloads", "edge_lstm_reloads_total") == 0
    failed = [line for line in served.log().splitlines() if "reload failed" in line]
    assert len(failed) == 1 and before["model"] in failed[0] and "Traceback" not in served.log()


# --- metrics --------------------------------------------------------------------------------------


@pytest.mark.process
def test_metrics_parse_and_count_what_happened(tmp_path: Path) -> None:
    served = start(tmp_path, "--workers", "1", "--quiet")
    try:
        for _ in range(3):
            assert predict(served.port, ["great", "awful", "fine"])[0] == 200
        assert call(served.port, "GET", "/nowhere")[0] == 404
        families = _metrics(served.port)
        assert _value(families, "edge_lstm_http_requests", "edge_lstm_http_requests_total",
                      path="/v1/predict", status="200") == 3
        assert _value(families, "edge_lstm_http_requests", "edge_lstm_http_requests_total", path="other", status="404") == 1
        assert _value(families, "edge_lstm_reviews_scored", "edge_lstm_reviews_scored_total") == 9
        assert _value(families, "edge_lstm_batch_size", "edge_lstm_batch_size_sum") == 9
        assert _value(families, "edge_lstm_http_request_duration_seconds", "edge_lstm_http_request_duration_seconds_count",
                      path="/v1/predict") == 3
        assert _value(families, "edge_lstm_http_request_duration_seconds", "edge_lstm_http_request_duration_seconds_bucket",
                      path="/v1/predict", le="+Inf") == 3
        info = _info(served.port)
        assert _value(families, "edge_lstm_model_info", "edge_lstm_model_info", model=info["model"],
                      sha256=info["sha256"]["model"]) == 1
        assert 10e6 < _value(families, "process_resident_memory_bytes", "process_resident_memory_bytes") < 2e9
        assert _value(families, "edge_lstm_http_requests_in_flight", "edge_lstm_http_requests_in_flight") >= 1  # this scrape
        assert families["edge_lstm_connections_max"].samples[0].value == DEFAULT_MAX_CONNECTIONS
    finally:
        stop(served.proc)


@pytest.mark.process
def test_metrics_need_the_token_and_the_page_does_not(tmp_path: Path) -> None:
    token = "t0ken-for-metrics"
    (tmp_path / "token").write_text(token)
    served = start(tmp_path, "--workers", "1", "--quiet", "--token-file", str(tmp_path / "token"))
    try:
        assert call(served.port, "GET", "/metrics")[0] == 401
        assert "edge_lstm_http_requests" in _metrics(served.port, {"Authorization": f"Bearer {token}"})
        status, headers, body = call(served.port, "GET", "/")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8" and b"<html" in body.lower()
        assert predict(served.port, ["great"])[0] == 401
        assert predict(served.port, ["great"], {**JSON, "Authorization": f"Bearer {token}"})[0] == 200
    finally:
        stop(served.proc)


@pytest.mark.process
def test_a_reload_keeps_the_old_model_when_the_new_signature_is_wrong(tmp_path: Path) -> None:
    """With --trust, SIGHUP on a bundle signed by another key (or unsigned) keeps the model served;
    a bundle signed by the trusted key is switched to."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from test_signing import sign, write_public_key

    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    bundle = _bundle_copy(tmp_path / "bundle")
    sign(bundle, key)
    served = start(tmp_path, "--workers", "1", "--quiet", "--bundle", str(bundle),
                   "--trust", str(write_public_key(key, tmp_path / "trusted.pub")))
    try:
        before = _info(served.port)
        for signer in (stranger, None):
            new = _bundle_copy(tmp_path / f"incoming-{id(signer)}", drop=before["model"])
            if signer:
                sign(new, signer)
            _replace(bundle, new)
            served.proc.send_signal(signal.SIGHUP)
            _wait_for(lambda: served.log().count("reload failed") == (1 if signer else 2), 10, "the failed reload")
            assert _info(served.port)["sha256"] == before["sha256"]
            assert predict(served.port, ["great"])[0] == 200
        sign(bundle, key)
        served.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: _info(served.port)["model"] != before["model"], 10, "the trusted bundle")
        assert served.log().count("reloaded in") == 1 and "not a valid signature" in served.log()
    finally:
        stop(served.proc)
