"""Slow bodies cannot starve the service (issue 26): a connection reading its body gives its slot
to a new connection like one waiting for a head (the one in its state longest goes first), and the
bodies held at once share one memory budget (``--max-body-memory``). Servers run in process, on
127.0.0.1, with small limits; nothing here waits on a clock."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from edge_lstm_device.runtime.model import SentimentModel
from edge_lstm_device.runtime.pool import ModelPool
from edge_lstm_device.serving.app import Limits, Server, ServerOptions
from edge_lstm_device.serving.batcher import Batcher
from edge_lstm_device.serving.connections import BUSY, READING, WAITING, BodyBudget, ConnectionSlots
from edge_lstm_device.serving.service import Service, Services
from test_serve import CALL_TIMEOUT_S, HOST, call
from test_serve_wire import _answers

SLOW_HEAD = b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
BODY = b'{"texts": ["a great film"]}'


@contextmanager
def serving(model: SentimentModel | None = None, **options: object) -> Iterator[Server]:
    batcher = Batcher(ModelPool([model or SentimentModel.load()]), window_s=0)
    server = Server((HOST, 0), Services(Service(batcher.pool, batcher, {"model": "m"})), ServerOptions(quiet=True, **options))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        batcher.close()


def _continued(sock: socket.socket) -> bool:
    """Whether the server answered ``Expect: 100-continue`` with the interim answer (it reserved
    the body's memory) rather than a final one."""
    return sock.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"


def _slow_upload(port: int, length: int = 1000) -> socket.socket:
    """A connection that sent a whole prediction head announcing ``length`` bytes, then nothing."""
    sock = socket.create_connection((HOST, port), timeout=CALL_TIMEOUT_S)
    sock.sendall(SLOW_HEAD.replace(b"1000", str(length).encode()) + b"Expect: 100-continue\r\n\r\n")
    return sock


# --- slots ------------------------------------------------------------------------------------------


def test_a_reading_connection_gives_its_slot_oldest_first_and_busy_ones_never() -> None:
    slots = ConnectionSlots(limit=3, head_timeout_s=60, idle_timeout_s=60)
    pairs = [socket.socketpair() for _ in range(6)]
    a, b, c, d, e, f = (pair[0] for pair in pairs)
    try:
        assert slots.admit(a) and slots.admit(b) and slots.admit(c)
        slots.mark(a, READING)
        slots.mark(b, READING)
        slots.mark(c, BUSY)
        assert slots.admit(d) and pairs[0][1].recv(1) == b""  # a, reading longest, went first
        slots.mark(d, READING)
        assert slots.admit(e) and pairs[1][1].recv(1) == b""  # then b
        slots.mark(d, BUSY)
        slots.mark(e, BUSY)
        assert not slots.admit(f) and slots.closed == {"evicted": 2, "refused": 1}  # all busy: 503
        slots.mark(e, WAITING)
        assert slots.admit(f) and pairs[4][1].recv(1) == b""  # e, waiting again, may go
    finally:
        for pair in pairs:
            for sock in pair:
                sock.close()


def test_memory_wanted_evicts_the_longest_upload_past_its_grace_never_the_asker() -> None:
    slots = ConnectionSlots(limit=4, head_timeout_s=60, idle_timeout_s=60)
    pairs = [socket.socketpair() for _ in range(2)]
    a, b = (pair[0] for pair in pairs)
    try:
        assert slots.admit(a) and slots.admit(b)
        slots.mark(a, READING)
        slots.mark(b, READING)
        assert not slots.evict_reading(3600, keep=b)  # a has not read that long
        assert slots.evict_reading(0, keep=b) and pairs[0][1].recv(1) == b""
        assert not slots.evict_reading(0, keep=b)  # b alone is left: it is the one asking
        assert slots.open == 1 and slots.closed["evicted"] == 1
    finally:
        for pair in pairs:
            for sock in pair:
                sock.close()


def test_the_body_budget_holds_at_most_its_limit() -> None:
    budget = BodyBudget(2500)
    assert budget.reserve(1000) and budget.reserve(1000) and not budget.reserve(1000)
    budget.release(1000)
    assert budget.reserve(1500) and budget.reserved == 2500


# --- a server ---------------------------------------------------------------------------------------


@pytest.mark.process
def test_bodies_that_never_come_do_not_lock_out_health() -> None:
    """More connections than slots, each with a whole head announcing a body it never sends: the
    newest stay, the oldest are answered 408 and closed, and health is answered 200."""
    slots, uploads = 16, 40
    with serving(max_connections=slots) as server:
        socks = []
        try:
            for _ in range(uploads):
                socks.append(_slow_upload(server.server_port))
                assert _continued(socks[-1])  # its head was read: it entered the reading state after the others
            status, _, body = call(server.server_port, "GET", "/v1/health")
            assert status == 200 and json.loads(body)["status"] == "ok"
            evicted = [_answers(sock, 1) for sock in socks[: uploads - slots]]  # each, the oldest when one came
            assert [[status for status, _, _ in answers] for answers in evicted] == [[408]] * (uploads - slots)
            assert server.slots.closed["evicted"] >= uploads - slots and server.slots.closed["refused"] == 0
        finally:
            for sock in socks:
                sock.close()


@pytest.mark.process
def test_a_trickled_body_does_not_extend_its_deadline() -> None:
    """A body sent a byte at a time is still answered 408 once its time is up (idle timeout 0.3 s)."""
    with serving(idle_timeout_s=0.3) as server:
        with _slow_upload(server.server_port) as sock:
            assert _continued(sock)
            for byte in b'{"texts": ["' + b"a" * 980:  # ~10 s of bytes at most: the answer comes first
                sock.send(bytes([byte]))
                if select.select([sock], [], [], 0.01)[0]:
                    break
            answers = _answers(sock, 1)
        assert [status for status, _, _ in answers] == [408] and "within 0.3 s" in answers[0][2].decode()


@pytest.mark.process
def test_bodies_past_the_memory_budget_get_503_and_small_ones_still_pass() -> None:
    limits = Limits(max_body_bytes=1000)
    with serving(limits=limits, body_memory=2500, body_grace_s=3600) as server:
        held = [_slow_upload(server.server_port) for _ in range(2)]
        try:
            assert all(map(_continued, held)) and server.bodies.reserved == 2000
            with _slow_upload(server.server_port) as third:
                [(status, headers, body)] = _answers(third, 1)
            assert status == 503 and headers["Retry-After"] == "1" and headers["Connection"] == "close"
            assert "bodies in memory" in json.loads(body)["error"] and server.bodies.refused == 1
            status, _, body = call(server.server_port, "POST", "/v1/predict", BODY, {"Content-Type": "application/json"})
            assert status == 200 and json.loads(body)["predictions"]
        finally:
            for sock in held:
                sock.close()


@pytest.mark.process
def test_a_body_past_its_grace_gives_its_memory_to_a_new_one() -> None:
    limits = Limits(max_body_bytes=1000)
    with serving(limits=limits, body_memory=1000, body_grace_s=0) as server:
        with _slow_upload(server.server_port) as first:
            assert _continued(first)
            with _slow_upload(server.server_port, len(BODY)) as second:
                assert _continued(second)  # the first was dropped for it
                second.sendall(BODY)
                [(status, _, _)] = _answers(second, 1)
            assert status == 200
            assert [answer[0] for answer in _answers(first, 1)] == [408]
        assert server.bodies.reserved == 0


@pytest.mark.process
def test_only_when_every_slot_is_busy_a_new_connection_gets_a_quick_503() -> None:
    """Two slots, both being answered (their scoring held back): a third connection is refused with
    503 and Retry-After, and answered normally once one slot is free."""
    model, go = SentimentModel.load(), threading.Event()
    scored = model.predict_ids

    def held(ids: list) -> list:
        go.wait(CALL_TIMEOUT_S)
        return scored(ids)

    model.predict_ids = held  # type: ignore[method-assign]
    with serving(model, max_connections=2) as server:
        request = SLOW_HEAD.replace(b"1000", str(len(BODY)).encode()) + b"\r\n" + BODY
        busy = [socket.create_connection((HOST, server.server_port), timeout=CALL_TIMEOUT_S) for _ in range(2)]
        try:
            for sock in busy:
                sock.sendall(request)
            deadline = time.monotonic() + CALL_TIMEOUT_S
            while server.in_flight < 2 and time.monotonic() < deadline:  # both read: both slots busy
                time.sleep(0.01)
            with socket.create_connection((HOST, server.server_port), timeout=CALL_TIMEOUT_S) as third:
                [(status, headers, body)] = _answers(third, 1)
            assert status == 503 and headers["Retry-After"] == "1" and "too many connections" in json.loads(body)["error"]
            go.set()
            assert [[status for status, _, _ in _answers(sock, 1)] for sock in busy] == [[200], [200]]
        finally:
            go.set()
            for sock in busy:
                sock.close()
