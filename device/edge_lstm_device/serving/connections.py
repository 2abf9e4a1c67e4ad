"""Bounded connections for ``serve``: at most ``limit`` open at once, each with a deadline, and
one memory budget for the request bodies they announce.

A connection is anything with ``shutdown(how)``: a socket, or ``serve``'s connection of its event
loop.

A connection is *waiting* (new, or kept alive between requests: it may be closed without losing
anything), *reading* (its request head has arrived, its body is being read) or *busy* (being
answered). When all slots are taken, a new connection takes the slot of the connection that has
been waiting or reading the longest (a reading one is answered 408 as it goes), so neither
half-open connections nor bodies that trickle or never come can lock out real clients: a complete
request is answered within moments, a stalled one is always older. Only when every slot is busy is
the new one refused with a quick 503. A waiting or reading connection past its deadline is shut
down by :meth:`ConnectionSlots.reap`: a client must send its request head within
``head_timeout_s`` of connecting and its body within ``idle_timeout_s`` of its head (trickling
bytes does not extend it).

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
DEFAULT_BODY_MEMORY = 64 << 20  # bodies held at once: with a ~80 MB server, fits a Pi's 256 MB systemd MemoryMax
BODY_GRACE_S = 2.0  # a body reading this long may be evicted when its memory is wanted (1 MiB at 4 Mbit/s)
MAX_CONNECTIONS = 10_000
OPEN_FILES_BESIDES = 64  # descriptors the server needs besides its connections (listener, loop, model, logs)


class ConnectionSlots:
    """The open connections of a server, by socket."""

    def __init__(self, limit: int, head_timeout_s: float, idle_timeout_s: float) -> None:
        self.limit, self.head_timeout_s, self.idle_timeout_s = limit, head_timeout_s, idle_timeout_s
        self.closed = Counter()  # closed by the server: "evicted", "timeout", "refused"
        self._deadlines: dict[socket.socket, float | None] = {}  # each open one's (time.monotonic()); None: none
        # the waiting and the reading ones, each in the order they entered that state, with when
        self._idle: dict[str, OrderedDict[socket.socket, float]] = {WAITING: OrderedDict(), READING: OrderedDict()}
        self._states: dict[socket.socket, str] = {}  # each open one's state
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return len(self._deadlines)

    def admit(self, sock: socket.socket) -> bool:
        """Take a slot for a new connection (evicting the one waiting or reading longest if all are
        taken); False if every slot is busy."""
        now = time.monotonic()
        evicted = None
        with self._lock:
            if len(self._deadlines) >= self.limit:
                evicted = self._take_oldest((WAITING, READING), now)
                if evicted is None:
                    self.closed["refused"] += 1
                    return False
            self._deadlines[sock] = now + self.head_timeout_s
            self._idle[WAITING][sock] = now
            self._states[sock] = WAITING
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
            self._leave_state(sock)
            self._states[sock] = state
            if state != BUSY:
                self._idle[state][sock] = now  # the newest in its state

    def evict_reading(self, older_than_s: float, keep: socket.socket) -> bool:
        """Shut down the connection reading its body longest, if that is longer than
        ``older_than_s`` and it is not ``keep`` (which wants its memory); whether one was."""
        with self._lock:
            oldest = next(iter(self._idle[READING]), None)
            evicted = None if oldest is keep else self._take_oldest((READING,), time.monotonic() - older_than_s)
        if evicted is not None:
            _shut_down(evicted)
        return evicted is not None

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)
            self._leave_state(sock)

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

    def _take_oldest(self, states: tuple[str, ...], since_before: float) -> socket.socket | None:
        """Forget the connection that entered one of ``states`` first, if before ``since_before``."""
        firsts = [next(iter(self._idle[state].items())) for state in states if self._idle[state]]
        if not firsts:
            return None
        sock, since = min(firsts, key=lambda first: first[1])
        if since > since_before:
            return None
        self._forget(sock, "evicted")
        return sock

    def _forget(self, sock: socket.socket, reason: str) -> None:
        del self._deadlines[sock]
        self._leave_state(sock)
        self.closed[reason] += 1

    def _leave_state(self, sock: socket.socket) -> None:
        state = self._states.pop(sock, BUSY)
        if state != BUSY:
            self._idle[state].pop(sock, None)


class BodyBudget:
    """The bytes of request bodies the server has agreed to hold at once: a body's announced size
    is reserved before it is read and given back once it is parsed, so that slow uploads cannot
    hold more memory than ``limit`` between them (rather than ``max-connections`` x ``max-body-bytes``).
    Used from the event loop's thread only."""

    def __init__(self, limit: int) -> None:
        self.limit, self.reserved = limit, 0
        self.refused = 0  # bodies refused for want of memory

    def reserve(self, size: int) -> bool:
        if self.reserved + size > self.limit:
            return False
        self.reserved += size
        return True

    def release(self, size: int) -> None:
        self.reserved -= size


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
