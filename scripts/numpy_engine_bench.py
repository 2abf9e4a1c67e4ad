"""The numpy engine against the int8 loop TFLite model on this machine: agreement, speed, memory.

    OPENBLAS_NUM_THREADS=1 python3 scripts/numpy_engine_bench.py [--rounds 7] [--reviews 100]

1. Agreement with the float Keras model (labels, |Δp|) on the 300 shipped test reviews and on
   one-sentence reviews cut from them, for the int8 loop TFLite model and the numpy engine on the
   reference bundle's ``model_numpy.npz`` (float and int8 arithmetic).
2. Speed, text in → probability out (tokenizing included), interleaved in one process: per round
   the TFLite model, then each numpy arithmetic, one review at a time over ``--reviews`` test
   reviews, then the 300 reviews as one file (``predict_batch``). Each round's figure is divided by
   the TFLite model's of the same round; the medians of those ratios are printed.
3. Peak RSS of a fresh process that loads the bundle's model and scores one review (device
   package only: no TensorFlow in that process).

One BLAS thread (``OPENBLAS_NUM_THREADS=1``) matches the interpreter's one thread; on this shared
2-core machine, OpenBLAS's own threads made the engine 2-3 times slower.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "device")]

from edge_lstm_device.bundle.manifest import NUMPY_WEIGHTS, read_verified  # noqa: E402
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, SentimentModel  # noqa: E402
from edge_lstm_device.runtime.numpy_engine.engine import NumpyScorer  # noqa: E402

ARITHMETICS = ("float", "int8")
RSS_PROBE = """
import sys
sys.path[:0] = {paths!r}
from edge_lstm_device.runtime.model import SentimentModel
{load}
model.predict("A wonderful, moving film with a brilliant cast. I loved every minute of it.")
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024)
"""  # (VmHWM, not ru_maxrss: Linux carries the parent's peak over fork and exec into ru_maxrss)


def numpy_model(tflite: SentimentModel, arithmetic: str) -> SentimentModel:
    weights = read_verified(REFERENCE_BUNDLE, tflite.manifest[NUMPY_WEIGHTS])
    return SentimentModel(tflite.tokenizer, NumpyScorer(weights, arithmetic=arithmetic), f"numpy ({arithmetic})",
                          tflite.manifest)


def agreement(models: dict[str, SentimentModel]) -> None:
    from edge_lstm import bundle
    from edge_lstm.evaluate.sidebyside import short_reviews
    from edge_lstm.samples import TEST_SAMPLE, read_sample
    from edge_lstm.tf_setup import quiet_tensorflow

    quiet_tensorflow()
    keras = bundle.load_model(ROOT / "export")
    texts = read_sample(TEST_SAMPLE).texts
    tokenizer = next(iter(models.values())).tokenizer
    for name, sample in (("shipped reviews", texts), ("one-sentence reviews", short_reviews(texts, 1000))):
        rows = tokenizer.encode_batch(sample)
        reference = keras.predict(rows, verbose=0).reshape(-1)
        print(f"\n{name} ({len(rows)}), against the float Keras model:")
        for label, model in models.items():
            scores = model.scorer.score(rows)
            agree = np.mean((scores >= 0.5) == (reference >= 0.5))
            diff = np.abs(scores - reference)
            print(f"  {label:22s} labels {agree:.2%}  max |Δp| {diff.max():.2e}  mean |Δp| {diff.mean():.2e}")


def speed(models: dict[str, SentimentModel], rounds: int, reviews: int) -> None:
    from edge_lstm.samples import TEST_SAMPLE, read_sample

    texts = read_sample(TEST_SAMPLE).texts
    one_texts = texts[:reviews]
    ratios: dict[str, dict[str, list[float]]] = {name: {"one": [], "file": []} for name in models}
    figures: dict[str, dict[str, list[float]]] = {name: {"one": [], "file": []} for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            model.predict_batch(texts[:20])  # warm
            started = time.perf_counter()
            for text in one_texts:
                model.predict(text)
            figures[name]["one"].append((time.perf_counter() - started) / len(one_texts) * 1e6)
            started = time.perf_counter()
            model.predict_batch(texts)
            figures[name]["file"].append(len(texts) / (time.perf_counter() - started))
        base = next(iter(models))
        for name in models:
            ratios[name]["one"].append(figures[name]["one"][-1] / figures[base]["one"][-1])
            ratios[name]["file"].append(figures[name]["file"][-1] / figures[base]["file"][-1])
    print(f"\nspeed, text in, {rounds} interleaved rounds (medians; ratios are medians of per-round ratios):")
    for name in models:
        f, r = figures[name], ratios[name]
        print(f"  {name:22s} one review {statistics.median(f['one']):7.0f} µs ({statistics.median(r['one']):.2f}× the time)"
              f"   file {statistics.median(f['file']):6.0f} reviews/s ({statistics.median(r['file']):.2f}× the rate)")


def peak_rss() -> None:
    paths = [str(ROOT / "device")]
    loads = {"int8 loop TFLite": "model = SentimentModel.load(model='int8_loop_tflite')"}
    for arithmetic in ARITHMETICS:
        loads[f"numpy ({arithmetic})"] = (
            "from edge_lstm_device.bundle.manifest import NUMPY_WEIGHTS, read_manifest, read_verified\n"
            "from edge_lstm_device.runtime.model import REFERENCE_BUNDLE\n"
            "from edge_lstm_device.runtime.numpy_engine.engine import NumpyScorer\n"
            "from edge_lstm_device.bundle.tokenizer import Tokenizer\n"
            "manifest = read_manifest(REFERENCE_BUNDLE)\n"
            "tokenizer = Tokenizer.from_json(read_verified(REFERENCE_BUNDLE, manifest['tokenizer']), 'tokenizer.json')\n"
            f"scorer = NumpyScorer(read_verified(REFERENCE_BUNDLE, manifest[NUMPY_WEIGHTS]), arithmetic={arithmetic!r})\n"
            "model = SentimentModel(tokenizer, scorer, 'numpy', manifest)")
    print("\npeak RSS, a fresh process scoring one review:")
    for name, load in loads.items():
        out = subprocess.run([sys.executable, "-c", RSS_PROBE.format(paths=paths, load=load)], capture_output=True,
                             text=True, check=True).stdout.split()[-1]
        print(f"  {name:22s} {float(out):.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reviews", type=int, default=100, help="reviews scored one at a time per round")
    args = parser.parse_args()
    tflite = SentimentModel.load(model="int8_loop_tflite")
    models = {"int8 loop TFLite": tflite, **{f"numpy ({a})": numpy_model(tflite, a) for a in ARITHMETICS}}
    agreement(models)
    speed(models, args.rounds, args.reviews)
    peak_rss()


if __name__ == "__main__":
    main()
