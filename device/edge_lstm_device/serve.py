"""``edge-lstm-device serve``: the model as a small JSON-over-HTTP service, standard library only.

``POST /v1/predict`` ``{"texts": [...]}`` answers ``{"model": ..., "predictions": [...]}`` in order;
``GET /v1/health`` and ``GET /v1/info`` describe the server, ``GET /metrics`` in Prometheus' text
format, ``GET /`` is a demo page. One interpreter per worker; the reviews of concurrent requests are
scored together, up to ``--max-batch`` per interpreter call (:class:`~edge_lstm_device.batcher.Batcher`;
a review's score does not depend on its batch mates). HTTP/1.1 with keep-alive, at most
``--max-connections`` connections (:class:`~edge_lstm_device.connections.ConnectionSlots`). Every
refusal is a JSON error with its 4xx status; the server keeps running. SIGHUP loads the bundle again
and switches to it once it scores (:func:`reload`). On SIGTERM or SIGINT it stops accepting,
finishes the requests in flight and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hmac
import ipaddress
import json
import math
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http import HTTPStatus
from pathlib import Path

from edge_lstm_device import __version__, http1, metrics
from edge_lstm_device.batcher import Batcher, BatcherClosed
from edge_lstm_device.bundle import model_entry
from edge_lstm_device.connections import (BUSY, DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS, READING, WAITING,
                                         ConnectionSlots, fit_open_files)
from edge_lstm_device.interpreter import interpreter_version
from edge_lstm_device.model import BundleError, Prediction
from edge_lstm_device.pool import MAX_WORKERS, ModelPool, default_workers
from edge_lstm_device.runtime import MAX_BATCH
from edge_lstm_device.serve_metrics import ServeMetrics
from edge_lstm_device.service import Service, Services
from edge_lstm_device.tokenizer import ReviewTooLongError, Tokenizer

ROUTES = {"/v1/predict": "POST", "/v1/health": "GET", "/v1/info": "GET", "/metrics": "GET", "/": "GET"}  # path -> method
PUBLIC = {"/"}  # answered without the bearer token (the page asks for it, for the API calls it makes)
IDLE_TIMEOUT_S = 30  # a connection silent this long (idle keep-alive, stalled upload) is closed
HEAD_TIMEOUT_S = 5.0  # a new connection must send its request line and headers within this
LISTEN_BACKLOG = 1024  # listen() backlog (the kernel caps it at net.core.somaxconn)
ACCEPT_BURST = 32  # connections accepted per wakeup at most: the new ones are read before many more come
STOP_TIMEOUT_S = 10.0  # the longest wait for the loop's thread to stop accepting, or to stop
SERVER_NAME = f"edge-lstm-device/{__version__}"  # the Server header
PAUSE_BUFFER_BYTES = 1 << 16  # a connection's unread bytes while its request is scored, at most (then reading pauses)
REAP_EVERY_S = 0.25  # how often connections past their deadline are looked for
DEMO_PAGE = Path(__file__).resolve().parent / "demo.html"
DRAIN_TIMEOUT_S = 60  # on SIGTERM, the longest wait for the requests in flight
MAX_WINDOW_MS = 1000.0  # the longest --batch-window-ms
EXIT_FATAL, EXIT_USAGE = 1, 2


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
    status = HTTPStatus.SERVICE_UNAVAILABLE  # stopping: the scoring threads are gone


def parse_predict(body: bytes, limits: Limits, tokenizer: Tokenizer) -> list[list[int]]:
    """The token ids of each review of a ``/v1/predict`` body, or a :class:`RequestError` saying
    what is wrong. A review without any word is refused, as ``predict`` refuses it."""
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
    ids = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise Unprocessable(f"texts[{i}] is a {type(text).__name__}, not a string")
        if len(text) > limits.max_chars:
            raise Unprocessable(f"texts[{i}] has {len(text)} characters: at most {limits.max_chars}")
        try:
            row = tokenizer.ids(text)
        except ReviewTooLongError as err:  # the tokenizer's own limits (e.g. too many words)
            raise Unprocessable(f"texts[{i}]: {err}") from None
        if tokenizer.word_count(row) == 0:
            raise Unprocessable(f"texts[{i}] is empty (no words)")
        ids.append(row)
    return ids


@dataclass(frozen=True)
class ServerOptions:
    """How the server treats its clients."""

    limits: Limits = Limits()
    token: str | None = None  # the bearer token every path but PUBLIC requires
    quiet: bool = False  # no access log
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    head_timeout_s: float = HEAD_TIMEOUT_S
    idle_timeout_s: float = IDLE_TIMEOUT_S  # for a body, or between keep-alive requests


@dataclass(frozen=True)
class Page:
    """An answer that is not JSON."""

    body: bytes
    content_type: str


class Server:
    """One event loop thread answers every connection (at most ``max_connections``,
    :class:`ConnectionSlots`); the batcher's scoring threads run the model. Counts the requests in
    flight so that a shutdown can wait for them. ``serve_forever`` runs the loop; ``shutdown`` stops
    accepting (requests in flight go on); ``server_close`` stops the loop."""

    def __init__(self, address: tuple[str, int], services: Services, options: ServerOptions = ServerOptions()) -> None:
        self.services, self.options = services, options
        self.expected_auth = f"Bearer {options.token}".encode("ascii") if options.token else None
        self.slots = ConnectionSlots(options.max_connections, options.head_timeout_s, options.idle_timeout_s)
        self.metrics = ServeMetrics(self, ROUTES)
        services.on_batch = self.metrics.batches.observe
        self.draining = False
        self.connections: set[Connection] = set()
        self._in_flight = 0
        self._changed = threading.Condition()
        self._scored: deque[tuple[Connection, list[Prediction], BaseException | None]] = deque()
        self._wakeup_sent = False
        self._listener: asyncio.base_events.Server | None = None
        self._stopped = threading.Event()
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            self.socket.listen(LISTEN_BACKLOG)
        except OSError:
            self.socket.close()
            raise
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()[:2]
        self.server_port = int(self.server_address[1])
        self.loop = asyncio.new_event_loop()

    def serve_forever(self) -> None:
        """Answer connections until :meth:`server_close`."""
        loop = self.loop
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(_loop_error)
        self._listener = loop.run_until_complete(  # (asyncio accepts at most `backlog` per wakeup)
            loop.create_server(lambda: Connection(self), sock=self.socket, backlog=ACCEPT_BURST))
        self.socket.listen(LISTEN_BACKLOG)  # the kernel's queue stays long
        loop.call_later(REAP_EVERY_S, self._reap)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._close_connections())
            loop.close()
            self._stopped.set()

    async def _close_connections(self) -> None:
        """Close every connection, letting the answers already written leave (for a second at most)."""
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        deadline = time.monotonic() + 1.0
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.abort()
        await asyncio.sleep(0)

    def shutdown(self) -> None:
        """Stop accepting connections and close the idle ones; the requests in flight go on."""
        self._in_loop(self._stop_accepting)

    def server_close(self) -> None:
        """Stop the loop (closing every connection) and the listening socket."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._stopped.wait(STOP_TIMEOUT_S)
        self.socket.close()

    def _in_loop(self, call: Callable[[], None]) -> None:
        """Run ``call`` in the loop's thread and wait for it (run here if the loop is not running)."""
        if not self.loop.is_running():
            call()
            return
        done = threading.Event()

        def run() -> None:
            try:
                call()
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(STOP_TIMEOUT_S)

    def _stop_accepting(self) -> None:
        if self._listener is not None:
            self._listener.close()
        else:
            self.socket.close()
        for connection in list(self.connections):
            connection.close_if_idle()

    def _reap(self) -> None:
        """Close connections past their deadline, every REAP_EVERY_S."""
        self.slots.reap()
        self.loop.call_later(REAP_EVERY_S, self._reap)

    def scored(self, connection: Connection, predictions: list[Prediction], error: BaseException | None) -> None:
        """(A scoring thread.) Hand ``connection`` its predictions in the loop's thread; one wakeup
        of the loop serves every job of a batch."""
        self._scored.append((connection, predictions, error))
        if not self._wakeup_sent:
            self._wakeup_sent = True
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: the server has stopped, nobody waits for the answer
                self._scored.clear()

    def _deliver(self) -> None:
        self._wakeup_sent = False
        while self._scored:
            connection, predictions, error = self._scored.popleft()
            connection.answer_scored(predictions, error)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def request_started(self) -> None:
        with self._changed:
            self._in_flight += 1

    def request_ended(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight == 0, timeout)


