"""``edge-lstm-device``: review text to sentiment on the device (argparse: no extra dependency).

Exit codes: 0 all reviews scored; 1 the bundle or interpreter could not be loaded;
2 bad usage; 3 some input lines could not be scored (each is reported, the rest still are).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator, Sequence

from edge_lstm_device import __version__
from edge_lstm_device.connections import BODY_GRACE_S, DEFAULT_BODY_MEMORY, DEFAULT_MAX_CONNECTIONS
from edge_lstm_device.model import MODEL_ENV, NO_CALIBRATE_ENV, calibration_disabled
from edge_lstm_device.pool import MAX_WORKERS as MAX_THREADS  # threads and workers share one range
from edge_lstm_device.quiet import hide_native_stderr
from edge_lstm_device.runtime import MAX_BATCH
from edge_lstm_device.signing import TRUST_ENV, resolve_trust

if TYPE_CHECKING:
    from edge_lstm_device.calibrate import Calibration
    from edge_lstm_device.tokenizer import Tokenizer

CHUNK = 256  # reviews read, scored (split across the workers) and printed together
EXIT_FATAL, EXIT_USAGE, EXIT_SOME_LINES_FAILED = 1, 2, 3
EXIT_THRESHOLD_FAILED = 3  # verify / calibrate: a model misses the parity thresholds on this CPU

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


class InputError(Exception):
    """Reviews could not be read (a file or stdin)."""


class OutputError(Exception):
    """Results could not be written (its ``__cause__`` is the ``OSError``)."""


def _out(line: str) -> None:
    """Write one line of results to stdout; failures become ``OutputError``."""
    try:
        sys.stdout.write(line + "\n")
    except OSError as err:
        raise OutputError(err.strerror or str(err)) from err


def _flush() -> None:
    try:
        sys.stdout.flush()
    except OSError as err:
        raise OutputError(err.strerror or str(err)) from err


@dataclass(frozen=True)
class Review:
    source: str  # "arg 1", "line 7"
    text: str | None
    error: str | None = None


def _decode_lines(stream: BinaryIO, label: str) -> Iterator[Review]:
    for number, raw in enumerate(stream, start=1):
        source = f"{label} line {number}"
        try:
            text = raw.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError as err:
            yield Review(source, None, f"invalid UTF-8 at byte {err.start}")
            continue
        yield Review(source, text.replace("\x00", " "))


def _raw_reviews(texts: Sequence[str], file: str | None) -> Iterator[Review]:
    for i, text in enumerate(texts, start=1):
        yield Review(f"arg {i}", text)
    label = "stdin" if file == "-" or (file is None and not texts) else file
    if label is None:
        return
    try:
        if label == "stdin":
            if sys.stdin is None:
                raise InputError("cannot read stdin: it is closed")
            yield from _decode_lines(sys.stdin.buffer, "stdin")
        else:
            with open(file, "rb") as stream:
                yield from _decode_lines(stream, file)
    except OSError as err:
        raise InputError(f"cannot read {label}: {err.strerror or err}") from err


def _reviews(texts: Sequence[str], file: str | None) -> Iterator[Review]:
    """Every review to score; empty ones carry an error instead of a meaningless score."""
    from edge_lstm_device.tokenizer import has_words

    for review in _raw_reviews(texts, file):
        if review.error is None and not has_words(review.text):
            review = Review(review.source, review.text, "empty review")
        yield review


def _token_ids(chunk: list[Review], tokenizer: Tokenizer) -> tuple[list[Review], list[list[int]]]:
    """The chunk with over-long reviews marked as errors, and the ids of the others."""
    from edge_lstm_device.tokenizer import ReviewTooLongError

    marked, ids = [], []
    for review in chunk:
        if review.error is None:
            try:
                ids.append(tokenizer.ids(review.text))
            except ReviewTooLongError as err:
                review = Review(review.source, None, str(err))
        marked.append(review)
    return marked, ids


def _chunks(items: Iterable[Review], size: int) -> Iterator[list[Review]]:
    chunk: list[Review] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _emit(review: Review, result: dict | None, as_json: bool, model: str) -> None:
    if as_json:
        record = {"source": review.source, "model": model, **(result or {})}
        if review.error:
            record["error"] = review.error
        _out(json.dumps(record, ensure_ascii=False))
    elif review.error:
        print(f"{review.source}: error: {review.error}", file=sys.stderr)
    else:
        snippet = " ".join(review.text.split())
        snippet = snippet if len(snippet) <= 60 else snippet[:57] + "..."
        _out(f"{result['label']:<9} {result['probability']:.3f}  {snippet}")


def predict(args: argparse.Namespace) -> int:
    from edge_lstm_device.model import BundleError
    from edge_lstm_device.pool import ModelPool

    try:
        pool = ModelPool.load(args.bundle, args.model, args.workers, args.threads, args.interpreter, trust=args.trust,
                              calibrate=not args.no_calibrate)
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    from edge_lstm_device.runtime import ModelRunError

    failed = seen = 0
    try:
        for chunk in _chunks(_reviews(args.texts, args.file), CHUNK):
            chunk, ids = _token_ids(chunk, pool.first.tokenizer)
            results = iter(pool.predict_ids(ids))
            for review in chunk:
                failed += review.error is not None
                _emit(review, None if review.error else next(results).to_dict(), args.json, pool.first.name)
            seen += len(chunk)
            _flush()
    except (InputError, ModelRunError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    finally:
        pool.close()
    if not seen:
        print("error: no reviews to score: give TEXT arguments, --file FILE, or lines on stdin", file=sys.stderr)
        return EXIT_FATAL
    return EXIT_SOME_LINES_FAILED if failed else 0


def info(args: argparse.Namespace) -> int:
    from edge_lstm_device.cpu import detect
    from edge_lstm_device.interpreter import interpreter_version
    from edge_lstm_device.bundle import model_entry
    from edge_lstm_device.model import REFERENCE_BUNDLE, BundleError, SentimentModel, device_order

    try:
        trusted = resolve_trust(args.trust)
        model = SentimentModel.load(args.bundle, args.model, args.threads, args.interpreter, trust=trusted,
                                    calibrate=not args.no_calibrate)
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    dist = model.scorer.interpreter_dist
    entry = model_entry(model.manifest, model.name)
    labels = list(model.labels)
    data = {
        "bundle": str(args.bundle or "reference (shipped with edge-lstm-device)"),
        "model": model.name, "why": model.choice.reason, "file": entry["file"], "bytes": entry["bytes"],
        "precision": entry["precision"], "quantization": entry["quantization"], "lstm": entry.get("lstm", "fused"),
        "interpreter": f"{dist} {interpreter_version(dist)}", "cpu": str(detect()),
        **({"measured_here": _measured(model.choice.calibration)} if model.choice.calibration else {}),
        "device_order": device_order(model.manifest, args.bundle or REFERENCE_BUNDLE),
        "skipped": model.choice.skipped,
        "verified_in": [f"{v['interpreter']} {v['version']} ({v['machine']})" for v in entry.get("verified_in", [])],
        "vocabulary": model.tokenizer.num_words, "max_len": model.tokenizer.max_len,
        **({"labels": labels} if labels else {}),
        "signature": f"valid, by the trusted key {trusted.key_id}" if trusted else "not checked (no --trust)",
    }
    _out(json.dumps(data, indent=2) if args.json else "\n".join(f"{k:<13}{_plain(v)}" for k, v in data.items()))
    return 0


def verify(args: argparse.Namespace) -> int:
    from edge_lstm_device.model import BundleError
    from edge_lstm_device.verify import table, verify_bundle

    try:
        result = verify_bundle(args.bundle, args.only, args.interpreter, args.threads, resolve_trust(args.trust),
                               limit=args.limit)
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    _out(json.dumps(result.to_dict(), indent=2) if args.json else table(result))
    return 0 if result.passed else EXIT_THRESHOLD_FAILED


def calibrate(args: argparse.Namespace) -> int:
    from edge_lstm_device.calibrate import CalibrationError
    from edge_lstm_device.model import BundleError, recalibrate

    try:
        model = recalibrate(args.bundle, args.threads, args.interpreter, trust=resolve_trust(args.trust))
    except CalibrationError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_THRESHOLD_FAILED
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    calibration = model.choice.calibration
    _out(json.dumps(calibration.to_dict(), indent=2) if args.json else calibration_table(calibration))
    return 0


def calibration_table(calibration: Calibration) -> str:
    from edge_lstm_device.cpu import CpuFeatures

    lines = [f"{'model':<22}{'time':>7}  verdict"]
    for name, relative in calibration.relative_time.items():
        verdict = "CHOSEN" if name == calibration.chosen else calibration.skipped.get(name, "-")
        lines.append(f"{name:<22}{relative:>6.2f}×  {verdict}")
    env = calibration.environment
    lines += [f"time: each model's time ÷ the fastest's, one review at a time, median of interleaved rounds",
              f"CPU: {CpuFeatures(**env['cpu'])}; interpreter: {env['interpreter']}; {calibration.seconds:.2f} s",
              f"{calibration.chosen}: {calibration.reason}"]
    return "\n".join(lines)


def _measured(calibration: Calibration) -> dict:
    """Each model's time here relative to the fastest's, and its verdict where it was verified."""
    return {name: f"{relative:.2f}× the time" + (
        "" if name not in calibration.verdicts else
        ", verify passed" if calibration.verdicts[name]["passed"] else ", verify FAILED")
        for name, relative in calibration.relative_time.items()}


def _plain(value: object) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def bench(args: argparse.Namespace) -> int:
    if args.serve:  # load-test a running server instead
        from edge_lstm_device.loadtest import main as load_test

        extra = [*(["--pid", str(args.pid)] if args.pid else []), *(["--json"] if args.json else []),
                 *(["--token-file", str(args.token_file)] if args.token_file else [])]
        return load_test(["--url", args.serve, "--clients", str(args.clients), "--requests", str(args.requests), *extra])
    from edge_lstm_device.bench import BenchError, run_bench
    from edge_lstm_device.bundle import BundleError

    try:
        report, table, code = run_bench(args)
    except (BundleError, BenchError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    _out(json.dumps(report, indent=2) if args.json else table)
    return code


def serve(args: argparse.Namespace) -> int:
    from edge_lstm_device.serve import run_serve

    return run_serve(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-lstm-device", description="IMDB review sentiment with a TFLite model (numpy + a TFLite interpreter).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{predict,info,verify,calibrate,bench,serve}")
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
    p = verbs.add_parser("predict", parents=[common], help="score reviews given as arguments, --file or stdin",
                         description="Score reviews: arguments, or one review per line from --file / stdin.",
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="review text(s)")
    p.add_argument("--file", default=None, help="read one review per line from FILE ('-' for stdin)")
    p.add_argument("--workers", type=int, default=None,
                   help="interpreters scoring in parallel (default: one per core, at most 4)")
    p.set_defaults(run=predict)
    verbs.add_parser("info", parents=[common], help="show the bundle, model and interpreter in use, and why").set_defaults(run=info)
    v = _verb(verbs, common, "verify", VERIFY_HELP)
    v.add_argument("--only", action="append", default=[], metavar="MODEL", help="verify only this model (repeatable)")
    v.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N texts of each reference set (a slow CPU's quicker check; default: all)")
    v.set_defaults(run=verify)
    _verb(verbs, common, "calibrate", CALIBRATE_HELP).set_defaults(run=calibrate)
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
    s.set_defaults(run=serve)
    return parser


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


def _verb(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str,
          text: tuple[str, str, tuple[str, ...]]) -> argparse.ArgumentParser:
    """A verb's parser from its (help, description, examples)."""
    summary, description, examples = text
    return verbs.add_parser(name, parents=[common], help=summary, description=description,
                            epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
                            formatter_class=argparse.RawDescriptionHelpFormatter)


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
    parser = _parser()
    args = parser.parse_args(argv)
    _check_ranges(parser, args)
    _check_trust(parser, args)
    restore = None if args.verbose else hide_native_stderr()
    try:
        code = args.run(args)
        _flush()
        return code
    except OutputError as err:
        _detach_stdout()
        if not isinstance(err.__cause__, BrokenPipeError):  # a reader that stopped reading is no error
            print(f"error: cannot write output: {err}", file=sys.stderr)
        return EXIT_FATAL
    finally:
        if restore:
            restore()


if __name__ == "__main__":
    sys.exit(main())
