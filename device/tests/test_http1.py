"""``serve``'s HTTP/1.1 wire format: request heads parsed as ``http.server`` parses them, and the
same rules met over a real connection (pipelining, pieces, ``Expect: 100-continue``, HTTP/1.0)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http import HTTPStatus

import pytest
from edge_lstm_device import http1

from test_serve import CALL_TIMEOUT_S, HOST, Served, server  # noqa: F401 -- (server: the fixture)


def test_a_request_head_is_parsed() -> None:
    request = http1.parse_head(b"POST //v1/predict?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: Application/JSON; charset=utf-8\r\n"
                               b"X-Spaced: \t one  two \t\r\nContent-Length: 5\r\ncontent-length: 5")
    assert (request.method, request.target, request.path) == ("POST", "/v1/predict?x=1", "/v1/predict")
    assert request.keep_alive and not request.expects_continue and request.version == (1, 1)
    assert request.content_type == "application/json" and request.header("x-spaced") == "one  two"
    assert (request.content_length, request.chunked, request.has_body) == (5, False, True)


@pytest.mark.parametrize("head, keep_alive", [
    (b"GET / HTTP/1.1\r\nHost: a", True), (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close", False),
    (b"GET / HTTP/1.0", False), (b"GET / HTTP/1.0\r\nConnection: keep-alive", True), (b"GET / HTTP/1.0\r\nConnection: Keep-Alive, x", True),
])
def test_keep_alive_follows_the_version_and_the_connection_header(head: bytes, keep_alive: bool) -> None:
    assert http1.parse_head(head).keep_alive is keep_alive


@pytest.mark.parametrize("head, status", [
    (b"GARBAGE", HTTPStatus.BAD_REQUEST),
    (b"GET /", HTTPStatus.BAD_REQUEST),  # HTTP/0.9 is not spoken
    (b"GET / HTTP/x.y", HTTPStatus.BAD_REQUEST),
    (b"GET / FTP/1.1", HTTPStatus.BAD_REQUEST),
    (b"GET / HTTP/1.1\r\nno colon here", HTTPStatus.BAD_REQUEST),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2", HTTPStatus.BAD_REQUEST),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"0" * 4_299 + b"24", HTTPStatus.BAD_REQUEST),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip", HTTPStatus.NOT_IMPLEMENTED),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)), HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE),
    (b"GET / HTTP/1.1\r\nX: " + b"y" * http1.MAX_LINE, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE),
    (b"GET /" + b"a" * http1.MAX_LINE + b" HTTP/1.1", HTTPStatus.REQUEST_URI_TOO_LONG),
])
def test_bad_heads_are_refused_with_their_status(head: bytes, status: HTTPStatus) -> None:
    with pytest.raises(http1.HttpError) as refused:
        http1.parse_head(head)
    assert refused.value.status == status


@pytest.mark.parametrize("head, status", [
    (b"GET / HTTP/2.0", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
    (b"GET / HTTP/0.9", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
    (b"BREW / HTTP/1.0", HTTPStatus.NOT_IMPLEMENTED),
    (b"get / HTTP/1.0", HTTPStatus.NOT_IMPLEMENTED),  # methods are case-sensitive
])
def test_well_framed_requests_the_server_does_not_speak_are_refused(head: bytes, status: HTTPStatus) -> None:
    request = http1.parse_head(head + b"\r\nHost: a")
    with pytest.raises(http1.HttpError) as refused:
        http1.check_supported(request)
    assert refused.value.status == status


def test_the_head_ends_at_the_first_empty_line() -> None:
    buffer = bytearray(b"\r\n\nGET / HTTP/1.1\r\nHost: a\n\r\nContent-Length: 4\r\n\r\nbody")
    request = http1.next_request(buffer)
    assert request is not None and request.content_length == 0 and buffer == b"Content-Length: 4\r\n\r\nbody"
    buffer = bytearray(b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert http1.next_request(buffer) is None and buffer == b"GET / HTTP/1.1\r\nHost: a\r\n"
    with pytest.raises(http1.HttpError) as ended:
        http1.next_request(buffer, eof=True)  # the client stopped inside the head
    assert ended.value.status == HTTPStatus.BAD_REQUEST
    with pytest.raises(http1.HttpError) as too_long:
        http1.next_request(bytearray(b"x" * (http1.MAX_HEAD + 1)))
    assert too_long.value.status == HTTPStatus.REQUEST_URI_TOO_LONG


# --- over a connection ----------------------------------------------------------------------------


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
