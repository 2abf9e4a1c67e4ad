"""``serve``'s API: a parsed request in, an answer out, without I/O. The routes, the bearer token
and ``Host`` checks, the validation of a prediction's body, and every refusal as a
:class:`RequestError` with its status. :func:`route` reads the server through :class:`ServerView`.
"""

from __future__ import annotations

import functools
import hmac
import json
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Protocol

from edge_lstm_device.runtime.reviews import EMPTY, ReviewError
from edge_lstm_device.serving import hosts, http1
from edge_lstm_device.serving import prometheus as metrics
from edge_lstm_device.serving.connections import BODY_GRACE_S, DEFAULT_BODY_MEMORY, DEFAULT_MAX_CONNECTIONS
from edge_lstm_device.serving.metrics import ServeMetrics
from edge_lstm_device.serving.service import Services

ROUTES = {"/v1/predict": "POST", "/v1/health": "GET", "/v1/info": "GET", "/metrics": "GET", "/": "GET"}  # path -> method
PUBLIC = {"/"}  # answered without the bearer token (the page asks for it, for the API calls it makes)
IDLE_TIMEOUT_S = 30  # a connection silent this long (idle keep-alive, stalled upload) is closed
HEAD_TIMEOUT_S = 5.0  # a new connection must send its request line and headers within this
DEMO_PAGE = Path(__file__).resolve().parent / "demo.html"


@dataclass(frozen=True)
class Limits:
    """What one request may carry."""

    max_body_bytes: int = 1 << 20
    max_texts: int = 64
    max_chars: int = 100_000


class RequestError(Exception):
    """A request the server refuses; answered as ``{"error": message, "status": status}``."""

    status = HTTPStatus.BAD_REQUEST  # not UTF-8, not JSON, a malformed header

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}  # sent with the answer


class Unauthorized(RequestError):
    status = HTTPStatus.UNAUTHORIZED

    def __init__(self, message: str) -> None:
        super().__init__(message, {"WWW-Authenticate": 'Bearer realm="edge-lstm"'})


class NotFound(RequestError):
    status = HTTPStatus.NOT_FOUND


class MethodNotAllowed(RequestError):
    status = HTTPStatus.METHOD_NOT_ALLOWED

    def __init__(self, allow: str) -> None:
        super().__init__(f"this path answers {allow} only", {"Allow": allow})


class Misdirected(RequestError):
    status = HTTPStatus.MISDIRECTED_REQUEST  # a Host this server is not known by (DNS rebinding)


class RequestTimeout(RequestError):
    status = HTTPStatus.REQUEST_TIMEOUT


class LengthRequired(RequestError):
    status = HTTPStatus.LENGTH_REQUIRED


