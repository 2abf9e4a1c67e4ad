"""The smaller findings of issue 26: ``Host`` checked against DNS rebinding on a server without a
token, the bearer scheme matched case-insensitively, ``EDGE_LSTM_TRUST`` set but empty refused, and a
reload that serves another model than the bundle's first choice logged and counted."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from edge_lstm_device.runtime.model import ModelChoice, SentimentModel
from edge_lstm_device.runtime.pool import ModelPool
from edge_lstm_device.serving import hosts
from edge_lstm_device.serving.app import Server, ServerOptions, reload
from edge_lstm_device.serving.batcher import Batcher
from edge_lstm_device.serving.service import Service, Services
from test_serve import CALL_TIMEOUT_S, HOST, ROOT, Served, guarded, raw, start, stop  # noqa: F401 -- (guarded: a fixture)


@pytest.mark.parametrize("host, answered", [
    ("localhost:8080", True), ("LOCALHOST", True), ("localhost.", True), ("127.0.0.1:8080", True),
    ("[::1]:8080", True), ("192.168.1.20", True), ("", True),  # an IP address cannot come from rebinding
    ("evil.example:8080", False), ("localhost.evil.example", False), ("127.0.0.1.nip.io", False),
])
def test_only_known_names_and_addresses_are_answered(host: str, answered: bool) -> None:
    assert hosts.host_allowed(host, hosts.parse_allowed(None, "127.0.0.1")) is answered


def test_allowed_hosts_adds_names_and_star_allows_any() -> None:
    allowed = hosts.parse_allowed("Pi-01.lan, other.example.", "0.0.0.0")
    assert allowed is not None and {"pi-01.lan", "other.example", "localhost"} <= allowed
    assert hosts.host_allowed("pi-01.lan:8080", allowed) and not hosts.host_allowed("evil.example", allowed)
    assert "edge.example" in hosts.parse_allowed(None, "edge.example")  # the name it was bound by
    assert hosts.parse_allowed("*", "127.0.0.1") is None and hosts.host_allowed("evil.example", None)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start(tmp_path_factory.mktemp("open"), "--workers", "1", "--quiet", "--allowed-hosts", "pi-01.lan")
    try:
        yield served
    finally:
        stop(served.proc)


def _health(port: int, host: str, extra: str = "") -> tuple[int, dict]:
    status, _, body = raw(port, f"GET /v1/health HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
    return status, json.loads(body)


def test_a_server_without_a_token_answers_a_foreign_host_421(open_server: Served) -> None:
    status, answer = _health(open_server.port, "attacker.example:8080")
    assert status == 421 and answer["status"] == 421 and "Host" in answer["error"]
    assert [_health(open_server.port, host)[0] for host in ("localhost:8080", "127.0.0.1", "pi-01.lan:8080")] == [200] * 3


def test_a_server_with_a_token_answers_any_host_that_has_it(guarded: tuple[Served, str]) -> None:
    served, token = guarded
    assert _health(served.port, "attacker.example", f"Authorization: Bearer {token}\r\n")[0] == 200


@pytest.mark.parametrize("scheme, status", [("Bearer", 200), ("bearer", 200), ("BEARER", 200), ("Basic", 401),
                                            ("Bearerx", 401)])
def test_the_bearer_scheme_is_case_insensitive(guarded: tuple[Served, str], scheme: str, status: int) -> None:
    served, token = guarded
    assert _health(served.port, "localhost", f"Authorization: {scheme}  {token}\r\n")[0] == status


@pytest.mark.process
@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_trust_variable_is_an_error_not_verification_off(value: str) -> None:
    done = subprocess.run([sys.executable, "-m", "edge_lstm_device", "info"], cwd=ROOT, capture_output=True, text=True,
                          timeout=CALL_TIMEOUT_S, env={**os.environ, "EDGE_LSTM_TRUST": value})
    assert done.returncode == 2 and "EDGE_LSTM_TRUST is set but empty" in done.stderr and done.stdout == ""


def _service(model: SentimentModel) -> Service:
    batcher = Batcher(ModelPool([model]))
    return Service(batcher.pool, batcher, {"model": model.name, "sha256": {"model": "0" * 64}})


@pytest.mark.process
def test_a_reload_serving_a_fallback_model_is_logged_and_counted(monkeypatch, capsys) -> None:
    server = Server((HOST, 0), Services(_service(SentimentModel.load())), ServerOptions(quiet=True))
    fallback = SentimentModel.load()
    fallback.choice = ModelChoice(fallback.name, "the fastest model this interpreter can load",
                                  {"faster_tflite": "cannot load: not in this interpreter"})
    monkeypatch.setattr("edge_lstm_device.serving.app.load_service", lambda args, limits: _service(fallback))
    try:
        assert reload(server, argparse.Namespace(bundle=None))
        logged = capsys.readouterr().err
        assert "not the bundle's first choice" in logged and "faster_tflite: cannot load" in logged
        assert "edge_lstm_reload_fallbacks_total 1" in server.metrics.render()
    finally:
        server.services.close()
        server.server_close()
