"""No head gets a 500 (issue 26: a 4,301-digit ``Content-Length`` did): the hostile corpus and
random heads of ``test_http1_h11.py`` sent to a server, each on its own connection, and every answer
read. A refusal is a 4xx or 5xx other than 500, and the server answers health afterwards."""

from __future__ import annotations

import os
import random
import socket

import pytest
from test_http1_h11 import CORPUS, build_head, random_pick
from test_serve import CALL_TIMEOUT_S, HOST, call
from test_connections import serving

pytestmark = pytest.mark.process

SERVED_HEADS = int(os.environ.get("EDGE_LSTM_SERVED_HEADS", "300"))


def _statuses(port: int, data: bytes) -> list[int]:
    """The status of every answer to ``data`` sent on one connection (the upload then ended)."""
    with socket.create_connection((HOST, port), timeout=CALL_TIMEOUT_S) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # answered and closed before all was sent
            pass
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:  # closed with bytes unread: what was answered is in
            pass
    return [int(line.split(b" ", 2)[1]) for line in received.split(b"\n") if line.startswith(b"HTTP/1.1 ")]


def test_no_head_is_answered_500() -> None:
    rng = random.Random(2026)
    pick = random_pick(rng)
    heads = [data for data, _ in CORPUS.values()] + [build_head(pick) for _ in range(SERVED_HEADS)]
    with serving(idle_timeout_s=2.0, head_timeout_s=2.0) as server:
        answered = {}
        for data in heads:
            for status in _statuses(server.server_port, data):
                answered[status] = answered.get(status, 0) + 1
        assert 500 not in answered, answered
        assert answered.get(400, 0) > 0 and answered.get(200, 0) > 0, answered  # both kinds were sent
        assert call(server.server_port, "GET", "/v1/health")[0] == 200
