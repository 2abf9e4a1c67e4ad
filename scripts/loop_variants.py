"""Compare TFLite forms of the reference LSTM; rewrites docs/loop_variants.md.

    python3 scripts/loop_variants.py ../shared/data/aclImdb_train_test.tar.gz [--limit 5000]

Per variant: file size, memory the interpreter allocates, latency at batch 1 on one thread on
real test reviews (alone, and while a second process runs the same model) and on short ones
(single sentences cut from them), microseconds per review in batches of 16 (forms with a
resizable batch), and agreement with the float Keras model on a balanced subset of the IMDB
test split. Latencies of one variant are measured in one stretch; compare forms by the ratios of
the report, which a noisy machine disturbs less than the milliseconds.

The exporter writes only the shipped loop form; the others are built here: other LSTM cells
(subclasses of ``LstmCell``), every step run from the zero state (the stacked layers' loop, which
runs an unmasked model's every step), and a ``STRIDED_SLICE`` per step (``lstm_loop.block_steps``
replaced in the converting child). The input projection inside the loop is no longer built; its
figures are in docs/decisions/loop-form.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_lstm.export.cells import LstmCell, State  # noqa: E402
from edge_lstm.tf_setup import quiet_tensorflow  # noqa: E402

VARIANTS = [  # (name, lstm form, scheme, options: LoopForm's, and "cell", "every_step", "strided" below)
    ("fused float", "fused", "float", {}),
    ("fused full-integer int8", "fused", "full-integer", {}),
    ("fused dynamic-range int8", "fused", "dynamic-range", {}),
    ("loop dynamic-range, length-aware, 4 steps/iteration (shipped)", "loop", "dynamic-range", {}),
    ("loop dynamic-range, all 200 steps (no pad table)", "loop", "dynamic-range", {"every_step": True}),
    ("loop dynamic-range, length-aware, a STRIDED_SLICE per step instead of UNPACK", "loop", "dynamic-range", {"strided": True}),
    ("loop dynamic-range, length-aware, sigmoid and tanh of all gates at once", "loop", "dynamic-range", {"cell": "whole"}),
    ("loop dynamic-range, length-aware, one sigmoid (tanh as 2 sigmoid(2x) - 1)", "loop", "dynamic-range", {"cell": "one-sigmoid"}),
    ("loop dynamic-range, length-aware, 1 step/iteration", "loop", "dynamic-range", {"steps_per_iteration": 1}),
    ("loop dynamic-range, length-aware, 8 steps/iteration", "loop", "dynamic-range", {"steps_per_iteration": 8}),
    ("fully unrolled dynamic-range, all 200 steps in one iteration", "loop", "dynamic-range", {"steps_per_iteration": 200, "every_step": True}),
    ("loop dynamic-range, per-channel, length-aware", "loop", "dynamic-range-per-channel", {}),
    ("loop full-integer int8 (int8 activations), length-aware", "loop", "full-integer", {}),
    ("loop float, length-aware", "loop", "float", {}),
]
CALLS = 300
BATCH = 16


class WholeGatesCell(LstmCell):
    """The LSTM step with the sigmoid and the tanh of all four gates at once (two ops, each over
    every gate, instead of one per gate)."""

    def tf_step(self) -> Any:
        import tensorflow as tf

        recurrent = tf.constant(self.recurrent)

        def step(projected: Any, state: State) -> State:
            h, c = state
            z = projected + tf.matmul(h, recurrent)
            s_i, s_f, _, s_o = tf.split(tf.sigmoid(z), 4, axis=1)
            c = s_f * c + s_i * tf.split(tf.tanh(z), 4, axis=1)[2]
            return s_o * tf.tanh(c), c

        return step


class OneSigmoidCell(LstmCell):
    """The LSTM step with one sigmoid of all gates: the candidate's tanh as 2σ(2x) − 1, its
    columns of the weights doubled (the pad-state table's float64 step undoes the doubling)."""

    def _scale(self) -> np.ndarray:
        scale = np.ones(4 * self.units, np.float32)
        scale[2 * self.units : 3 * self.units] = 2.0
        return scale

    def projection(self) -> tuple[np.ndarray, np.ndarray]:
        return self.kernel * self._scale(), self.bias * self._scale()

    def step64(self, projected: np.ndarray, state: State) -> State:
        return super().step64(projected / self._scale(), state)

    def tf_step(self) -> Any:
        import tensorflow as tf

        recurrent = tf.constant(self.recurrent * self._scale())

        def step(projected: Any, state: State) -> State:
            h, c = state
            s_i, s_f, s_c, s_o = tf.split(tf.sigmoid(projected + tf.matmul(h, recurrent)), 4, axis=1)
            c = s_f * c + s_i * (2.0 * s_c - 1.0)
            return s_o * tf.tanh(c), c

        return step


LSTM_CELLS = {"whole": WholeGatesCell, "one-sigmoid": OneSigmoidCell}


def _strided_steps(block_tensor: Any) -> list[Any]:
    """A block's steps as one ``STRIDED_SLICE`` each (instead of ``lstm_loop.block_steps``' ``UNPACK``)."""
    return [block_tensor[j] for j in range(block_tensor.shape[0])]


def _loop_file(model: Any, scheme: str, options: dict, calibration: np.ndarray) -> bytes:
    """The loop form of ``options``: ``cell`` an LSTM cell of ``LSTM_CELLS``; ``every_step``: each row
    runs all 200 steps from the zero state (the stacked layers' loop); ``strided``: a
    ``STRIDED_SLICE`` per step; the rest ``LoopForm``'s."""
    from edge_lstm.export import lstm_loop

    options = dict(options)
    cell, every_step = LSTM_CELLS.get(options.pop("cell", ""), LstmCell), options.pop("every_step", False)
    if options.pop("strided", False):
        lstm_loop.block_steps = _strided_steps  # this process converts one variant only
    m = lstm_loop.LoopModel.from_model(model)
    m = dataclasses.replace(m, layers=tuple(
        dataclasses.replace(layer, cells=tuple(cell(c.kernel, c.recurrent, c.bias) for c in layer.cells))
        for layer in m.layers))
    build = lstm_loop.stacked_function if every_step else lstm_loop.loop_function
    return lstm_loop.convert_loop(build(m, 200, lstm_loop.LoopForm(**options)), scheme, lambda: iter(calibration))


def _build(bundle_dir: Path, form: str, scheme: str, options: dict, calibration: np.ndarray) -> bytes:
    quiet_tensorflow()
    from edge_lstm import bundle
    from edge_lstm.export import convert, quantize

    model = bundle.load_model(bundle_dir)
    if form == "loop":
        return _loop_file(model, scheme, options, calibration)
    if scheme == "float":
        return convert.to_tflite_float(model, 200)
    return quantize.to_tflite_int8(model, 200, scheme, lambda: iter(calibration))


def build_isolated(bundle_dir: Path, form: str, scheme: str, options: dict, calibration: np.ndarray) -> bytes:
    """Convert in a child process: the converter can crash (a segfault) on some forms."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(_build, bundle_dir, form, scheme, options, calibration).result()
        except BrokenProcessPool as err:
            raise ConversionCrashed("the converter crashed (the process died)") from err


class ConversionCrashed(RuntimeError):
    """The TFLite converter killed its process."""


def _spin(content: bytes, row: np.ndarray, ready, stop) -> None:
    from edge_lstm_device.runtime.scoring import TFLiteScorer

    scorer = TFLiteScorer(content)
    scorer.score(row)
    ready.set()
    while not stop.is_set():
        scorer.score(row)


def _batched_us(content: bytes, rows: np.ndarray) -> float | None:
    """Microseconds per review scored ``BATCH`` per call (None: the form takes one review per call)."""
    from edge_lstm_device.runtime.scoring import TFLiteScorer

    scorer = TFLiteScorer(content, max_batch=BATCH)
    if scorer.max_batch == 1:
        return None
    part = rows[: 20 * BATCH]
    scorer.score(part[:BATCH])
    start = time.perf_counter()
    scorer.score(part)
    return (time.perf_counter() - start) / len(part) * 1e6


def _latency(content: bytes, rows: np.ndarray, contended: bool) -> float:
    from edge_lstm_device.runtime.scoring import TFLiteScorer
    from edge_lstm_device.tools.timing import time_calls

    scorer = TFLiteScorer(content)
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    other = context.Process(target=_spin, args=(content, rows[:1], ready, stop)) if contended else None
    if other:
        other.start()
        ready.wait(timeout=120)  # the second interpreter is loaded and running
        time.sleep(0.5)
    try:
        return time_calls(lambda i: scorer.score(rows[i % len(rows)][None, :]), CALLS).median
    finally:
        if other:
            stop.set()
            other.join()


def _resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def _allocated_in_child(content: bytes) -> float:
    from edge_lstm_device.runtime.scoring import TFLiteScorer  # imported before the baseline

    before = _resident_mb()
    scorer = TFLiteScorer(content)
    scorer.score(np.ones((1, 200), np.int32))
    return _resident_mb() - before


def _allocated_mb(content: bytes) -> float:
    """Memory one interpreter of the file takes, measured in a fresh process."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_allocated_in_child, content).result()


def measure(content: bytes, rows: np.ndarray, short_rows: np.ndarray, labels: np.ndarray, reference: np.ndarray,
            short_reference: np.ndarray) -> dict:
    from edge_lstm_device.runtime.scoring import TFLiteScorer

    scores = TFLiteScorer(content).score(rows)
    short_scores = TFLiteScorer(content).score(short_rows)
    agree = float(np.mean((scores >= 0.5) == (reference >= 0.5)))
    change = float(np.mean((scores >= 0.5) == labels) - np.mean((reference >= 0.5) == labels))
    return {"kib": len(content) / 1024, "alloc_mb": _allocated_mb(content),
            "alone_ms": _latency(content, rows, False), "contended_ms": _latency(content, rows, True),
            "short_ms": _latency(content, short_rows, False), "batched_us": _batched_us(content, rows),
            "agreement": agree, "accuracy_change": change, "max_diff": float(np.max(np.abs(scores - reference))),
            "short_agreement": float(np.mean((short_scores >= 0.5) == (short_reference >= 0.5)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="IMDB .tar.gz or folder")
    parser.add_argument("--bundle", type=Path, default=ROOT / "export")
    parser.add_argument("--limit", type=int, default=5000, help="balanced test reviews (default: 5000)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "loop_variants.md")
    args = parser.parse_args()
    quiet_tensorflow()
    from edge_lstm import bundle
    from edge_lstm.evaluate.sidebyside import short_reviews
    from edge_lstm.export.convert import ConversionError
    from edge_lstm.samples import TRAIN_SAMPLE, read_sample
    from edge_lstm.train.data import load_imdb

    model, tokenizer = bundle.load_model(args.bundle), bundle.load_tokenizer(args.bundle)
    test = load_imdb(args.data, ("test",))["test"].balanced(args.limit, 0)
    rows = tokenizer.encode_batch(test.texts)
    short_rows = tokenizer.encode_batch(short_reviews(test.texts, 5000))
    reference = model.predict(rows, batch_size=256, verbose=0).reshape(-1)
    short_reference = model.predict(short_rows, batch_size=256, verbose=0).reshape(-1)
    calibration = tokenizer.encode_batch(read_sample(TRAIN_SAMPLE).balanced(400, 0).texts)
    lines = ["| form | KiB | allocated MB | p50 ms alone | p50 ms, 2nd process busy | p50 ms, short review "
             f"| µs/review, {BATCH} per call | labels agree | Δacc (points) | max \\|Δp\\| | labels agree, short |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, form, scheme, options in VARIANTS:
        print(f"measuring {name}", file=sys.stderr)
        try:
            m = measure(build_isolated(args.bundle, form, scheme, options, calibration), rows, short_rows, test.labels,
                        reference, short_reference)
        except (ConversionError, ConversionCrashed) as err:
            lines.append(f"| {name} | conversion failed: {str(err).splitlines()[0][:80]} | | | | | | | | | |")
            continue
        batched = "-" if m["batched_us"] is None else f"{m['batched_us']:.0f}"
        lines.append(f"| {name} | {m['kib']:.0f} | {m['alloc_mb']:.1f} | {m['alone_ms']:.3f} | {m['contended_ms']:.3f} "
                     f"| {m['short_ms']:.3f} | {batched} | {m['agreement']:.3%} | {m['accuracy_change'] * 100:+.2f} "
                     f"| {m['max_diff']:.3f} | {m['short_agreement']:.2%} |")
    lines.append(f"\n{len(rows)} balanced IMDB test reviews ({np.count_nonzero(rows) / len(rows):.0f} ids on average), "
                 f"{len(short_rows)} short ones (single sentences of at most 32 words cut from them, "
                 f"{np.count_nonzero(short_rows) / len(short_rows):.0f} ids); latency: batch 1, one thread, {CALLS} "
                 "reviews after warm-up, ids in, probability out, ai-edge-litert, on the machine that ran "
                 "`python3 scripts/loop_variants.py`.")
    args.out.write_text("# TFLite forms of the LSTM, side by side\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
