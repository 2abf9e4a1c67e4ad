"""``edge-lstm-device``: review text to sentiment on the device (argparse: no extra dependency).

Exit codes: 0 all reviews scored; 1 the bundle or interpreter could not be loaded;
2 bad usage; 3 some input lines could not be scored (each is reported, the rest still are).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Sequence

from edge_lstm_device import __version__

CHUNK = 64
EXIT_FATAL, EXIT_USAGE, EXIT_SOME_LINES_FAILED = 1, 2, 3

EXAMPLES = """examples:
  edge-lstm-device predict "What a wonderful film" "Dull, predictable and badly acted"
  edge-lstm-device predict --file reviews.txt --json       # one review per line
  cat reviews.txt | edge-lstm-device predict --json        # stdin, one review per line
  edge-lstm-device predict --bundle ./export --model float_tflite "Great cast"
  edge-lstm-device info                                    # what is loaded, from where
  edge-lstm-device bench                                   # start-up, memory, latency
"""


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
    if file == "-" or (file is None and not texts):
        yield from _decode_lines(sys.stdin.buffer, "stdin")
    elif file is not None:
        with open(file, "rb") as stream:
            yield from _decode_lines(stream, file)


def _reviews(texts: Sequence[str], file: str | None) -> Iterator[Review]:
    """Every review to score; empty ones carry an error instead of a meaningless score."""
    for review in _raw_reviews(texts, file):
        if review.error is None and not review.text.strip():
            review = Review(review.source, review.text, "empty review")
        yield review


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
        print(json.dumps(record, ensure_ascii=False), flush=False)
    elif review.error:
        print(f"{review.source}: error: {review.error}", file=sys.stderr)
    else:
        snippet = " ".join(review.text.split())
        snippet = snippet if len(snippet) <= 60 else snippet[:57] + "..."
        print(f"{result['label']:<9} {result['probability']:.3f}  {snippet}")


def predict(args: argparse.Namespace) -> int:
    from edge_lstm_device.model import BundleError, SentimentModel

    try:
        model = SentimentModel.load(args.bundle, args.model, args.threads, args.interpreter)
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    failed = 0
    try:
        for chunk in _chunks(_reviews(args.texts, args.file), CHUNK):
            good = [r for r in chunk if r.error is None]
            results = iter(model.predict_batch([r.text for r in good]))
            for review in chunk:
                failed += review.error is not None
                _emit(review, None if review.error else next(results).to_dict(), args.json, model.name)
            sys.stdout.flush()
    except OSError as err:
        print(f"error: cannot read {args.file}: {err.strerror or err}", file=sys.stderr)
        return EXIT_FATAL
    return EXIT_SOME_LINES_FAILED if failed else 0


def info(args: argparse.Namespace) -> int:
    from edge_lstm_device.interpreter import interpreter_version
    from edge_lstm_device.model import BundleError, SentimentModel

    try:
        model = SentimentModel.load(args.bundle, args.model, args.threads, args.interpreter)
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    dist = model.scorer.interpreter_dist
    entry = model.manifest["artifacts"][model.name]
    data = {
        "bundle": str(args.bundle or "reference (shipped with edge-lstm-device)"),
        "model": model.name, "file": entry["file"], "bytes": entry["bytes"],
        "precision": entry["precision"], "quantization": entry["quantization"],
        "interpreter": f"{dist} {interpreter_version(dist)}",
        "vocabulary": model.tokenizer.num_words, "max_len": model.tokenizer.max_len,
    }
    print(json.dumps(data, indent=2) if args.json else "\n".join(f"{k:<13}{v}" for k, v in data.items()))
    return 0


def bench(args: argparse.Namespace) -> int:
    from edge_lstm_device.bench import run_bench

    return run_bench(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-lstm-device", description="IMDB review sentiment with a TFLite model (numpy + a TFLite interpreter).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{predict,info,bench}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bundle", type=Path, default=None,
                        help="exported bundle folder (default: the reference bundle shipped with this package)")
    common.add_argument("--model", default=None,
                        help="TFLite model of the bundle, e.g. int8_tflite, float_tflite (default: the manifest's device_default)")
    common.add_argument("--threads", type=int, default=1, help="interpreter threads (default: 1)")
    common.add_argument("--interpreter", choices=["ai-edge-litert", "tflite-runtime", "tensorflow"], default=None,
                        help="force one TFLite interpreter (default: the first installed, in that order)")
    common.add_argument("--json", action="store_true", help="JSON output (predict: one object per review)")
    p = verbs.add_parser("predict", parents=[common], help="score reviews given as arguments, --file or stdin",
                         description="Score reviews: arguments, or one review per line from --file / stdin.",
                         epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="review text(s)")
    p.add_argument("--file", default=None, help="read one review per line from FILE ('-' for stdin)")
    p.set_defaults(run=predict)
    verbs.add_parser("info", parents=[common], help="show the bundle, model and interpreter in use").set_defaults(run=info)
    b = verbs.add_parser("bench", parents=[common], help="start-up time, peak memory and per-review latency")
    b.add_argument("--reviews", type=int, default=200, help="reviews timed per model (default: 200)")
    b.set_defaults(run=bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads < 1:
        _parser().error("--threads must be >= 1")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
