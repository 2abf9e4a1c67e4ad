"""What the recurrent product and a loop step cost in the interpreter; rewrites docs/product_costs.md.

    python3 scripts/product_costs.py [--rounds 5] [--dry-run]

1. A dynamic-range ``FULLY_CONNECTED`` with K = 128 inputs (the LSTM's recurrent product is
   128 -> 512), timed as a chain of such products (128 -> N -> 128, each of the same size) with M
   rows, one thread: microseconds per product and multiply-adds per second.
2. The shipped int8 loop model on 200-id test reviews (no pads: every step runs), M reviews per
   call: microseconds per review, with XNNPACK (the default) and with TFLite's own kernels.

The configurations take turns within each round (A B C ... A B C ...), each with one untimed call
first (the others evict its weights from the caches); each figure is the best round, since the
question is what the kernels can do, not what a noisy machine let them do.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_lstm.tf_setup import quiet_tensorflow  # noqa: E402

DOC = ROOT / "docs" / "product_costs.md"
K = 128
PRODUCTS = [(1, 16), (1, 128), (1, 512), (4, 512), (16, 512), (64, 512)]  # (rows M, outputs N)
CHAIN = 8  # pairs of products per model
BATCHES = (1, 4, 16)


def chain_model(rows: int, outputs: int) -> bytes:
    """``CHAIN`` pairs of dynamic-range products K -> ``outputs`` -> K on ``rows`` rows."""
    quiet_tensorflow()
    import tensorflow as tf

    rng = np.random.default_rng(0)
    up, down = (tf.constant(rng.normal(0, 0.1, shape).astype(np.float32)) for shape in ((K, outputs), (outputs, K)))

    @tf.function(input_signature=[tf.TensorSpec([rows, K], tf.float32)])
    def chain(x):
        for _ in range(CHAIN):
            x = tf.matmul(tf.matmul(x, up), down)
        return x

    converter = tf.lite.TFLiteConverter.from_concrete_functions([chain.get_concrete_function()], chain)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter._experimental_disable_per_channel = True  # noqa: SLF001 (per tensor, as the loop form)
    return converter.convert()


def timed(run: Callable[[], None], calls: int) -> float:
    """Seconds per call of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


def interpreter(model: bytes, builtin: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    extra = {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if builtin else {}
    return Interpreter(model_content=model, num_threads=1, **extra)


def product_runs() -> dict[str, Callable[[], None]]:
    runs = {}
    for rows, outputs in PRODUCTS:
        it = interpreter(chain_model(rows, outputs))
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], np.random.default_rng(1).random((rows, K), np.float32))
        runs[f"{rows}x{outputs}"] = it.invoke
    return runs


def review_runs() -> dict[str, Callable[[], None]]:
    from edge_lstm import bundle
    from edge_lstm.samples import read_sample

    tokenizer = bundle.load_tokenizer(ROOT / "export")
    rows = tokenizer.encode_batch(read_sample().texts)
    full = rows[np.count_nonzero(rows, axis=1) == rows.shape[1]]
    model = (ROOT / "export" / "model_int8_loop.tflite").read_bytes()
    runs = {}
    for builtin in (False, True):
        for batch in BATCHES:
            it = interpreter(model, builtin)
            index = it.get_input_details()[0]["index"]
            it.resize_tensor_input(index, [batch, rows.shape[1]])
            it.allocate_tensors()
            it.set_tensor(index, full[:batch])
            runs[f"{'builtin' if builtin else 'xnnpack'} {batch}"] = it.invoke
    return runs


def measure(runs: dict[str, Callable[[], None]], calls: int, rounds: int) -> dict[str, float]:
    """Best seconds per call of each run, the runs taking turns within each round."""
    for run in runs.values():
        timed(run, 3)
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            run()  # its weights back in cache after the other runs'
            best[name] = min(best[name], timed(run, calls))
    return best


def report(products: dict[str, float], reviews: dict[str, float]) -> str:
    lines = ["# What the recurrent product and a loop step cost", "",
             f"## A dynamic-range `FULLY_CONNECTED`, K = {K} inputs, one thread (XNNPACK)", "",
             "| rows M | outputs N | µs per product | G multiply-adds/s |", "|---|---|---|---|"]
    for rows, outputs in PRODUCTS:
        seconds = products[f"{rows}x{outputs}"] / (2 * CHAIN)
        lines.append(f"| {rows} | {outputs} | {seconds * 1e6:.2f} | {rows * K * outputs / seconds / 1e9:.0f} |")
    lines += ["", f"Each product timed in a chain of {2 * CHAIN} ({K} -> N -> {K}, the same multiply-adds each way), "
              "per-tensor int8 weights, float activations quantized per row.", "",
              "## The shipped int8 loop model, 200-id test reviews, M reviews per call, one thread", "",
              "| kernels | " + " | ".join(f"µs per review, M = {b}" for b in BATCHES) + " |",
              "|---|" + "---|" * len(BATCHES)]
    for kernels in ("xnnpack", "builtin"):
        cells = " | ".join(f"{reviews[f'{kernels} {b}'] / b * 1e6:.0f}" for b in BATCHES)
        lines.append(f"| {'XNNPACK (the default)' if kernels == 'xnnpack' else 'TFLite builtin'} | {cells} |")
    lines += ["", "Reviews of the shipped sample that fill the 200-id window (no pad steps). Each figure is the "
              "best of the rounds; the configurations took turns within each round. Written by "
              "`python3 scripts/product_costs.py`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dry-run", action="store_true", help="print the report instead of writing it")
    args = parser.parse_args()
    text = report(measure(product_runs(), 100, args.rounds), measure(review_runs(), 10, args.rounds))
    if args.dry_run:
        print(text)
    else:
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