class Connection(asyncio.Protocol):
    """One client connection: its requests are answered one at a time, in order. A request's state:
    its head is parsed (``request``), its body awaited (``body_size`` bytes), then it is routed; a
    prediction waits for its batch (``scoring``) with reading paused."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.client = "-"
        self.buffer = bytearray()
        self.request: http1.Request | None = None  # the request being answered
        self.body_size = 0  # bytes of its body still to come into the buffer (a prediction's)
        self.body_pending = False  # it announced a body that will not be read
        self.scoring: Service | None = None  # the service scoring its reviews
        self.started = 0.0
        self.eof = False
        self.write_paused = False  # the transport's buffer of answers is full

    # --- transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else "-"
        if not self.server.slots.admit(self):
            transport.write(_refusal())  # type: ignore[attr-defined]
            transport.close()
            return
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.slots.release(self)
        self.server.connections.discard(self)
        if self.request is not None and self.scoring is None:  # gone while its body was awaited
            self._end_request()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.scoring is None:
            self._advance()
        else:
            self._hold_back_if_flooded()

    def eof_received(self) -> bool:
        self.eof = True
        self._advance()
        return True  # keep the transport: an answer may still be written

    def shutdown(self, how: int) -> None:
        """Closed by :class:`ConnectionSlots` (evicted, or past its deadline): a body that did not
        come in time is answered 408 first."""
        if self.request is not None and self.scoring is None and self.body_size:
            limit = self.server.options.idle_timeout_s
            self._answer_error(RequestTimeout(f"the body did not arrive within {limit:g} s"))  # and closes
        else:
            self.abort()

    def pause_writing(self) -> None:
        """The client does not read its answers: read no more requests until it does."""
        self.write_paused = True
        self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None:
            self.transport.resume_reading()
            self._advance()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close_if_idle(self) -> None:
        """Close the connection if no request is under way (the server is stopping)."""
        if self.request is None and self.transport is not None:
            self.transport.close()

    # --- requests

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def _advance(self) -> None:
        """Answer the requests in the buffer, in order, until one must wait for bytes or for its batch."""
        while self.open and self.scoring is None and not self.write_paused:
            if self.request is None and not self._take_head():
                break
            if self.request is not None and not self._take_body():
                break
        if self.eof and self.request is None and self.open:
            self.transport.close()  # type: ignore[union-attr]

    def _take_head(self) -> bool:
        """Parse the next request head and route it; False if it has not all arrived."""
        while self.buffer[:2] == b"\r\n" or self.buffer[:1] == b"\n":  # empty lines between requests
            del self.buffer[: 2 if self.buffer[:1] == b"\r" else 1]
        end, body_at = http1.head_end(self.buffer)
        if end < 0:
            error = http1.incomplete_head_error(self.buffer)
            if error is None and self.eof and self.buffer:  # the last bytes the client will send
                end = body_at = len(self.buffer)
            elif error is not None:
                self._fail(error, bytes(self.buffer[:200]))
                return False
            else:
                return False
        head = bytes(self.buffer[:end])
        del self.buffer[:body_at]
        self.started = time.perf_counter()
        try:
            request = http1.parse_head(head)
        except http1.HttpError as err:
            self._fail(err, head)
            return False
        self.request, self.body_size = request, 0
        self.body_pending = "transfer-encoding" in request.headers or request.header("content-length", "0") != "0"
        self.server.request_started()
        self.server.slots.mark(self, READING if self.body_pending else BUSY)
        self._route(request)
        return True

    def _take_body(self) -> bool:
        """Once the prediction's body is in, submit its reviews; False if it must wait."""
        if len(self.buffer) < self.body_size:
            if self.eof:
                self._answer_error(RequestError("the body is shorter than its Content-Length"))
            return False
        body = bytes(self.buffer[: self.body_size])
        del self.buffer[: self.body_size]
        self.body_size, self.body_pending = 0, False
        self.server.slots.mark(self, BUSY)
        self._guarded(lambda: self._submit(body))
        return True

    def _route(self, request: http1.Request) -> None:
        """Answer ``request`` now, or (a prediction) wait for its body."""
        def route() -> None:
            answer = _route(self.server, request)
            if answer is None:  # POST /v1/predict: its body is checked, to be read
                self.body_size = _body_size(request, self.server.options.limits)
                if request.expects_continue and self.body_size > len(self.buffer):
                    self.transport.write(http1.CONTINUE)  # type: ignore[union-attr]
                return
            self._answer(HTTPStatus.OK, answer, {})

        self._guarded(route)

    def _submit(self, body: bytes) -> None:
        service = self.server.services.acquire()
        try:
            ids = parse_predict(body, self.server.options.limits, service.pool.first.tokenizer)
            service.batcher.submit(ids, lambda predictions, error: self.server.scored(self, predictions, error))
        except BatcherClosed:  # a keep-alive request that came after the drain
            self.server.services.release(service)
            raise Unavailable("the server is stopping") from None
        except BaseException:
            self.server.services.release(service)
            raise
        self.scoring = service
        self._hold_back_if_flooded()

    def _hold_back_if_flooded(self) -> None:
        """While a prediction is scored: a client sending on and on is read no more."""
        if len(self.buffer) > PAUSE_BUFFER_BYTES and self.transport is not None:
            self.transport.pause_reading()

    def answer_scored(self, predictions: list[Prediction], error: BaseException | None) -> None:
        """(The loop's thread.) The batch of this connection's prediction is done."""
        service, self.scoring = self.scoring, None
        if service is not None:
            self.server.services.release(service)
        if self.transport is None:  # the client left meanwhile
            self._end_request()
            return
        if not self.write_paused:
            self.transport.resume_reading()  # (if paused: a client sending on while it was scored)
        if error is None:
            self.server.metrics.reviews.inc(len(predictions))
            payload = {"model": service.name if service else "", "predictions": [p.to_dict() for p in predictions]}
            self._answer(HTTPStatus.OK, payload, {})
        else:
            self._answer_bug(error)
        self._advance()

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run ``step``; a refusal or a bug is answered (a bug: 500 and one log line)."""
        try:
            step()
        except RequestError as err:
            self._answer_error(err)
        except Exception as err:  # noqa: BLE001 -- last resort: a bug answers 500 (logged in one line), the server stays up
            self._answer_bug(err)

    def _answer_bug(self, err: BaseException) -> None:
        request = self.request
        log(f"error: {request.method if request else '-'} {json.dumps(request.target if request else '-')}: "
            f"{type(err).__name__}: {err}")
        status = HTTPStatus.INTERNAL_SERVER_ERROR
        self._answer(status, {"error": "internal error (see the server's log)", "status": status}, {})

    def _answer_error(self, err: RequestError) -> None:
        self._answer(err.status, {"error": str(err), "status": err.status}, err.headers)

    def _fail(self, err: http1.HttpError, head: bytes) -> None:
        """A head that cannot be parsed: answered, then the connection closes."""
        self.started = time.perf_counter()
        line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("iso-8859-1")[:200]
        self.request = http1.Request("-", "-", line, {}, keep_alive=False)
        self.body_pending = True  # what follows cannot be read as a request
        self.server.request_started()
        self._answer(err.status, {"error": str(err), "status": err.status}, {})

    def _answer(self, status: int, payload: dict | Page, headers: dict[str, str]) -> None:
        """Send the answer to the current request and end it."""
        request = self.request
        assert request is not None
        if not isinstance(payload, Page):
            payload = Page(json.dumps(payload).encode("utf-8") + b"\n", "application/json")
        server = self.server
        close = self.body_pending or server.draining or not request.keep_alive or self.eof
        data = http1.answer_bytes(status, payload.content_type, payload.body, headers, server=SERVER_NAME,
                                  close=close, head_only=request.method == "HEAD")
        took = time.perf_counter() - self.started
        server.metrics.answered(request.path, int(status), took)
        if self.transport is not None:
            self.transport.write(data)
            if close:
                self.transport.close()
        if not server.options.quiet:
            log(f"{self.client} {json.dumps(request.line)} {int(status)} {len(payload.body)} {took * 1000:.1f}ms")
        self._end_request()

    def _end_request(self) -> None:
        self.request, self.body_size, self.body_pending = None, 0, False
        self.server.slots.mark(self, WAITING)
        self.server.request_ended()


def _route(server: Server, request: http1.Request) -> dict | Page | None:
    """The answer to ``request``; None for a prediction (its body is read next)."""
    path = request.path
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


def _authorize(server: Server, request: http1.Request) -> None:
    expected = server.expected_auth
    if expected is None:
        return
    given = request.header("authorization").encode("latin-1")
    if not hmac.compare_digest(given, expected):
        raise Unauthorized("missing or wrong bearer token (Authorization: Bearer <token>)")


def _body_size(request: http1.Request, limits: Limits) -> int:
    """The size of a prediction's body, from its headers; a :class:`RequestError` if it is not one
    to read."""
    if "transfer-encoding" in request.headers:
        raise LengthRequired("chunked bodies are not supported: send a Content-Length")
    if "content-type" in request.headers and request.content_type != "application/json":
        raise UnsupportedMediaType("the body must be application/json")
    lengths = set(request.headers.get("content-length", []))
    if not lengths:
        raise LengthRequired("a Content-Length header is required")
    length = lengths.pop()
    if lengths or not (length.isascii() and length.isdigit()):
        raise RequestError("bad Content-Length header")
    size = int(length)
    if size > limits.max_body_bytes:
        raise TooLarge(f"the body has {size} bytes: at most {limits.max_body_bytes}")
    return size


def _loop_error(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """What the event loop could not handle, in one log line (no traceback)."""
    err = context.get("exception")
    log(f"error: {context.get('message', 'event loop error')}" + (f": {type(err).__name__}: {err}" if err else ""))


def log(line: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    sys.stderr.flush()


def is_exposed(host: str) -> bool:
    """Whether ``host`` is reachable from other machines (anything but a loopback address)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: assume it is reachable
        return True


