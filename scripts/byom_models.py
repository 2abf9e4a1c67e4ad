"""Train the IMDB recurrent models people bring, at their published sizes, and take each through
``edge-lstm import`` -> ``export --int8`` -> ``parity --original`` on all 25,000 test reviews and
``edge-lstm bench``; rewrites docs/byom_report.md.

    python3 scripts/byom_models.py ../shared/data/aclImdb_train_test.tar.gz --word-index ../shared/data/imdb_word_index.json
        [--only NAME ...] [--reuse: the models trained before in --work, measured again]

Models (Keras 3, trained here for ``--epochs`` on the 25,000 training reviews):
- keras.io "Bidirectional LSTM on IMDB": Functional, Input(None), Embedding(20000, 128) ->
  Bidirectional(LSTM(64, return_sequences)) -> Bidirectional(LSTM(64)) -> Dense(1, sigmoid), ids of
  the Keras IMDB index, 200 per review;
- TensorFlow "Text classification with an RNN": TextVectorization(1000 words) ->
  Embedding(64, mask_zero) -> Bidirectional(LSTM(64)) -> Dense(64, relu) -> Dense(1) logits;
- the lecture's network with GRU(128); the lecture's network with Embedding(mask_zero=True);
- the lecture's network with a Dense(3, softmax) head, classes from the ratings in the reviews' file
  names: negative (1-4), good (7-8), excellent (9-10).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_lstm.tf_setup import quiet_tensorflow  # noqa: E402


def _keras_io(keras):
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(20000, 128)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def _tutorial(keras, texts):
    encoder = keras.layers.TextVectorization(max_tokens=1000)
    encoder.adapt(texts)
    return keras.Sequential([keras.Input(shape=(1,), dtype="string"), encoder,
                             keras.layers.Embedding(len(encoder.get_vocabulary()), 64, mask_zero=True),
                             keras.layers.Bidirectional(keras.layers.LSTM(64)),
                             keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])


def _lecture(keras, recurrent, mask_zero=False, classes=1):
    head = keras.layers.Dense(classes, activation="softmax") if classes > 1 else keras.layers.Dense(1, activation="sigmoid")
    return keras.Sequential([keras.Input((200,)), keras.layers.Embedding(10000, 128, mask_zero=mask_zero), recurrent,
                             head])


RATING_CLASSES = ("negative", "good", "excellent")  # ratings 1-4, 7-8, 9-10


def _rating_classes(ids: list[str]):
    import numpy as np

    ratings = np.array([int(i.rsplit("_", 1)[1]) for i in ids])
    return np.where(ratings <= 4, 0, np.where(ratings <= 8, 1, 2))


def import_args(name: str, word_index: Path) -> dict:
    """What ``edge-lstm import`` needs besides the model file (``ImportRequest``'s fields)."""
    if name == "keras_io_bidirectional":
        return {"word_index": word_index, "max_len": 200}
    if name == "tutorial_text_vectorization":
        return {}
    labels = {"labels": ",".join(RATING_CLASSES)} if name == "lecture_ratings" else {}
    return {"tokenizer_path": ROOT / "export" / "tokenizer.json", **labels}


def train(name: str, data: Path, word_index: Path, folder: Path, epochs: int) -> Path:
    """Train one model; returns its .keras file."""
    quiet_tensorflow()
    import keras
    import tensorflow as tf
    from edge_lstm_device.bundle.tokenizer import Tokenizer

    from edge_lstm.importing.keras_index import tokenizer_from_word_index
    from edge_lstm.train.data import load_imdb

    train_set = load_imdb(data, ("train",))["train"]
    keras.utils.set_random_seed(0)
    labels = train_set.labels.astype("float32")
    if name == "keras_io_bidirectional":
        model, x = _keras_io(keras), tokenizer_from_word_index(word_index, 20000, 200).encode_batch(train_set.texts)
        batch = 32
    elif name == "tutorial_text_vectorization":
        model, x, batch = _tutorial(keras, train_set.texts), tf.constant(train_set.texts)[:, None], 64
    else:
        recurrent = keras.layers.GRU(128) if name == "lecture_gru" else keras.layers.LSTM(128)
        classes = len(RATING_CLASSES) if name == "lecture_ratings" else 1
        model = _lecture(keras, recurrent, mask_zero=name == "lecture_mask_zero", classes=classes)
        x = Tokenizer.load(ROOT / "export" / "tokenizer.json").encode_batch(train_set.texts)
        batch = 64
    loss = keras.losses.BinaryCrossentropy(from_logits=name == "tutorial_text_vectorization")
    if name == "lecture_ratings":
        labels, loss = _rating_classes(train_set.ids), "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, labels, epochs=epochs, batch_size=batch, verbose=0)
    path = folder / f"{name}.keras"
    model.save(path)
    return path


MODELS = ("keras_io_bidirectional", "tutorial_text_vectorization", "lecture_gru", "lecture_mask_zero", "lecture_ratings")
HEADER = ("| model | architecture | files | labels agree, int8 loop vs original | accuracy original → int8 loop "
          "| max \\|Δp\\| float loop | int8 loop × onnxruntime int8, batch 1 |")


def _previous_rows(report: Path) -> dict[str, str]:
    if not report.exists():
        return {}
    rows = [line for line in report.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    return {line.split("|")[1].strip(): line for line in rows[1:] if line.split("|")[1].strip() in MODELS}


def _measure(path: Path, bundle: Path, data: Path, extra: dict) -> tuple[dict, dict]:
    """import -> export --int8 -> parity --original -> bench, through the functions the commands call."""
    from edge_lstm.evaluate import report
    from edge_lstm.evaluate.bench import BenchOptions, run_all
    from edge_lstm.evaluate.check import ParityRequest, check_parity
    from edge_lstm.export.exporter import ExportOptions, export_bundle
    from edge_lstm.importing.pipeline import ImportRequest, import_model

    import_model(ImportRequest(path, bundle, force=True, **extra), log=_log)
    export_bundle(bundle, ExportOptions(int8=True), log=_log)
    parity = check_parity(ParityRequest(bundle, data=data, original=path), log=_log)
    report.write(parity, bundle)
    bench = run_all(bundle, BenchOptions(rounds=3), (), keras=False, log=_log)
    return parity.to_dict(), {k: v for k, v in bench.items() if k != "table"}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--word-index", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/edge-lstm-byom"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "byom_report.md")
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--reuse", action="store_true",
                        help="take a model already trained in --work (NAME.keras) instead of training it again")
    args = parser.parse_args()
    names = args.only or list(MODELS)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = _previous_rows(args.out)  # --only re-measures some models; the others' rows stay
    for name in names:
        started = time.perf_counter()
        path, extra = args.work / f"{name}.keras", import_args(name, args.word_index)
        if not (args.reuse and path.is_file()):
            print(f"training {name}", file=sys.stderr)
            train(name, args.data, args.word_index, args.work, args.epochs)
        bundle = args.work / f"{name}-bundle"
        parity, bench = _measure(path, bundle, args.data, extra)
        manifest = json.loads((bundle / "manifest.json").read_text())
        by_name = {b["name"]: b for b in parity["backends"]}
        loop, floop = by_name["int8_loop_tflite"], by_name["float_loop_tflite"]
        side = {r["backend"]: r for r in bench.get("side_by_side", {}).get("backends", [])}
        ratio = side.get("int8_loop_tflite", {}).get("imdb_us_ratio", "no ONNX file")
        accuracy = (f"{parity['reference']['accuracy']:.4f} → {loop['accuracy']:.4f}" if loop["accuracy"] is not None
                    else f"- ({len(parity['classes'])} classes: top labels agree)")
        rows[name] = (f"| {name} | {manifest['model']['architecture']} | {', '.join(sorted(manifest['artifacts']))} | "
                      f"{loop['label_agreement']:.2%} | {accuracy} | {floop['max_abs_diff']:.2g} | {ratio} |")
        print(rows[name], f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    lines = [HEADER, "|---|---|---|---|---|---|---|", *(rows[n] for n in MODELS if n in rows)]
    lines.append(f"\nEach model trained {args.epochs} epoch(s) on the 25,000 training reviews, then `edge-lstm import` -> "
                 "`export --int8` -> `parity --original --data` (25,000 test reviews; the original loaded by its "
                 "Keras) -> `bench` (interleaved, one thread). Written by `python3 scripts/byom_models.py`.")
    lines.append("\nlecture_ratings: classes from the ratings in the file names, negative (1-4), good (7-8) and "
                 "excellent (9-10); its labels agree is top-label agreement and max |Δp| is over every class's "
                 "probability (the full-integer form is left out for softmax heads: docs/bring-your-own-model.md).")
    args.out.write_text("# Bring your own model: the models, measured\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
