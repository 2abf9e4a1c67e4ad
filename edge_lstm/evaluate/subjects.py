"""What parity and bench compare: a bundle's artifacts as backends, its float model, the user's
original model of an imported bundle, and the test reviews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_lstm_device.bundle.files import file_sha256
from edge_lstm_device.bundle.manifest import NUMPY_WEIGHTS, read_manifest
from edge_lstm_device.bundle.tokenizer import Tokenizer
from edge_lstm_device.runtime.numpy_engine.engine import load_scorer

from edge_lstm import bundle
from edge_lstm.evaluate.backends import Backend, NumpyBackend, open_artifact
from edge_lstm.train.data import Reviews


class UnknownArtifactError(ValueError):
    """An artifact name the manifest does not have (a usage error)."""


def check_names(asked: tuple[str, ...], known: list[str]) -> None:
    unknown = set(asked) - set(known)
    if unknown:
        raise UnknownArtifactError(f"no artifact {', '.join(sorted(unknown))} (have: {', '.join(known)})")


def load_subjects(bundle_dir: Path, only: tuple[str, ...], threads: int) -> tuple[Tokenizer, Any, list[tuple[Backend, str, bool]]]:
    """The tokenizer, the float Keras model (checked against the manifest's fingerprint) and
    ``(backend, precision, dynamic scheme)`` for each artifact (those in ``only``, if given)."""
    manifest = read_manifest(bundle_dir)
    model_path = bundle_dir / bundle.MODEL_FILE
    if not model_path.is_file():
        raise bundle.BundleError(f"no {bundle.MODEL_FILE} in {bundle_dir}: parity needs the float model it was exported from")
    if file_sha256(model_path) != manifest["source_model"]["sha256"]:
        raise bundle.BundleError(f"{model_path} changed since export: run 'edge-lstm export' again")
    check_names(only, [*manifest["artifacts"], *([NUMPY_WEIGHTS] if NUMPY_WEIGHTS in manifest else [])])
    backends = [
        (open_artifact(bundle_dir, name, entry, threads), entry["precision"], entry["quantization"] == "dynamic")
        for name, entry in manifest["artifacts"].items() if not only or name in only
    ]
    if NUMPY_WEIGHTS in manifest and (not only or NUMPY_WEIGHTS in only):  # the device's numpy engine, judged as int8
        backends.append((NumpyBackend(load_scorer(bundle_dir, manifest, threads), NUMPY_WEIGHTS), "int8", False))
    return bundle.load_tokenizer(bundle_dir), bundle.load_model(bundle_dir), backends


def original_model(path: Path, bundle_dir: Path) -> tuple[Any, str, bool, bool]:
    """The model file an imported bundle came from, checked as data first (the same architecture
    as the bundle's model), then loaded by the Keras that wrote it; a description of that loader;
    whether it reads raw text (a TextVectorization layer first); whether it reads each review
    unpadded (input length None, the bundle's window covering whole reviews)."""
    from edge_lstm.importing.modelfile import ModelFileError, load_with_its_keras, read_model_file

    ours = read_model_file(bundle_dir / bundle.MODEL_FILE).spec
    original = read_model_file(path, ours.max_len)
    spec = original.spec
    if spec.architecture.removeprefix("TextVectorization -> ") != ours.architecture:
        raise ModelFileError(f"{path} is not the model this bundle was imported from ({spec.architecture})")
    return (*load_with_its_keras(path, spec, original.vocabulary), spec.vectorizer is not None, ours.whole_reviews)


def text_input(model: Any, texts: list[str]) -> Any:
    """Texts as a Keras model with a string input takes them (a string tensor, shaped as its input)."""
    import tensorflow as tf

    batch = tf.constant(texts)
    return batch[:, None] if len(model.inputs[0].shape) == 2 else batch


def parity_reviews(data: Path | None, limit: int | None, seed: int) -> tuple[Reviews, str]:
    """The shipped 300-review sample, or the test split of ``data``; a balanced subset with ``limit``."""
    from edge_lstm.samples import TEST_SAMPLE, read_sample
    from edge_lstm.train.data import load_imdb
    from edge_lstm.train.download import resolve_source

    if data is None:
        reviews = read_sample(TEST_SAMPLE)
        return reviews.balanced(limit, seed), f"the shipped sample ({len(reviews)} IMDB test reviews)"
    test = load_imdb(resolve_source(data, download=False), ("test",))["test"]
    subset = test.balanced(limit, seed)
    return subset, f"{data} test split" + (f" (balanced subset, seed {seed})" if len(subset) < len(test) else "")
