"""``serving/api.py`` without a socket: a parsed request in, an answer or a refusal out (the wire
itself: ``test_serve.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from edge_lstm_device.runtime.reviews import EMPTY, ReviewError
from edge_lstm_device.serving import api, http1


def _request(head: str) -> http1.Request:
    request = http1.next_request(bytearray(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n"))
    assert request is not None
    return request


@dataclass
class FakeServer:
    """What :func:`api.route` reads of a server (``api.ServerView``)."""

    options: api.ServerOptions = field(default_factory=api.ServerOptions)
    expected_token: bytes | None = None
    services: object = field(default_factory=lambda: SimpleNamespace(current=SimpleNamespace(
        name="int8_loop_tflite", pool=SimpleNamespace(workers=2), info={"model": "int8_loop_tflite"}, loaded_at=0.0,
        batcher=SimpleNamespace(counts=lambda: {"1": 3}))))
    metrics: object = field(default_factory=lambda: SimpleNamespace(render=lambda: "edge_lstm_requests_total 1\n"))
    in_flight: int = 0


def test_each_route_answers_without_io() -> None:
    server = FakeServer()
    assert api.route(server, _request("GET /v1/health HTTP/1.1\nHost: pi\n")) == {
        "status": "ok", "model": "int8_loop_tflite", "workers": 2, "in_flight": 0}
    info = api.route(server, _request("GET /v1/info?x=1 HTTP/1.1\nHost: pi\n"))
    assert info["loaded_at"] == "1970-01-01T00:00:00Z" and info["batches"] == {"1": 3}
    assert api.route(server, _request("POST /v1/predict HTTP/1.1\nHost: pi\nContent-Length: 2\n")) is None  # body next
    assert api.route(server, _request("HEAD /metrics HTTP/1.1\nHost: pi\n")).body.startswith(b"edge_lstm_requests_total")


@pytest.mark.parametrize("head, refusal, status", [
    ("GET /v2/predict HTTP/1.1\nHost: pi\n", api.NotFound, 404),
    ("GET /v1/predict HTTP/1.1\nHost: pi\n", api.MethodNotAllowed, 405),
    ("POST /v1/health HTTP/1.1\nHost: pi\n", api.MethodNotAllowed, 405),
])
def test_wrong_paths_and_methods_are_refused_with_their_status(head: str, refusal: type, status: int) -> None:
    with pytest.raises(refusal) as caught:
        api.route(FakeServer(), _request(head))
    assert caught.value.status == status
    if refusal is api.MethodNotAllowed:
        assert caught.value.headers["Allow"] in ("GET", "POST")
    else:
        assert "POST /v1/predict" in str(caught.value)  # the refusal names the API


def test_the_token_is_asked_for_everywhere_but_the_page() -> None:
    server = FakeServer(expected_token=b"s3cret")
    with pytest.raises(api.Unauthorized) as caught:
        api.route(server, _request("GET /v1/health HTTP/1.1\nHost: pi\n"))
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    with pytest.raises(api.Unauthorized):
        api.route(server, _request("GET /v1/health HTTP/1.1\nHost: pi\nAuthorization: Bearer wrong\n"))
    health = api.route(server, _request("GET /v1/health HTTP/1.1\nHost: pi\nAuthorization: bearer s3cret\n"))
    assert health["status"] == "ok"  # the scheme is case-insensitive
    assert api.route(server, _request("GET / HTTP/1.1\nHost: pi\n")).content_type.startswith("text/html")


def test_a_foreign_host_is_misdirected_when_the_names_are_known() -> None:
    server = FakeServer(options=api.ServerOptions(allowed_hosts=frozenset({"pi.local"})))
    with pytest.raises(api.Misdirected):
        api.route(server, _request("GET /v1/health HTTP/1.1\nHost: evil.example\n"))
    for host in ("pi.local:8080", "192.168.1.20:8080"):
        assert api.route(server, _request(f"GET /v1/health HTTP/1.1\nHost: {host}\n"))["status"] == "ok"


class FakeModel:
    def encode_each(self, texts: list[str]) -> list[list[int] | ReviewError]:
        return [[len(t)] if t.strip() else ReviewError(EMPTY, "no words") for t in texts]


@pytest.mark.parametrize("body, refusal, says", [
    (b"\xff", api.RequestError, "not UTF-8 (byte 0)"),
    (b"{", api.RequestError, "not JSON"),
    (b'["a"]', api.Unprocessable, 'expected a JSON object {"texts"'),
    (b'{"texts": []}', api.Unprocessable, "non-empty list"),
    (b'{"texts": ["a", 7]}', api.Unprocessable, "texts[1] is a int, not a string"),
    (b'{"texts": ["a", "  "]}', api.Unprocessable, "texts[1] is empty (no words)"),
    (b'{"texts": ["a", "b", "c"]}', api.Unprocessable, "3 texts: at most 2 per request"),
    (b'{"texts": ["abcdef"]}', api.Unprocessable, "texts[0] has 6 characters: at most 5"),
])
def test_a_prediction_body_is_parsed_or_refused_saying_why(body: bytes, refusal: type, says: str) -> None:
    with pytest.raises(refusal, match=re.escape(says)):
        api.parse_predict(body, api.Limits(max_texts=2, max_chars=5), FakeModel())


def test_a_good_body_gives_each_reviews_ids() -> None:
    assert api.parse_predict(b'{"texts": ["ab", "c"]}', api.Limits(), FakeModel()) == [[2], [1]]


@pytest.mark.parametrize("headers, refusal", [
    ("Transfer-Encoding: chunked\n", api.LengthRequired),
    ("Content-Type: text/plain\nContent-Length: 2\n", api.UnsupportedMediaType),
    ("Content-Type: application/json\n", api.LengthRequired),
    ("Content-Type: application/json\nContent-Length: 2000000\n", api.TooLarge),
])
def test_a_body_that_is_not_one_to_read_is_refused_from_its_headers(headers: str, refusal: type) -> None:
    with pytest.raises(refusal):
        api.body_size(_request(f"POST /v1/predict HTTP/1.1\nHost: pi\n{headers}"), api.Limits())


def test_the_size_of_a_body_to_read() -> None:
    request = _request("POST /v1/predict HTTP/1.1\nHost: pi\nContent-Type: application/json; charset=utf-8\n"
                       "Content-Length: 17\n")
    assert api.body_size(request, api.Limits()) == 17
