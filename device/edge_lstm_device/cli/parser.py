"""The ``edge-lstm-device`` command line: the options every verb shares, and each verb's own."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge_lstm_device import __version__
from edge_lstm_device.bundle.signing import TRUST_ENV
from edge_lstm_device.cli.checks import calibrate, info, verify
from edge_lstm_device.cli.predict import predict
from edge_lstm_device.cli.run import bench, serve
from edge_lstm_device.runtime.model import MODEL_ENV, NO_CALIBRATE_ENV, calibration_disabled
from edge_lstm_device.runtime.pool import MAX_WORKERS as MAX_THREADS  # threads and workers share one range
from edge_lstm_device.runtime.scoring import MAX_BATCH
from edge_lstm_device.serving.connections import BODY_GRACE_S, DEFAULT_BODY_MEMORY, DEFAULT_MAX_CONNECTIONS

EXAMPLES = """examples:
  edge-lstm-device predict "What a wonderful film" "Dull, predictable and badly acted"
  edge-lstm-device predict --file reviews.txt --json       # one review per line
  cat reviews.txt | edge-lstm-device predict --json        # stdin, one review per line
  edge-lstm-device predict --bundle ./export --model float_tflite "Great cast"
  edge-lstm-device info                                    # which model runs, and why
  edge-lstm-device bench                                   # rank the models on this CPU
  edge-lstm-device info --bundle ./export --trust edge.pub # run it only if signed by this key

