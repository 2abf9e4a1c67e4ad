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

Each open connection takes a file descriptor: :func:`fit_open_files` raises the process's soft
limit to what ``limit`` connections need, or says why it cannot.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, OrderedDict

WAITING, READING, BUSY = "waiting", "reading", "busy"
DEFAULT_MAX_CONNECTIONS = 512  # ~4 kB and a file descriptor each, no thread: ~2 MB when all are open
MAX_CONNECTIONS = 10_000
OPEN_FILES_BESIDES = 64  # descriptors the server needs besides its connections (listener, loop, model, logs)


class ConnectionSlots:
    """The open connections of a server, by socket."""

    def __init__(self, limit: int, head_timeout_s: float, idle_timeout_s: float) -> None:
        self.limit, self.head_timeout_s, self.idle_timeout_s = limit, head_timeout_s, idle_timeout_s
        self.closed = Counter()  # closed by the server: "evicted", "timeout", "refused"
        self._deadlines: dict[socket.socket, float | None] = {}  # each open one's (time.monotonic()); None: none
        self._waiting: OrderedDict[socket.socket, None] = OrderedDict()  # the waiting ones, longest first
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return len(self._deadlines)

    def admit(self, sock: socket.socket) -> bool:
        """Take a slot for a new connection (evicting the longest-waiting one if all are taken);
        False if every slot is reading or busy."""
        now = time.monotonic()
        evicted = None
        with self._lock:
            if len(self._deadlines) >= self.limit:
                evicted = self._take_oldest_waiting()
                if evicted is None:
                    self.closed["refused"] += 1
                    return False
            self._deadlines[sock] = now + self.head_timeout_s
            self._waiting[sock] = None
        if evicted is not None:
            _shut_down(evicted)
        return True

    def mark(self, sock: socket.socket, state: str) -> None:
        """``sock`` is now ``state``: WAITING for its next request (after an answer), READING its
        body, or BUSY being answered."""
        now = time.monotonic()
        with self._lock:
            if sock not in self._deadlines:
                return
            self._deadlines[sock] = None if state == BUSY else now + self.idle_timeout_s
            self._waiting.pop(sock, None)
            if state == WAITING:
                self._waiting[sock] = None  # the newest waiting

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)
            self._waiting.pop(sock, None)

    def reap(self) -> int:
        """Shut down the connections past their deadline; how many."""
        now = time.monotonic()
        with self._lock:
            late = [s for s, deadline in self._deadlines.items() if deadline is not None and deadline < now]
            for sock in late:
                self._forget(sock, "timeout")
        for sock in late:
            _shut_down(sock)
        return len(late)

    def _take_oldest_waiting(self) -> socket.socket | None:
        if not self._waiting:
            return None
        sock = next(iter(self._waiting))
        self._forget(sock, "evicted")
        return sock

    def _forget(self, sock: socket.socket, reason: str) -> None:
        del self._deadlines[sock]
        self._waiting.pop(sock, None)
        self.closed[reason] += 1


def fit_open_files(connections: int) -> str | None:
    """Raise the soft limit on open files to what ``connections`` connections need (plus
    ``OPEN_FILES_BESIDES``); None when it is enough, else why not (the hard limit is lower)."""
    try:
        import resource
    except ImportError:  # not a Unix: no such limit to raise
        return None
    needed = connections + OPEN_FILES_BESIDES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard != resource.RLIM_INFINITY and hard < needed:
        return (f"--max-connections {connections} needs {needed} open files, and this process may open at most "
                f"{hard} (ulimit -Hn): lower --max-connections, or raise the limit (systemd: LimitNOFILE=)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return None


def _shut_down(sock: socket.socket) -> None:
    """Shut ``sock`` down, so whoever reads it sees the end of the stream. Called outside the lock:
    a connection's own ``shutdown`` may answer its request and mark its slot."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the client
        pass