def read_token(path: Path) -> str:
    """The bearer token in ``path`` (surrounding whitespace ignored): printable ASCII, no spaces."""
    token = Path(path).read_text(encoding="utf-8").strip()
    if not token or not all(33 <= ord(c) <= 126 for c in token):
        raise ValueError(f"{path}: the token must be one word of printable ASCII characters")
    return token


def info_payload(pool: ModelPool, args: argparse.Namespace, limits: Limits) -> dict:
    """What ``GET /v1/info`` answers."""
    model = pool.first
    manifest = model.manifest
    entry = model_entry(manifest, model.name)
    dist = model.scorer.interpreter_dist
    return {
        "bundle": str(Path(args.bundle).resolve()) if args.bundle else "reference (shipped with edge-lstm-device)",
        "model": model.name, "file": entry["file"], "interpreter": f"{dist} {interpreter_version(dist)}",
        "workers": pool.workers, "threads": args.threads, "max_batch": args.max_batch,
        "max_connections": args.max_connections,
        "batch_window_ms": args.batch_window_ms, "version": __version__, "limits": asdict(limits),
        **({"labels": list(model.labels)} if model.labels else {}),
        "sha256": {"model": entry["sha256"], "tokenizer": manifest["tokenizer"]["sha256"],
                   "source_model": manifest.get("source_model", {}).get("sha256")},
    }


