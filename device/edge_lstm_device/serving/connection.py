"""One client connection of ``serve``: an asyncio protocol that reads request heads and bodies
(:mod:`~edge_lstm_device.serving.http1`), answers them in order through :func:`~edge_lstm_device.serving.api.route`,
and hands predictions to the batcher. Its server is a :class:`ConnectionHost`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Protocol

from edge_lstm_device import __version__
from edge_lstm_device.runtime.model import Prediction
from edge_lstm_device.serving import http1
from edge_lstm_device.serving.api import (
    Page,
    RequestError,
    RequestTimeout,
    ServerView,
    Unavailable,
    body_size,
    parse_predict,
    route,
)
from edge_lstm_device.serving.batcher import BatcherClosed
from edge_lstm_device.serving.connections import BUSY, READING, WAITING, BodyBudget, ConnectionSlots
from edge_lstm_device.serving.service import Service

SERVER_NAME = f"edge-lstm-device/{__version__}"  # the Server header
PAUSE_BUFFER_BYTES = 1 << 16  # a connection's unread bytes while its request is scored, at most (then reading pauses)


class ConnectionHost(ServerView, Protocol):
    """What a connection uses of its server."""

    slots: ConnectionSlots
    bodies: BodyBudget
    connections: set[Connection]
    draining: bool  # stopping: every answer closes its connection

    def scored(self, connection: Connection, predictions: list[Prediction], error: BaseException | None) -> None: ...

    def request_started(self) -> None: ...

    def request_ended(self) -> None: ...


HEAD, BODY, SCORING = "head", "body", "scoring"  # a connection's phases (Connection.phase)
_SLOT_STATES = {HEAD: WAITING, BODY: READING, SCORING: BUSY}  # what each is to ConnectionSlots


class Connection(asyncio.Protocol):
    """One client connection: its requests are answered one at a time, in order. Its phase:

    - HEAD: no request under way; the next head is awaited (a WAITING slot, evictable);
    - BODY: a head has arrived (``request``); it is routed at once, and a prediction's body
      (``body_size`` bytes, reserved in the server's budget) is awaited (a READING slot, evictable);
    - SCORING: a prediction waits for its batch (``scoring``: the service that runs it; a BUSY
      slot), and what the client sends meanwhile is buffered, up to ``PAUSE_BUFFER_BYTES``.

    Answering a request (``_answer``) always returns to HEAD (:meth:`_end_request`); a refusal that
    leaves bytes unread (``body_pending``) closes the connection as well."""

    def __init__(self, server: ConnectionHost) -> None:
        self.server = server
        self.phase = HEAD
        self.transport: asyncio.Transport | None = None
        self.client = "-"
        self.buffer = bytearray()
        self.request: http1.Request | None = None  # the request being answered
        self.body_size = 0  # bytes of its body still to come into the buffer (a prediction's)
        self.body_pending = False  # it announced a body that will not be read
        self.scoring: Service | None = None  # the service scoring its reviews
        self.reserved = 0  # bytes of the body budget its request holds
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
        if self.phase == BODY:  # gone while its body was awaited
            self._end_request()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.phase != SCORING:
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
        if self.phase == BODY and self.body_size:
            limit = self.server.options.idle_timeout_s
            if time.perf_counter() - self.started < limit:  # evicted: another client needed the slot or memory
                self._answer_error(RequestTimeout("the body came too slowly while other clients waited"))
            else:
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
        if self.phase == HEAD and self.transport is not None:
            self.transport.close()

    # --- requests

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def _advance(self) -> None:
        """Answer the requests in the buffer, in order, until one must wait for bytes or for its batch."""
        while self.open and self.phase != SCORING and not self.write_paused:
            if self.phase == HEAD and not self._take_head():
                break
            if self.phase == BODY and not self._take_body():
                break
        if self.eof and self.phase == HEAD and self.open:
            self.transport.close()  # type: ignore[union-attr]

    def _take_head(self) -> bool:
        """Parse the next request head and route it; False if it has not all arrived."""
        self.started = time.perf_counter()
        try:
            request = http1.next_request(self.buffer, self.eof)
        except http1.HttpError as err:
            self._fail(err, bytes(self.buffer[:200]).split(b"\n", 1)[0].rstrip(b"\r").decode("iso-8859-1"))
            return False
        if request is None:
            return False
        try:
            http1.check_supported(request)
        except http1.HttpError as err:
            self._fail(err, request.line)
            return False
        self.request, self.body_size, self.body_pending = request, 0, request.has_body
        self.server.request_started()
        self._enter(BODY)
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
        self._enter(SCORING)
        self._guarded(lambda: self._submit(body))
        self._release_body()  # parsed into token ids: the bytes are gone
        return True

    def _route(self, request: http1.Request) -> None:
        """Answer ``request`` now, or (a prediction) wait for its body."""
        def answer_or_await_body() -> None:
            answer = route(self.server, request)
            if answer is None:  # POST /v1/predict: its body is checked, to be read
                self.body_size = body_size(request, self.server.options.limits)
                self._reserve_body()
                if request.expects_continue and self.body_size > len(self.buffer):
                    self.transport.write(http1.CONTINUE)  # type: ignore[union-attr]
                return
            self._answer(HTTPStatus.OK, answer, {})

        self._guarded(answer_or_await_body)

    def _reserve_body(self) -> None:
        """Reserve the body's size in the server's budget, dropping the longest upload (reading for
        over ``body_grace_s``) when it is spent; a :class:`RequestError` (503) if it stays spent."""
        server = self.server
        while not server.bodies.reserve(self.body_size):
            if not server.slots.evict_reading(server.options.body_grace_s, keep=self):
                server.bodies.refused += 1
                raise Unavailable("too many request bodies in memory: retry later", {"Retry-After": "1"})
        self.reserved = self.body_size

    def _release_body(self) -> None:
        self.server.bodies.release(self.reserved)
        self.reserved = 0

    def _submit(self, body: bytes) -> None:
        service = self.server.services.acquire()
        try:
            ids = parse_predict(body, self.server.options.limits, service.pool)
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

    def _fail(self, err: http1.HttpError, line: str) -> None:
        """A head that cannot be framed or is not spoken here: answered, then the connection closes."""
        self.request = http1.Request("-", "-", line[:200], {}, keep_alive=False)
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
        self._release_body()
        self.request, self.body_size, self.body_pending = None, 0, False
        self._enter(HEAD)
        self.server.request_ended()

    def _enter(self, phase: str) -> None:
        """The one place the phase changes, and with it the connection's slot state."""
        self.phase = phase
        self.server.slots.mark(self, _SLOT_STATES[phase])


def _refusal() -> bytes:
    """The quick 503 a connection that gets no slot is sent (the client should retry)."""
    body = json.dumps({"error": "too many connections: retry later", "status": 503}).encode("utf-8") + b"\n"
    return http1.answer_bytes(HTTPStatus.SERVICE_UNAVAILABLE, "application/json", body, {"Retry-After": "1"},
                              server=SERVER_NAME, close=True)


def log(line: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    sys.stderr.flush()