The default model is the fastest the export measured that this interpreter can load;
EDGE_LSTM_MODEL=NAME (or --model NAME) picks another. EDGE_LSTM_TRUST=KEY.pub (or --trust KEY.pub)
refuses every bundle that is not signed by that key (edge-lstm sign).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-lstm-device", description="IMDB review sentiment with a TFLite model (numpy + a TFLite interpreter).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{predict,info,verify,calibrate,bench,serve}")
    common = _common_options()
    _add_predict(verbs, common)
    verbs.add_parser("info", parents=[common], help="show the bundle, model and interpreter in use, and why").set_defaults(run=info)
    v = _verb(verbs, common, "verify", VERIFY_HELP)
    v.add_argument("--only", action="append", default=[], metavar="MODEL", help="verify only this model (repeatable)")
    v.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N texts of each reference set (a slow CPU's quicker check; default: all)")
    v.set_defaults(run=verify)
    _verb(verbs, common, "calibrate", CALIBRATE_HELP).set_defaults(run=calibrate)
    _add_bench(verbs, common)
    _add_serve(verbs, common)
    return parser


def _common_options() -> argparse.ArgumentParser:
    """The options every verb takes: which bundle and model, how it runs, how it answers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bundle", type=Path, default=None,
                        help="exported bundle folder (default: the reference bundle shipped with this package)")
    common.add_argument("--model", default=os.environ.get(MODEL_ENV) or None,
                        help="TFLite model of the bundle, e.g. int8_loop_tflite, int8_tflite (default: "
                             f"${MODEL_ENV}, else the fastest in the manifest's device_order that loads)")
    common.add_argument("--threads", type=int, default=1, help=f"threads per interpreter, 1-{MAX_THREADS} (default: 1)")
    common.add_argument("--interpreter", choices=["ai-edge-litert", "tflite-runtime", "tensorflow", "numpy"], default=None,
                        help="force one TFLite interpreter (default: the first installed, in that order)")
    common.add_argument("--trust", type=Path, metavar="KEY.pub", default=os.environ.get(TRUST_ENV, "").strip() or None,
                        help="run only bundles whose manifest.sig is a valid signature by this ed25519 public key "
                             f"(edge-lstm keygen; needs pip install ./device[signing]; default: ${TRUST_ENV})")
    common.add_argument("--no-calibrate", action="store_true", default=calibration_disabled(),
                        help="run the first model of the manifest's device_order that loads, without measuring "
                             f"on this CPU (default: calibrate once per environment; ${NO_CALIBRATE_ENV}=1 sets this)")
    common.add_argument("--json", action="store_true", help="JSON output (predict: one object per review)")
    common.add_argument("--verbose", action="store_true", help="also show what the interpreter prints from C++")
    return common


def _add_predict(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = verbs.add_parser("predict", parents=[common], help="score reviews given as arguments, --file or stdin",
                         description="Score reviews: arguments, or one review per line from --file / stdin.",
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="review text(s)")
    p.add_argument("--file", default=None, help="read one review per line from FILE ('-' for stdin)")
    p.add_argument("--workers", type=int, default=None,
                   help="interpreters scoring in parallel (default: one per core, at most 4)")
    _allow_downgrade(p)
    p.set_defaults(run=predict)


def _add_bench(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    b = verbs.add_parser("bench", parents=[common], help="start-up time, peak memory and per-review latency")
    b.add_argument("--reviews", type=int, default=200, help="reviews timed per model (default: 200)")
    b.add_argument("--workers", type=int, default=None,
                   help="also measure reviews/s with this many parallel interpreters (default: one per core, at most 4)")
    b.add_argument("--serve", metavar="URL", default=None,
                   help="load-test a running 'edge-lstm-device serve' at URL instead (docs/serve.md)")
    b.add_argument("--clients", type=int, default=32, help="with --serve: concurrent clients (default: 32)")
    b.add_argument("--requests", type=int, default=10_000, help="with --serve: requests in all (default: 10000)")
    b.add_argument("--pid", type=int, default=None, help="with --serve: the server's pid, to report its memory")
    b.add_argument("--token-file", type=Path, default=None, help="with --serve: send this bearer token")
    b.set_defaults(run=bench)


def _add_serve(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    s = verbs.add_parser("serve", parents=[common], help="answer predictions over HTTP (JSON, keep-alive)",
                         description="Serve the model over HTTP (docs/serve.md): POST /v1/predict {\"texts\": [...]},\n"
                                     "GET /v1/health, GET /v1/info, GET /metrics (Prometheus), GET / (a demo page).\n"
                                     "Prints the URL on start (--json: as JSON); SIGHUP reloads the bundle; stops\n"
                                     "accepting on SIGTERM/SIGINT, finishes the requests in flight and exits 0.",
                         epilog="examples:\n  edge-lstm-device serve --workers 2\n"
                                "  edge-lstm-device serve --host 0.0.0.0 --token-file /etc/edge-lstm/token\n"
                                "  curl -s localhost:8080/v1/predict -H 'Content-Type: application/json' "
                                "-d '{\"texts\": [\"Great cast\"]}'",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 exposes it)")
    s.add_argument("--port", type=int, default=8080, help="TCP port, 0 for any free one (default: 8080)")
    s.add_argument("--workers", type=int, default=None,
                   help="interpreters answering in parallel (default: one per core, at most 4)")
    s.add_argument("--token-file", type=Path, default=None,
                   help="require 'Authorization: Bearer TOKEN', TOKEN being this file's content")
    s.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body (default: 1048576)")
    s.add_argument("--max-texts", type=int, default=64, help="most reviews per request (default: 64)")
    s.add_argument("--max-chars", type=int, default=100_000, help="longest review, in characters (default: 100000)")
    s.add_argument("--max-batch", type=int, default=MAX_BATCH, metavar="N",
                   help=f"most reviews of concurrent requests scored in one interpreter call, 1-{MAX_BATCH} "
                        f"(default: {MAX_BATCH}; 1: every request alone, no waiting)")
    s.add_argument("--batch-window-ms", type=float, default=1.0, metavar="MS",
                   help="how long a batch waits for more requests after its first (default: 1.0; "
                        "0: only those already waiting)")
    s.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                   help=f"open connections at most (default: {DEFAULT_MAX_CONNECTIONS}); when all are "
                        "taken, a new one replaces the connection waiting or reading a body longest, else "
                        "gets a quick 503; the open-files limit (ulimit -n) is raised to fit")
    s.add_argument("--max-body-memory", type=int, default=DEFAULT_BODY_MEMORY, metavar="BYTES",
                   help=f"request bodies held at once, in bytes (default: {DEFAULT_BODY_MEMORY}); past it a "
                        "new body gets a 503, after the longest-reading upload is dropped if it took over "
                        f"{BODY_GRACE_S:g} s")
    s.add_argument("--allowed-hosts", default=None, metavar="NAMES",
                   help="without --token-file, answer only requests whose Host is an IP address, localhost, "
                        "this machine's name (and NAME.local) or one of these comma-separated names; '*': any "
                        "(a guard against DNS rebinding; a foreign Host gets 421)")
    s.add_argument("--quiet", action="store_true", help="no access log (one line per request on stderr)")
    _allow_downgrade(s)
    s.set_defaults(run=serve)


VERIFY_HELP = (
    "check every model against the float model's scores, on this CPU",
    "Score the bundle's reference texts (whole IMDB test reviews and short texts) with\n"
    "every TFLite model this interpreter loads, on this CPU, against the float model's\n"
    "scores the export stored, with the thresholds of 'edge-lstm parity'.\n"
    "Exit codes: 0 every model meets the parity thresholds, 3 one misses them,\n"
    "1 the bundle cannot be read.",
    ("edge-lstm-device verify", "edge-lstm-device verify --bundle ./export --json",
     "edge-lstm-device verify --only int8_loop_tflite"))
CALIBRATE_HELP = (
    "measure again which model runs on this CPU",
    "Time the bundle's models against each other on this CPU (interleaved rounds),\n"
    "verify them fastest first, and make the first that meets the parity thresholds\n"
    "the model predict, info and serve run here (remembered per bundle, interpreter\n"
    "and CPU). Runs by itself on first use; this command measures again.\n"
    "Exit codes: 0 a model was chosen, 3 no model passes on this CPU, 1 an error.",
    ("edge-lstm-device calibrate", "edge-lstm-device calibrate --bundle ./export --json"))


def _allow_downgrade(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-downgrade", action="store_true",
                        help="with a trusted key, run a bundle whose bundle_version is older than that of the "
                             "last bundle this device ran under that key (it becomes the new floor)")


def _verb(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str,
          text: tuple[str, str, tuple[str, ...]]) -> argparse.ArgumentParser:
    """A verb's parser from its (help, description, examples)."""
    summary, description, examples = text
    return verbs.add_parser(name, parents=[common], help=summary, description=description,
                            epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
