"""``serve``'s event loop: one thread accepts and answers every connection
(:class:`~edge_lstm_device.serving.connection.Connection`), at most ``max_connections``
(:class:`~edge_lstm_device.serving.connections.ConnectionSlots`); the batcher's scoring threads run the
model and hand each result back to the loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from edge_lstm_device.runtime.model import Prediction
from edge_lstm_device.serving.api import ROUTES, ServerOptions
from edge_lstm_device.serving.connection import Connection, log
from edge_lstm_device.serving.connections import BodyBudget, ConnectionSlots
from edge_lstm_device.serving.metrics import ServeMetrics
from edge_lstm_device.serving.service import Services

LISTEN_BACKLOG = 1024  # listen() backlog (the kernel caps it at net.core.somaxconn)
ACCEPT_BURST = 32  # connections accepted per wakeup at most: the new ones are read before many more come
STOP_TIMEOUT_S = 10.0  # the longest wait for the loop's thread to stop accepting, or to stop
REAP_EVERY_S = 0.25  # how often connections past their deadline are looked for


class Server:
    """One event loop thread answers every connection (at most ``max_connections``,
    :class:`ConnectionSlots`); the batcher's scoring threads run the model. Counts the requests in
    flight so that a shutdown can wait for them. ``serve_forever`` runs the loop; ``shutdown`` stops
    accepting (requests in flight go on); ``server_close`` stops the loop."""

    def __init__(self, address: tuple[str, int], services: Services, options: ServerOptions = ServerOptions()) -> None:
        self.services, self.options = services, options
        self.expected_token = options.token.encode("ascii") if options.token else None
        self.slots = ConnectionSlots(options.max_connections, options.head_timeout_s, options.idle_timeout_s)
        self.bodies = BodyBudget(options.body_memory)
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


def _loop_error(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """What the event loop could not handle, in one log line (no traceback)."""
    err = context.get("exception")
    log(f"error: {context.get('message', 'event loop error')}" + (f": {type(err).__name__}: {err}" if err else ""))