def _usage_problems(args: argparse.Namespace, limits: Limits, workers: int) -> list[str]:
    problems = [f"--{name.replace('_', '-')} must be >= 1" for name, value in asdict(limits).items() if value < 1]
    if not 1 <= workers <= MAX_WORKERS:
        problems.append(f"--workers must be between 1 and {MAX_WORKERS}")
    if not 0 <= args.port <= 65535:
        problems.append("--port must be between 0 and 65535")
    if not 1 <= args.max_batch <= MAX_BATCH:
        problems.append(f"--max-batch must be between 1 and {MAX_BATCH}")
    if not (math.isfinite(args.batch_window_ms) and 0 <= args.batch_window_ms <= MAX_WINDOW_MS):
        problems.append(f"--batch-window-ms must be between 0 and {MAX_WINDOW_MS:g}")
    if not 1 <= args.max_connections <= MAX_CONNECTIONS:
        problems.append(f"--max-connections must be between 1 and {MAX_CONNECTIONS}")
    return problems


def _open_files_problems(args: argparse.Namespace) -> list[str]:
    """Why the open-files limit cannot take ``--max-connections`` (raising it where it can)."""
    problem = fit_open_files(args.max_connections)
    return [problem] if problem else []


def _workers(args: argparse.Namespace) -> int:
    return default_workers() if args.workers is None else args.workers


