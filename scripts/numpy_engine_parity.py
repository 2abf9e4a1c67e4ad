"""The numpy engine against the float Keras model on all 25,000 aclImdb test reviews and 5,000
one-sentence reviews cut from them, beside the int8 loop TFLite model (docs/decisions/numpy-engine.md).

    OPENBLAS_NUM_THREADS=1 python3 scripts/numpy_engine_parity.py [DATA]

DATA: the aclImdb tarball or folder (default: ../shared/data/aclImdb_train_test.tar.gz).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "device")]

from edge_lstm_device.runtime.numpy_engine.engine import NumpyScorer  # noqa: E402
from edge_lstm_device.runtime.scoring import TFLiteScorer  # noqa: E402

from edge_lstm import bundle  # noqa: E402
from edge_lstm.evaluate.sidebyside import short_reviews  # noqa: E402
from edge_lstm.export.lstm_loop import LoopModel  # noqa: E402
from edge_lstm.export.numpy_weights import to_weights_file  # noqa: E402
from edge_lstm.train.data import load_imdb  # noqa: E402

BUNDLE = ROOT / "export"


def engines(model: object) -> dict:
    weights = (BUNDLE / "model_numpy.npz").read_bytes()
    return {"numpy float32 weights": NumpyScorer(to_weights_file(LoopModel.from_model(model), 200, "float32")),
            "numpy int8, float arithmetic": NumpyScorer(weights, arithmetic="float"),
            "numpy int8, int8 arithmetic": NumpyScorer(weights, arithmetic="int8"),
            "int8 loop TFLite": TFLiteScorer((BUNDLE / "model_int8_loop.tflite").read_bytes())}


def compare(name: str, rows: np.ndarray, labels: np.ndarray | None, model: object, scorers: dict) -> None:
    reference = model.predict(rows, batch_size=512, verbose=0).reshape(-1)
    accuracy = lambda p: f", accuracy {np.mean((p >= 0.5) == labels):.4%}" if labels is not None else ""  # noqa: E731
    print(f"{name}: {len(rows)}, Keras{accuracy(reference)}", flush=True)
    for label, scorer in scorers.items():
        started = time.perf_counter()
        scores = scorer.score(rows)
        rate = len(rows) / (time.perf_counter() - started)
        diff = np.abs(scores - reference)
        print(f"  {label:30s} labels {np.mean((scores >= 0.5) == (reference >= 0.5)):.4%}  max |Δp| {diff.max():.2e}  "
              f"mean |Δp| {diff.mean():.2e}{accuracy(scores)}  ({rate:.0f}/s)", flush=True)


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "aclImdb_train_test.tar.gz"
    test = load_imdb(data, ("test",))["test"]
    model, tokenizer = bundle.load_model(BUNDLE), bundle.load_tokenizer(BUNDLE)
    scorers = engines(model)
    compare("test reviews", tokenizer.encode_batch(test.texts), np.asarray(test.labels), model, scorers)
    compare("one-sentence reviews", tokenizer.encode_batch(short_reviews(test.texts, 5000)), None, model, scorers)


if __name__ == "__main__":
    main()
