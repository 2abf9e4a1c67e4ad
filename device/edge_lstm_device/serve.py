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
import functools
import hmac
import ipaddress
import json
import math
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edge_lstm_device import __version__, metrics
from edge_lstm_device.batcher import Batcher, BatcherClosed
from edge_lstm_device.connections import (BUSY, DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS, READING, WAITING,
                                         ConnectionSlots, HandlerThreads)
from edge_lstm_device.interpreter import interpreter_version
from edge_lstm_device.model import BundleError
from edge_lstm_device.pool import MAX_WORKERS, ModelPool, default_workers
from edge_lstm_device.runtime import MAX_BATCH
from edge_lstm_device.serve_metrics import ServeMetrics
from edge_lstm_device.service import Service, Services
from edge_lstm_device.tokenizer import ReviewTooLongError, Tokenizer

ROUTES = {"/v1/predict": "POST", "/v1/health": "GET", "/v1/info": "GET", "/metrics": "GET", "/": "GET"}  # path -> method
PUBLIC = {"/"}  # answered without the bearer token (the page asks for it, for the API calls it makes)
IDLE_TIMEOUT_S = 30  # a connection silent this long (idle keep-alive, stalled upload) is closed
HEAD_TIMEOUT_S = 5.0  # a new connection must send its request line and headers within this
SPARE_THREADS = 8  # connection threads beyond --max-connections: those of evicted connections, finishing
ACCEPT_BURST = 256  # connections accepted per wakeup at most (then the deadlines are checked)
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


@dataclass(frozen=True)
class Page:
    """An answer that is not JSON."""

    body: bytes
    content_type: str


