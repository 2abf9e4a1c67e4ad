"""``serve``'s HTTP/1.1 over a real connection: pipelining, pieces, ``Expect: 100-continue``,
HTTP/1.0, clients that read late or leave, and requests hidden in another's body."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from test_serve import CALL_TIMEOUT_S, HOST, Served, server  # noqa: F401 -- (server: the fixture)


def _answers(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` answers read from ``sock`` in order: (status, headers, body)."""
    data, answers = b"", []
    deadline = time.monotonic() + CALL_TIMEOUT_S
    while len(answers) < count:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            lines = data[:end].decode("latin-1").split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:])
            size = int(headers.get("Content-Length", 0))
            if len(data) >= end + 4 + size:
                answers.append((int(lines[0].split()[1]), headers, data[end + 4 : end + 4 + size]))
                data = data[end + 4 + size :]
                continue
        assert time.monotonic() < deadline, f"{len(answers)} of {count} answers"
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return answers


def _predict_request(text: str, extra: bytes = b"") -> bytes:
    body = json.dumps({"texts": [text]}).encode()
    return (b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%b\r\n"
            % (len(body), extra)) + body


def test_pipelined_requests_are_answered_in_order(server: Served) -> None:
    texts = ["a wonderful film", "dull and awful", "great", "the worst"]
    with socket.create_connection((HOST, server.port), timeout=CALL_TIMEOUT_S) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n" + b"".join(map(_predict_request, texts))
                     + b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answers = _answers(sock, 6)
    assert [status for status, _, _ in answers] == [200] * 5 + [404]
    assert [json.loads(body)["predictions"][0]["words"] for _, _, body in answers[1:5]] == [3, 3, 1, 2]
    assert all("Connection" not in headers for _, headers, _ in answers[:5])


@pytest.mark.parametrize("smuggled", [
    b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 34\r\n\r\n",  # issue 26's CL.CL
    b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nContent-Length : 34\r\n\r\n",
    b"GET /v1/health HTTP/1.1\r\nHost: x\n\r\nContent-Length: 34\r\n\r\n",  # ends at \n\r\n: the next line is its body
    b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 34\r\n\r\n",
])
def test_a_request_hidden_in_a_body_is_never_answered(server: Served, smuggled: bytes) -> None:
    """A proxy that frames by another rule forwards one request: the server never answers the one
    hidden in its body, and closes the connection (after answering the head, or what follows an
    empty line made of LF CR LF, which ends a head as in h11)."""
    hidden = b"GET /v1/info HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with socket.create_connection((HOST, server.port), timeout=CALL_TIMEOUT_S) as sock:
        sock.sendall(smuggled + hidden)
        answers = _answers(sock, 2)
    assert answers and answers[-1][1].get("Connection") == "close"
    assert not any(b"sha256" in body for _, _, body in answers)  # /v1/info's answer


def test_a_request_in_pieces_is_answered(server: Served) -> None:
    with socket.create_connection((HOST, server.port), timeout=CALL_TIMEOUT_S) as sock:
        for byte in _predict_request("a wonderful film"):
            sock.send(bytes([byte]))
        [(status, _, body)] = _answers(sock, 1)
    assert status == 200 and json.loads(body)["predictions"][0]["label"] in ("positive", "negative")


def test_expect_100_continue_gets_the_interim_answer(server: Served) -> None:
    request = _predict_request("a wonderful film", b"Expect: 100-continue\r\n")
    head, body = request.split(b"\r\n\r\n", 1)
    with socket.create_connection((HOST, server.port), timeout=CALL_TIMEOUT_S) as sock:
        sock.sendall(head + b"\r\n\r\n")
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        [(status, _, _)] = _answers(sock, 1)
    assert status == 200


@pytest.mark.parametrize("request_head", [b"GET /v1/health HTTP/1.0\r\n\r\n",
                                          b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"])
def test_the_server_closes_when_the_client_asks_or_speaks_http_1_0(server: Served, request_head: bytes) -> None:
    with socket.create_connection((HOST, server.port), timeout=CALL_TIMEOUT_S) as sock:
        sock.sendall(request_head)
        [(status, headers, _)] = _answers(sock, 1)
        assert status == 200 and headers["Connection"] == "close"
        assert sock.recv(1) == b""  # closed by the server


def test_a_client_that_reads_its_answers_late_gets_them_all_in_order(server: Served) -> None:
    """3,000 pipelined requests for the demo page (33 MB of answers, more than the sockets buffer)
    sent before any answer is read: the server stops reading while its answers wait, then answers
    every one, in order, once they are read."""
    count = 3_000
    probe = b"GET /?n=%d HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with socket.create_connection((HOST, server.port), timeout=CALL_TIMEOUT_S) as sock:
        sender = threading.Thread(target=lambda: sock.sendall(b"".join(probe % i for i in range(count - 1))
                                                              + b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n"), daemon=True)
        sender.start()
        time.sleep(1.0)  # the answers pile up unread
        answers = _answers(sock, count)
        sender.join(CALL_TIMEOUT_S)
    assert [status for status, _, _ in answers] == [200] * (count - 1) + [404]


def test_a_client_gone_before_its_answer_leaves_nothing_in_flight(server: Served) -> None:
    for _ in range(20):
        with socket.create_connection((HOST, server.port), timeout=CALL_TIMEOUT_S) as sock:
            sock.sendall(_predict_request("a wonderful film " * 100))
    deadline = time.monotonic() + CALL_TIMEOUT_S
    while True:
        with socket.create_connection((HOST, server.port), timeout=CALL_TIMEOUT_S) as sock:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            [(status, _, body)] = _answers(sock, 1)
        if json.loads(body)["in_flight"] == 1 or time.monotonic() > deadline:  # itself only
            break
        time.sleep(0.05)
    assert status == 200 and json.loads(body)["in_flight"] == 1
