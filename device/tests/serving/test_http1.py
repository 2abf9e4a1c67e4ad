"""``serve``'s HTTP/1.1 request heads, parsed without a server: versions, keep-alive, refusals and
where a head ends (``test_http1_h11.py`` compares the framing with h11's; ``test_serve_wire.py``
meets the same rules over a real connection)."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from edge_lstm_device.serving import http1


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
