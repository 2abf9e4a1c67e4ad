"""SIGTERM unwinds the command like Ctrl-C does, so staging folders and partial files are
cleaned up, and a SIGTERM that a converter swallowed still stops the work.

The handler raises ``SystemExit`` wherever the main thread is. Converters catch everything in
places (tf2onnx has bare ``except:`` clauses), so long work calls :func:`check` between stages
and before it commits: the exit the handler began is raised again there.
"""

from __future__ import annotations

import signal

_received: int | None = None  # the signal the handler saw, if any


def install() -> None:
    """Make SIGTERM exit with status 128 + 15 (the CLI's entry point calls this)."""
    signal.signal(signal.SIGTERM, _exit)


def _exit(signum: int, frame: object) -> None:
    global _received
    _received = signum
    raise SystemExit(128 + signum)


def check() -> None:
    """Raise the handler's exit again if a SIGTERM arrived (whoever caught the first one)."""
    if _received is not None:
        raise SystemExit(128 + _received)
