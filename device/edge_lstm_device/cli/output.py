"""What every verb shares: its exit codes, and writing results (a closed stdout is an
``OutputError``, not a traceback)."""

from __future__ import annotations

import sys

EXIT_FATAL, EXIT_USAGE, EXIT_SOME_LINES_FAILED = 1, 2, 3
EXIT_THRESHOLD_FAILED = 3  # verify / calibrate: a model misses the parity thresholds on this CPU


class InputError(Exception):
    """Reviews could not be read (a file or stdin)."""


class OutputError(Exception):
    """Results could not be written (its ``__cause__`` is the ``OSError``)."""


def out(line: str) -> None:
    """Write one line of results to stdout; failures become ``OutputError``."""
    try:
        sys.stdout.write(line + "\n")
    except OSError as err:
        raise OutputError(err.strerror or str(err)) from err


def flush() -> None:
    try:
        sys.stdout.flush()
    except OSError as err:
        raise OutputError(err.strerror or str(err)) from err


def plain(value: object) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)
