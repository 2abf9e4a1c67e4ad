"""``bench`` (the bundle's models ranked on this CPU, or a load test of a running server) and
``serve``."""

from __future__ import annotations

import argparse
import json
import sys

from edge_lstm_device.cli.output import EXIT_FATAL, out


def bench(args: argparse.Namespace) -> int:
    if args.serve:  # load-test a running server instead
        from edge_lstm_device.tools.loadtest import main as load_test

        extra = [*(["--pid", str(args.pid)] if args.pid else []), *(["--json"] if args.json else []),
                 *(["--token-file", str(args.token_file)] if args.token_file else [])]
        return load_test(["--url", args.serve, "--clients", str(args.clients), "--requests", str(args.requests), *extra])
    from edge_lstm_device.bundle.manifest import BundleError
    from edge_lstm_device.tools.bench import BenchError, run_bench

    try:
        report, table, code = run_bench(args)
    except (BundleError, BenchError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    out(json.dumps(report, indent=2) if args.json else table)
    return code


def serve(args: argparse.Namespace) -> int:
    from edge_lstm_device.serving.app import run_serve

    return run_serve(args)
