"""Bounded connections for ``serve``: at most ``limit`` open at once, each with a deadline.

A connection is anything with ``shutdown(how)``: a socket, or ``serve``'s connection of its event
loop.

A connection is *waiting* (new, or kept alive between requests: it may be closed without losing
anything), *reading* (its request head has arrived, its body is being read) or *busy* (being
answered). When all slots are taken, a new connection takes the slot of the waiting connection
that has waited longest, so half-open connections cannot lock out real clients; when none waits,
the new one is refused with a quick 503. A waiting or reading connection past its deadline is shut
down by :meth:`ConnectionSlots.reap`: a client must send its request head within ``head_timeout_s``
of connecting and its body within ``idle_timeout_s``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass

WAITING, READING, BUSY = "waiting", "reading", "busy"
DEFAULT_MAX_CONNECTIONS = 128  # sized for a Raspberry Pi: each holds a socket and its buffers
MAX_CONNECTIONS = 10_000


@dataclass
class _Slot:
    state: str
    since: float  # when it entered its state (the oldest waiting connection is evicted first)
    deadline: float | None  # shut down after this (time.monotonic()); None: no deadline


class ConnectionSlots:
    """The open connections of a server, by socket."""

    def __init__(self, limit: int, head_timeout_s: float, idle_timeout_s: float) -> None:
        self.limit, self.head_timeout_s, self.idle_timeout_s = limit, head_timeout_s, idle_timeout_s
        self.closed = Counter()  # closed by the server: "evicted", "timeout", "refused"
        self._slots: dict[socket.socket, _Slot] = {}
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return len(self._slots)

    def admit(self, sock: socket.socket) -> bool:
        """Take a slot for a new connection (evicting the longest-waiting one if all are taken);
        False if every slot is reading or busy."""
        now = time.monotonic()
        evicted = None
        with self._lock:
            if len(self._slots) >= self.limit:
                evicted = self._take_oldest_waiting()
                if evicted is None:
                    self.closed["refused"] += 1
                    return False
            self._slots[sock] = _Slot(WAITING, now, now + self.head_timeout_s)
        if evicted is not None:
            _shut_down(evicted)
        return True

    def mark(self, sock: socket.socket, state: str) -> None:
        """``sock`` is now ``state``: WAITING for its next request (after an answer), READING its
        body, or BUSY being answered."""
        now = time.monotonic()
        with self._lock:
            slot = self._slots.get(sock)
            if slot is not None:
                slot.state, slot.since, slot.deadline = state, now, None if state == BUSY else now + self.idle_timeout_s

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._slots.pop(sock, None)

    def reap(self) -> int:
        """Shut down the connections past their deadline; how many."""
        now = time.monotonic()
        with self._lock:
            late = [s for s, slot in self._slots.items() if slot.deadline is not None and slot.deadline < now]
            for sock in late:
                self._forget(sock, "timeout")
        for sock in late:
            _shut_down(sock)
        return len(late)

    def _take_oldest_waiting(self) -> socket.socket | None:
        waiting = [(slot.since, id(sock), sock) for sock, slot in self._slots.items() if slot.state == WAITING]
        if not waiting:
            return None
        sock = min(waiting)[2]
        self._forget(sock, "evicted")
        return sock

    def _forget(self, sock: socket.socket, reason: str) -> None:
        del self._slots[sock]
        self.closed[reason] += 1


def _shut_down(sock: socket.socket) -> None:
    """Shut ``sock`` down, so whoever reads it sees the end of the stream. Called outside the lock:
    a connection's own ``shutdown`` may answer its request and mark its slot."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the client
        pass
