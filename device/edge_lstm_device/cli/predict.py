"""``edge-lstm-device predict``: reviews from arguments, a file or stdin, scored in chunks; each
line's prediction, or its error (the rest are still scored)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator, Sequence

from edge_lstm_device.cli.output import EXIT_FATAL, EXIT_SOME_LINES_FAILED, InputError, flush, out

if TYPE_CHECKING:
    from edge_lstm_device.runtime.pool import ModelPool

CHUNK = 256  # reviews read, scored (split across the workers) and printed together


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


def _predicted(chunk: list[Review], pool: ModelPool) -> list[tuple[Review, dict | None]]:
    """Each review with its prediction, or marked with why it has none (the model says why:
    no words, over the length limits)."""
    from edge_lstm_device.runtime.reviews import EMPTY, ReviewError

    outcomes = iter(pool.predict_each([review.text for review in chunk if review.error is None]))
    paired = []
    for review in chunk:
        outcome = None if review.error else next(outcomes)
        if isinstance(outcome, ReviewError):
            review = Review(review.source, review.text, "empty review" if outcome.kind == EMPTY else outcome.message)
        paired.append((review, outcome.to_dict() if outcome is not None and not review.error else None))
    return paired


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
    """One review's line: its prediction, or its error (``result`` None)."""
    if as_json:
        record = {"source": review.source, "model": model, **(result or {})}
        if review.error:
            record["error"] = review.error
        out(json.dumps(record, ensure_ascii=False))
    elif review.error:
        print(f"{review.source}: error: {review.error}", file=sys.stderr)
    else:
        snippet = " ".join(review.text.split())
        snippet = snippet if len(snippet) <= 60 else snippet[:57] + "..."
        out(f"{result['label']:<9} {result['probability']:.3f}  {snippet}")


def predict(args: argparse.Namespace) -> int:
    from edge_lstm_device.bundle.rollback import RollbackGuard
    from edge_lstm_device.bundle.signing import resolve_trust
    from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, BundleError
    from edge_lstm_device.runtime.pool import ModelPool

    try:
        trusted = resolve_trust(args.trust)
        guard = RollbackGuard.default(args.allow_downgrade) if trusted else None
        pool = ModelPool.load(args.bundle, args.model, args.workers, args.threads, args.interpreter, trust=trusted,
                              calibrate=not args.no_calibrate, guard=guard)
        if guard is not None and trusted is not None:  # loaded: it is the bundle this device last ran
            guard.remember(pool.first.manifest, trusted.key_id, args.bundle or REFERENCE_BUNDLE)
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    from edge_lstm_device.runtime.scoring import ModelRunError

    failed = seen = 0
    try:
        for chunk in _chunks(_raw_reviews(args.texts, args.file), CHUNK):
            chunk = _predicted(chunk, pool)
            for review, prediction in chunk:
                failed += review.error is not None
                _emit(review, prediction, args.json, pool.first.name)
            seen += len(chunk)
            flush()
    except (InputError, ModelRunError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    finally:
        pool.close()
    if not seen:
        print("error: no reviews to score: give TEXT arguments, --file FILE, or lines on stdin", file=sys.stderr)
        return EXIT_FATAL
    return EXIT_SOME_LINES_FAILED if failed else 0
