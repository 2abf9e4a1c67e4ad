"""The model ``serve`` answers with, and its replacement on SIGHUP without dropping a request.

A :class:`Service` is one loaded bundle: its interpreters (:class:`ModelPool`), their scoring
threads (:class:`Batcher`) and what ``/v1/info`` says of them. :class:`Services` holds the current
one; a request uses the service it started with until it has its answer. :meth:`Services.swap`
makes a new service current; the old one stops once its last request is answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from edge_lstm_device.runtime.pool import ModelPool
from edge_lstm_device.serving.batcher import Batcher

CHECK_REVIEW = "A fine film, well acted and moving."  # scored once by a new service before it is used


@dataclass
class Service:
    """One loaded model: interpreters, scoring threads, and its ``/v1/info``."""

    pool: ModelPool
    batcher: Batcher
    info: dict
    loaded_at: float = field(default_factory=time.time)  # seconds since the epoch
    users: int = 0  # requests using it now
    retired: bool = False  # replaced: stops when ``users`` reaches 0

    @property
    def name(self) -> str:
        return self.pool.first.name

    def check(self) -> None:
        """Score one review (raises what scoring raised)."""
        self.pool.predict_batch([CHECK_REVIEW])

    def close(self) -> None:
        self.batcher.close()
        self.pool.close()


class Services:
    """The current :class:`Service`, counted in use by each request."""

    def __init__(self, current: Service) -> None:
        self._current = current
        self._lock = threading.Lock()
        self._on_batch: Callable[[int], None] | None = None

    @property
    def on_batch(self) -> Callable[[int], None] | None:
        """Told each batch's size, by the current service's batcher and every later one."""
        return self._on_batch

    @on_batch.setter
    def on_batch(self, observe: Callable[[int], None] | None) -> None:
        self._on_batch = self._current.batcher.on_batch = observe

    @property
    def current(self) -> Service:
        return self._current

    @contextmanager
    def use(self) -> Iterator[Service]:
        """The current service; it keeps running until the block ends, even if swapped meanwhile."""
        service = self.acquire()
        try:
            yield service
        finally:
            self.release(service)

    def acquire(self) -> Service:
        """The current service, in use (it keeps running, even if swapped) until :meth:`release`."""
        with self._lock:
            service = self._current
            service.users += 1
        return service

    def release(self, service: Service) -> None:
        with self._lock:
            service.users -= 1
            done = service.retired and service.users == 0
        if done:
            _close_in_background(service)

    def swap(self, new: Service) -> Service:
        """Make ``new`` current; the old one (returned) stops after its last request."""
        new.batcher.on_batch = self._on_batch
        with self._lock:
            old, self._current = self._current, new
            old.retired = True
            idle = old.users == 0
        if idle:
            _close_in_background(old)
        return old

    def close(self) -> None:
        self._current.close()


def _close_in_background(service: Service) -> None:
    threading.Thread(target=service.close, name="edge-lstm-retire", daemon=True).start()