class TooLarge(RequestError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(RequestError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class Unprocessable(RequestError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY  # valid JSON of the wrong shape: types, empty, too many, too long


class Unavailable(RequestError):
    status = HTTPStatus.SERVICE_UNAVAILABLE  # stopping (the scoring threads are gone), or the body budget is spent


class ReviewEncoder(Protocol):
    def encode_each(self, texts: list[str]) -> list[list[int] | ReviewError]: ...


def parse_predict(body: bytes, limits: Limits, model: ReviewEncoder) -> list[list[int]]:
    """The token ids of each review of a ``/v1/predict`` body (the model's ``encode_each``), or a
    :class:`RequestError` saying what is wrong. A review without any word is refused, as
    ``predict`` refuses it."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise RequestError(f"the body is not UTF-8 (byte {err.start})") from None
    except RecursionError:
        raise RequestError("the body's JSON is nested too deeply") from None
    except ValueError as err:  # json.JSONDecodeError, or an integer too long to convert
        raise RequestError(f"the body is not JSON: {err}") from None
    if not isinstance(data, dict) or "texts" not in data:
        raise Unprocessable('expected a JSON object {"texts": ["a review", ...]}')
    texts = data["texts"]
    if not isinstance(texts, list) or not texts:
        raise Unprocessable('"texts" must be a non-empty list of strings')
    if len(texts) > limits.max_texts:
        raise Unprocessable(f"{len(texts)} texts: at most {limits.max_texts} per request")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise Unprocessable(f"texts[{i}] is a {type(text).__name__}, not a string")
        if len(text) > limits.max_chars:
            raise Unprocessable(f"texts[{i}] has {len(text)} characters: at most {limits.max_chars}")
    encoded = model.encode_each(texts)
    for i, item in enumerate(encoded):
        if isinstance(item, ReviewError):  # the first one: the whole request is refused
            raise Unprocessable(f"texts[{i}] is empty (no words)" if item.kind == EMPTY else f"texts[{i}]: {item.message}")
    return encoded


@dataclass(frozen=True)
class ServerOptions:
    """How the server treats its clients."""

    limits: Limits = Limits()
    token: str | None = None  # the bearer token every path but PUBLIC requires
    quiet: bool = False  # no access log
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    head_timeout_s: float = HEAD_TIMEOUT_S
    idle_timeout_s: float = IDLE_TIMEOUT_S  # for a body, or between keep-alive requests
    body_memory: int = DEFAULT_BODY_MEMORY  # bytes of request bodies held at once
    body_grace_s: float = BODY_GRACE_S  # a body reading longer may be dropped for another's memory
    allowed_hosts: frozenset[str] | None = None  # Host names answered besides IP addresses; None: any


@dataclass(frozen=True)
class Page:
    """An answer that is not JSON."""

    body: bytes
    content_type: str


class ServerView(Protocol):
    """What answering a request reads of the server."""

    options: ServerOptions
    expected_token: bytes | None  # the bearer token, None: none is asked for
    services: Services
    metrics: ServeMetrics

    @property
    def in_flight(self) -> int: ...


def route(server: ServerView, request: http1.Request) -> dict | Page | None:
    """The answer to ``request``; None for a prediction (its body is read next)."""
    path = request.path
    if not hosts.host_allowed(request.header("host"), server.options.allowed_hosts):
        raise Misdirected("this server does not answer for that Host (see --allowed-hosts)")
    if path not in PUBLIC:
        _authorize(server, request)
    allowed = ROUTES.get(path)
    if allowed is None:
        raise NotFound(f"no such path; the API is {', '.join(f'{m} {p}' for p, m in ROUTES.items())}")
    if request.method != allowed and (request.method, allowed) != ("HEAD", "GET"):
        raise MethodNotAllowed(allowed)
    if path == "/":
        return demo_page()
    if path == "/metrics":
        return Page(server.metrics.render().encode("utf-8"), metrics.CONTENT_TYPE)
    service = server.services.current
    if path == "/v1/health":
        return {"status": "ok", "model": service.name, "workers": service.pool.workers, "in_flight": server.in_flight}
    if path == "/v1/info":
        return {**service.info, "loaded_at": _iso(service.loaded_at), "batches": service.batcher.counts()}
    return None


def _authorize(server: ServerView, request: http1.Request) -> None:
    expected = server.expected_token
    if expected is None:
        return
    scheme, _, token = request.header("authorization").partition(" ")
    given = token.strip(" \t").encode("latin-1")  # RFC 9110 11.1: the scheme is case-insensitive
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
        raise Unauthorized("missing or wrong bearer token (Authorization: Bearer <token>)")


def body_size(request: http1.Request, limits: Limits) -> int:
    """The size of a prediction's body, from its headers; a :class:`RequestError` if it is not one
    to read."""
    if request.chunked:
        raise LengthRequired("chunked bodies are not supported: send a Content-Length")
    if "content-type" in request.headers and request.content_type != "application/json":
        raise UnsupportedMediaType("the body must be application/json")
    if "content-length" not in request.headers:
        raise LengthRequired("a Content-Length header is required")
    size = request.content_length  # (http1 refused conflicting or malformed values)
    if size > limits.max_body_bytes:
        raise TooLarge(f"the body has {size} bytes: at most {limits.max_body_bytes}")
    return size


@functools.cache
def demo_page() -> Page:
    """The page ``GET /`` answers (``demo.html`` of this package)."""
    try:
        return Page(DEMO_PAGE.read_bytes(), "text/html; charset=utf-8")
    except OSError:
        raise NotFound("this installation has no demo page") from None


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