def load_service(args: argparse.Namespace, limits: Limits) -> Service:
    """The bundle of ``args`` loaded, its scoring threads started, and one review scored; raises
    :class:`BundleError` (or ``ImportError``, ``ValueError``) if it cannot serve."""
    pool = ModelPool.load(args.bundle, args.model, _workers(args), args.threads, args.interpreter, trust=args.trust)
    batcher = Batcher(pool, args.max_batch, args.batch_window_ms / 1000)
    service = Service(pool, batcher, info_payload(pool, args, limits))
    try:
        service.check()
    except (ValueError, RuntimeError) as err:  # ModelRunError, the interpreter failing on the file
        service.close()
        raise BundleError(f"the model does not score: {err}") from err
    return service


def reload(server: Server, args: argparse.Namespace) -> bool:
    """Load the bundle again, off to the side, and switch to it; on failure, log it and keep serving
    the current model. Requests in flight finish on the model they started with."""
    old = server.services.current
    started = time.perf_counter()
    log(f"reloading {args.bundle or 'the reference bundle'}")
    try:
        new = load_service(args, server.options.limits)
    except (BundleError, ImportError, ValueError, OSError) as err:
        server.metrics.reload_failures.inc()
        log(f"reload failed, still serving {old.name} (sha256 {old.info['sha256']['model'][:12]}): {err}")
        return False
    server.services.swap(new)
    server.metrics.reloads.inc()
    log(f"reloaded in {time.perf_counter() - started:.2f} s: {new.name} (sha256 {new.info['sha256']['model'][:12]})")
    return True


