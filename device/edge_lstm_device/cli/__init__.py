"""``edge-lstm-device``: review text to sentiment on the device (argparse: no extra dependency).

Exit codes: 0 all reviews scored; 1 the bundle or interpreter could not be loaded;
2 bad usage; 3 some input lines could not be scored (each is reported, the rest still are).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from edge_lstm_device.bundle.signing import TRUST_ENV
from edge_lstm_device.cli.output import EXIT_FATAL, OutputError, flush
from edge_lstm_device.cli.parser import MAX_THREADS, build_parser
from edge_lstm_device.runtime.quiet import hide_native_stderr


def _check_trust(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """An operator who sets $EDGE_LSTM_TRUST means to check signatures: set but empty (a unit file's
    ``Environment=EDGE_LSTM_TRUST=`` with a variable that did not expand) must not turn them off."""
    if TRUST_ENV in os.environ and not os.environ[TRUST_ENV].strip() and getattr(args, "trust", None) is None:
        parser.error(f"${TRUST_ENV} is set but empty: set it to a public key file (KEY.pub), or unset it "
                     "to run unsigned bundles")


def _check_ranges(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for flag, low, high in (("threads", 1, MAX_THREADS), ("workers", 1, MAX_THREADS), ("reviews", 1, 1_000_000),
                            ("limit", 1, 1_000_000)):
        value = getattr(args, flag, None)
        if value is not None and not low <= value <= high:
            parser.error(f"--{flag} must be between {low} and {high:,}")


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's exit does not fail flushing it again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_ranges(parser, args)
    _check_trust(parser, args)
    restore = None if args.verbose else hide_native_stderr()
    try:
        code = args.run(args)
        flush()
        return code
    except OutputError as err:
        _detach_stdout()
        if not isinstance(err.__cause__, BrokenPipeError):  # a reader that stopped reading is no error
            print(f"error: cannot write output: {err}", file=sys.stderr)
        return EXIT_FATAL
    finally:
        if restore:
            restore()