class Server(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` (:class:`ConnectionSlots`); counts the
    requests in flight so that a shutdown can wait for them."""

    daemon_threads = True  # idle keep-alive connections do not hold the exit
    request_queue_size = 1024  # listen() backlog (the kernel caps it at net.core.somaxconn)

    def __init__(self, address: tuple[str, int], services: Services, options: ServerOptions = ServerOptions()) -> None:
        self.services, self.options = services, options
        self.expected_auth = f"Bearer {options.token}".encode("ascii") if options.token else None
        self.slots = ConnectionSlots(options.max_connections, options.head_timeout_s, IDLE_TIMEOUT_S)
        self.handlers = HandlerThreads(self.process_request_thread, options.max_connections + SPARE_THREADS)
        self.metrics = ServeMetrics(self, ROUTES)
        services.on_batch = self.metrics.batches.observe
        self.draining = False
        self._in_flight = 0
        self._changed = threading.Condition()
        self._reaped_at = 0.0
        super().__init__(address, Handler)

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.setblocking(False)  # accept until none is waiting (see _handle_request_noblock)

    def _handle_request_noblock(self) -> None:
        """Accept every connection waiting, not one per wakeup of serve_forever's poll: under a burst
        of connections the listen backlog would fill, and the kernel drop new ones for a second."""
        for _ in range(ACCEPT_BURST):
            try:
                request, client_address = self.socket.accept()
            except OSError:  # BlockingIOError: none is waiting (or the listening socket is closed)
                return
            request.setblocking(True)
            self.process_request(request, client_address)

    def process_request(self, request: socket.socket, client_address: tuple) -> None:  # type: ignore[override]
        """A thread for the connection if it gets a slot, else a quick 503."""
        if self.slots.admit(request):
            self.handlers.submit(request, client_address)
            return
        _refuse(request)
        self.shutdown_request(request)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        self.slots.release(request)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Between accepts (and at least every poll interval): close connections past their deadline."""
        now = time.monotonic()
        if now - self._reaped_at >= REAP_EVERY_S:
            self._reaped_at = now
            self.slots.reap()

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks the host name up (socket.getfqdn): slow on a Pi without DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: object, client_address: tuple) -> None:
        """One line instead of a traceback, e.g. for a client that hung up before its answer; nothing
        for a connection the server shut down itself (counted in /metrics)."""
        if self.slots.was_shut(request):
            return
        err = sys.exc_info()[1]
        log(f"{client_address[0]} connection error: {type(err).__name__}: {err}")

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def request_in_flight(self) -> Iterator[None]:
        with self._changed:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight == 0, timeout)


class Handler(BaseHTTPRequestHandler):
    """Routes, checks and answers one connection's requests, all in JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries its Content-Length
    default_request_version = "HTTP/1.0"  # a garbled request line still gets a status line and headers
    server_version = f"edge-lstm-device/{__version__}"
    timeout = IDLE_TIMEOUT_S
    wbufsize = -1  # buffer the answer: headers and body leave in one send
    disable_nagle_algorithm = True  # else a small answer can wait ~40 ms for the client's delayed ACK
    server: Server
    _start: float | None = None  # per request: when its request line was read
    _body_pending = False  # the request announced a body that has not been read
    _sent = 0  # bytes of the answer's body

    def version_string(self) -> str:  # the Server header, without Python's version
        return self.server_version

    def handle_one_request(self) -> None:
        self._start, self._body_pending, self._sent = None, False, 0
        super().handle_one_request()
        self.server.slots.mark(self.connection, WAITING)

    def parse_request(self) -> bool:
        self._start = time.perf_counter()
        parsed = super().parse_request()  # reads the headers
        if self.server.slots.was_shut(self.connection):  # evicted or late: the headers were cut short
            self.close_connection = True
            return False
        if parsed:
            self._body_pending = "Transfer-Encoding" in self.headers or self.headers.get("Content-Length", "0") != "0"
            self.server.slots.mark(self.connection, READING if self._body_pending else BUSY)
        return parsed

    def _dispatch(self) -> None:
        with self.server.request_in_flight():
            headers: dict[str, str] = {}
            try:
                status, payload = HTTPStatus.OK, self._route()
            except RequestError as err:
                status, payload, headers = err.status, {"error": str(err), "status": err.status}, err.headers
            except ConnectionError:
                raise  # the client is gone: nothing to answer (Server.handle_error logs one line)
            except Exception as err:  # noqa: BLE001 -- last resort: a bug answers 500 (logged in one line), the server stays up
                log(f"error: {self.command} {json.dumps(self.path)}: {type(err).__name__}: {err}")
                status = HTTPStatus.INTERNAL_SERVER_ERROR
                payload = {"error": "internal error (see the server's log)", "status": status}
            self._send(status, payload, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _dispatch

    def _route(self) -> dict | Page:
        path = self.path.split("?", 1)[0]
        if path not in PUBLIC:
            self._authorize()
        allowed = ROUTES.get(path)
        if allowed is None:
            raise NotFound(f"no such path; the API is {', '.join(f'{m} {p}' for p, m in ROUTES.items())}")
        if self.command != allowed and (self.command, allowed) != ("HEAD", "GET"):
            raise MethodNotAllowed(allowed)
        if path == "/":
            return demo_page()
        if path == "/metrics":
            return Page(self.server.metrics.render().encode("utf-8"), metrics.CONTENT_TYPE)
        service = self.server.services.current
        if path == "/v1/health":
            return {"status": "ok", "model": service.name, "workers": service.pool.workers,
                    "in_flight": self.server.in_flight}
        if path == "/v1/info":
            return {**service.info, "loaded_at": _iso(service.loaded_at), "batches": service.batcher.counts()}
        return self._predict(self._body())

    def _predict(self, body: bytes) -> dict:
        with self.server.services.use() as service:  # in flight on this model, even if a reload swaps it
            ids = parse_predict(body, self.server.options.limits, service.pool.first.tokenizer)
            try:
                predictions = service.batcher.predict_ids(ids)  # tokenized in this thread, scored in a batch
            except BatcherClosed:  # a keep-alive request that came after the drain
                raise Unavailable("the server is stopping") from None
        self.server.metrics.reviews.inc(len(ids))
        return {"model": service.name, "predictions": [p.to_dict() for p in predictions]}

    def _authorize(self) -> None:
        expected = self.server.expected_auth
        if expected is None:
            return
        given = self.headers.get("Authorization", "").encode("latin-1")  # headers are decoded as latin-1
        if not hmac.compare_digest(given, expected):
            raise Unauthorized("missing or wrong bearer token (Authorization: Bearer <token>)")

    def _body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise LengthRequired("chunked bodies are not supported: send a Content-Length")
        if "Content-Type" in self.headers and self.headers.get_content_type() != "application/json":
            raise UnsupportedMediaType("the body must be application/json")
        lengths = set(self.headers.get_all("Content-Length") or [])
        if not lengths:
            raise LengthRequired("a Content-Length header is required")
        length = lengths.pop()
        if lengths or not (length.isascii() and length.isdigit()):
            raise RequestError("bad Content-Length header")
        size = int(length)
        most = self.server.options.limits.max_body_bytes
        if size > most:
            raise TooLarge(f"the body has {size} bytes: at most {most}")
        try:
            body = self.rfile.read(size)
        except TimeoutError:
            raise RequestTimeout(f"the body did not arrive within {IDLE_TIMEOUT_S} s") from None
        if len(body) < size:
            raise RequestError("the body is shorter than its Content-Length")
        self._body_pending = False
        self.server.slots.mark(self.connection, BUSY)
        return body

    def _send(self, status: int, payload: dict | Page, headers: dict[str, str]) -> None:
        if not isinstance(payload, Page):
            payload = Page(json.dumps(payload).encode("utf-8") + b"\n", "application/json")
        body = payload.body
        if self._body_pending or self.server.draining:  # unread bytes would be taken for the next request
            self.close_connection = True
        self._sent = len(body)
        self.send_response(status)
        self.send_header("Content-Type", payload.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        took = time.perf_counter() - self._start if self._start else 0.0
        path = getattr(self, "path", "")  # (none when the request line could not be parsed)
        self.server.metrics.answered(path.split("?", 1)[0], int(status), took)  # before the client has it
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()  # now, while the request still counts as in flight (a shutdown waits for it)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the standard library refuses itself (bad request line, long headers, unknown method),
        as JSON too; the connection is closed, as the standard library does."""
        self.close_connection = True
        status = HTTPStatus(code)
        self._send(status, {"error": message or status.phrase, "status": status}, {})

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The access log: one line per request on stderr (off with --quiet)."""
        if self.server.options.quiet:
            return
        took = f"{(time.perf_counter() - self._start) * 1000:.1f}ms" if self._start else "-"
        log(f"{self.client_address[0]} {json.dumps(self.requestline)} {int(code)} {self._sent} {took}")

    def log_error(self, format: str, *args: object) -> None:  # the standard library's argument names
        pass  # refusals are in the access log; a timed-out connection is just closed


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
    entry = manifest["artifacts"][model.name]
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


def _refuse(request: socket.socket) -> None:
    """A quick 503 to a connection that gets no slot (the client should retry)."""
    body = json.dumps({"error": "too many connections: retry later", "status": 503}).encode("utf-8") + b"\n"
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Retry-After: 1\r\nConnection: close\r\n\r\n")
    try:
        request.settimeout(0.1)  # never let the accepting thread wait on a client
        request.sendall(head.encode("ascii") + body)
    except OSError:
        pass


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
    problems = _usage_problems(args, limits, _workers(args))
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
    server.shutdown()  # stop accepting (serve_forever returns), then close the listening socket
    server.server_close()
    log(f"stopping: {server.in_flight} requests in flight")
    if not server.wait_idle(DRAIN_TIMEOUT_S):
        log(f"stopped with {server.in_flight} requests unfinished after {DRAIN_TIMEOUT_S} s")
        return EXIT_FATAL
    server.services.close()  # no job is left: the scoring threads end
    log("stopped")
    return 0
