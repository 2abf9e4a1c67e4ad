"""Every TFLite form and onnxruntime side by side, interleaved in one process, text in and
probability out (tokenizing included), one thread per worker.

Per round, every contender in turn (A B C ... A B C ...): microseconds per review scored one at
a time, on real test reviews and on short ones (single sentences of at most 32 words cut from
them); reviews/s of a file with one worker and with N. Each figure is divided by the reference
contender's figure of the same round; the table shows medians of those per-round ratios, which
a noisy machine changes far less than the figures themselves.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from edge_lstm_device.bundle import manifest as bf
from edge_lstm_device.bundle.tokenizer import Tokenizer
from edge_lstm_device.runtime.scoring import MAX_BATCH

from edge_lstm.evaluate.backends import Backend, open_artifact

REFERENCE = "int8_onnx, batch 1"  # the one-at-a-time reference
FILE_REFERENCE = "int8_onnx, batch 64"  # the file-throughput reference
SHORT_WORDS = 32
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def short_reviews(texts: list[str], count: int, max_words: int = SHORT_WORDS) -> list[str]:
    """Single sentences of 3 to ``max_words`` words cut from real reviews."""
    cut = (s.strip() for t in texts for s in _SENTENCE_END.split(t.replace("<br />", " ")))
    return [s for s in cut if 3 <= len(s.split()) <= max_words][:count]


@dataclass
class Contender:
    """One way of scoring: a backend, and how many reviews it scores per call in a file."""

    name: str
    make: Callable[[], Backend]  # a fresh instance (one per worker)
    file_batch: int
    backend: Backend | None = None
    figures: dict[str, list[float]] = field(default_factory=dict)  # per measure, one value per round

    def __post_init__(self) -> None:
        self.backend = self.make()


def contenders(bundle_dir: Path, manifest: dict, file_batch: int) -> list[Contender]:
    """Every TFLite artifact (batched as the device batches it) and each ONNX artifact at batch 1
    and at ``file_batch``."""
    found = []
    for name, entry in manifest["artifacts"].items():
        if entry["format"] == "tflite":
            found.append(Contender(name, lambda n=name, e=entry: open_artifact(bundle_dir, n, e), 0))
            continue
        for batch in (1, file_batch):
            found.append(Contender(f"{name}, batch {batch}",
                                   lambda n=name, e=entry, b=batch: open_artifact(bundle_dir, n, e, batch_size=b), batch))
    return found


def _us_per_review(backend: Backend, tokenizer: Tokenizer, texts: list[str]) -> float:
    start = time.perf_counter()
    for text in texts:
        backend.score(tokenizer.encode_batch([text]))
    return (time.perf_counter() - start) / len(texts) * 1e6


def _file_rate(backends: list[Backend], tokenizer: Tokenizer, texts: list[str]) -> float:
    """Reviews/s of ``texts`` split into one share per backend, each scored in its own thread."""
    size = -(-len(texts) // len(backends))
    shares = [texts[i : i + size] for i in range(0, len(texts), size)]
    threads = [threading.Thread(target=lambda b=b, s=s: b.score(tokenizer.encode_batch(s))) for b, s in zip(backends, shares)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(texts) / (time.perf_counter() - start)


@dataclass(frozen=True)
class SideBySideOptions:
    rounds: int = 5
    reviews: int = 100  # timed one at a time, per kind, per round
    file_reviews: int = 640
    file_batch: int = 64  # onnxruntime's batch for a file
    workers: int = 2


def run(bundle_dir: Path, tokenizer: Tokenizer, texts: list[str], opts: SideBySideOptions,
        log: Callable[[str], None] = print) -> list[Contender]:
    """Measure every contender, interleaved, ``opts.rounds`` times."""
    from edge_lstm_device.bundle.manifest import read_manifest

    field_ = contenders(bundle_dir, read_manifest(bundle_dir), opts.file_batch)
    imdb, short = texts[: opts.reviews], short_reviews(texts, opts.reviews)
    files = (texts * (-(-opts.file_reviews // len(texts))))[: opts.file_reviews]
    crews = {c.name: [c.backend] + [c.make() for _ in range(opts.workers - 1)] for c in field_}
    measures: dict[str, Callable[[Contender], float]] = {
        "imdb_us": lambda c: _us_per_review(c.backend, tokenizer, imdb),
        "short_us": lambda c: _us_per_review(c.backend, tokenizer, short),
        "file_1": lambda c: _file_rate([c.backend], tokenizer, files),
        "file_n": lambda c: _file_rate(crews[c.name], tokenizer, files),
    }
    for c in field_:  # warm-up
        _us_per_review(c.backend, tokenizer, imdb[:5])
    for r in range(opts.rounds):
        log(f"round {r + 1} of {opts.rounds}")
        for c in field_:
            for key, measure in measures.items():
                c.figures.setdefault(key, []).append(measure(c))
    return field_


def ratios(field_: list[Contender]) -> list[dict]:
    """Per contender: median figures and the medians of the per-round ratios to the references."""
    by_name = {c.name: c for c in field_}
    ref, file_ref = by_name.get(REFERENCE), by_name.get(FILE_REFERENCE)
    rows = []
    for c in field_:
        row: dict = {"backend": c.name, **{k: round(statistics.median(v), 1) for k, v in c.figures.items()}}
        for key, base in (("imdb_us", ref), ("short_us", ref), ("file_1", file_ref), ("file_n", file_ref)):
            if base is not None:
                row[f"{key}_ratio"] = round(statistics.median(a / b for a, b in zip(c.figures[key], base.figures[key])), 3)
        rows.append(row)
    return rows


def markdown(rows: list[dict], opts: SideBySideOptions, counts: dict[str, int]) -> str:
    n = opts.workers
    lines = [f"| backend | IMDB review µs | × {REFERENCE} | short review µs | × {REFERENCE} | file rev/s, 1 worker "
             f"| × {FILE_REFERENCE} | file rev/s, {n} workers | × {FILE_REFERENCE} |", "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['imdb_us']:.0f} | {r.get('imdb_us_ratio', '-')} | {r['short_us']:.0f} | "
                     f"{r.get('short_us_ratio', '-')} | {r['file_1']:.0f} | {r.get('file_1_ratio', '-')} | "
                     f"{r['file_n']:.0f} | {r.get('file_n_ratio', '-')} |")
    lines.append(f"\nText in, probability out (tokenizing included), one thread per worker, {opts.rounds} rounds "
                 f"interleaved in one process; ratios are medians of per-round ratios. IMDB: {counts['imdb']} shipped "
                 f"test reviews ({counts['imdb_ids']:.0f} ids on average), one at a time; short: {counts['short']} "
                 f"sentences of at most {SHORT_WORDS} words cut from them ({counts['short_ids']:.0f} ids on average); "
                 f"file: {opts.file_reviews} test reviews. TFLite forms with a resizable batch score up to "
                 f"{MAX_BATCH} reviews per call, grouped by length; the fused forms one per call.")
    return "\n".join(lines)


TARGETS = (  # (measure, contender, largest ratio or smallest with ">=", target)
    ("imdb_us_ratio", bf.INT8_LOOP_TFLITE, "<=", 0.5),
    ("short_us_ratio", bf.INT8_LOOP_TFLITE, "<=", 0.2),
    ("file_1_ratio", bf.INT8_LOOP_TFLITE, ">=", 1.5),
)


def targets(rows: list[dict]) -> list[dict]:
    by_name = {r["backend"]: r for r in rows}
    checks = []
    for key, name, op, limit in TARGETS:
        value = by_name.get(name, {}).get(key)
        if value is not None:
            met = value <= limit if op == "<=" else value >= limit
            checks.append({"target": f"{name} {key} {op} {limit:g}", "ratio": value, "met": met})
    return checks


def id_counts(tokenizer: Tokenizer, texts: list[str], opts: SideBySideOptions) -> dict[str, float]:
    imdb, short = texts[: opts.reviews], short_reviews(texts, opts.reviews)
    real = lambda batch: float(np.mean([min(len(tokenizer.ids(t)), tokenizer.max_len) for t in batch]))  # noqa: E731
    return {"imdb": len(imdb), "short": len(short), "imdb_ids": real(imdb), "short_ids": real(short)}