def _refusal() -> bytes:
    """The quick 503 a connection that gets no slot is sent (the client should retry)."""
    body = json.dumps({"error": "too many connections: retry later", "status": 503}).encode("utf-8") + b"\n"
    return http1.answer_bytes(HTTPStatus.SERVICE_UNAVAILABLE, "application/json", body, {"Retry-After": "1"},
                              server=SERVER_NAME, close=True)


@functools.cache
def demo_page() -> Page:
    """The page ``GET /`` answers (``demo.html`` of this package)."""
    try:
        return Page(DEMO_PAGE.read_bytes(), "text/html; charset=utf-8")
    except OSError:
        raise NotFound("this installation has no demo page") from None


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT (SIGHUP reloads the bundle): 0 after a clean stop, 1 if the
    model, token or port is unusable."""
    stop, reload_wanted = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            raise SystemExit(EXIT_FATAL)  # a second signal: stop now
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):  # before loading: a signal then still exits cleanly
        signal.signal(sig, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda signum, frame: reload_wanted.set())
    server = _start(args)
    if isinstance(server, int):
        return server
    threading.Thread(target=server.serve_forever, name="edge-lstm-serve", daemon=True).start()
    while not stop.wait(0.2):  # a timeout: a signal delivered to another thread would not wake a bare wait()
        if reload_wanted.is_set():
            reload_wanted.clear()
            reload(server, args)
    return _drain(server)


def _start(args: argparse.Namespace) -> Server | int:
    """The listening server with its model loaded, or the exit code of why not."""
    limits = Limits(args.max_body_bytes, args.max_texts, args.max_chars)
    problems = _usage_problems(args, limits, _workers(args)) or _open_files_problems(args)
    if problems:
        print(f"edge-lstm-device serve: error: {'; '.join(problems)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        token = read_token(args.token_file) if args.token_file else None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        print(f"error: cannot use the token file: {err}", file=sys.stderr)
        return EXIT_FATAL
    try:
        service = load_service(args, limits)
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    options = ServerOptions(limits, token, args.quiet, args.max_connections)
    try:
        server = Server((args.host, args.port), Services(service), options)
    except OSError as err:
        service.close()
        print(f"error: cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return EXIT_FATAL
    _announce(args, server, service)
    return server


def _announce(args: argparse.Namespace, server: Server, service: Service) -> None:
    url = f"http://{args.host}:{server.server_port}"
    if is_exposed(args.host) and server.options.token is None:
        print(f"warning: {url} is reachable from other machines and takes no token: "
              "anyone who reaches it can use the model (see --token-file)", file=sys.stderr)
    if args.json:
        print(json.dumps({"url": url, "model": service.name, "workers": service.pool.workers}), flush=True)
    else:
        print(f"serving {service.name} ({service.pool.workers} workers) on {url}", flush=True)


def _drain(server: Server) -> int:
    """Stop accepting, wait for the requests in flight, stop the scoring threads."""
    server.draining = True
    server.shutdown()  # stop accepting, close the idle connections; the requests in flight go on
    log(f"stopping: {server.in_flight} requests in flight")
    if not server.wait_idle(DRAIN_TIMEOUT_S):
        log(f"stopped with {server.in_flight} requests unfinished after {DRAIN_TIMEOUT_S} s")
        return EXIT_FATAL
    server.services.close()  # no job is left: the scoring threads end
    server.server_close()
    log("stopped")
    return 0
