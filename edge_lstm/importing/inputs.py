"""An import's inputs: the model file (read as data), its class names, and the tokenizer whose
ids it was trained on (a Keras IMDB word index, an edge-lstm tokenizer, or its own
TextVectorization)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edge_lstm.importing.errors import ImportModelError, ImportUsageError


def tokenizer_source(word_index: Path | None, tokenizer: Path | None) -> tuple[str, Path]:
    """("word-index" | "tokenizer", file); the Keras default index when neither is given."""
    from edge_lstm.importing.keras_index import DEFAULT_WORD_INDEX, default_word_index

    if word_index and tokenizer:
        raise ImportUsageError("give --word-index or --tokenizer, not both")
    if tokenizer:
        return "tokenizer", tokenizer
    found = word_index or default_word_index()
    if found is None:
        raise ImportUsageError(f"no tokenizer: pass --word-index FILE (the Keras IMDB index; {DEFAULT_WORD_INDEX} "
                               "was not found) or --tokenizer FILE (an edge-lstm tokenizer.json)")
    return "word-index", found


def check_out(out: Path, force: bool) -> None:
    """``--out`` must be new, empty, or (with --force) an old bundle to replace."""
    from edge_lstm.bundle import MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE

    if not out.is_dir() or not any(out.iterdir()):
        return
    held = [name for name in (MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE) if (out / name).exists()]
    if not held:
        raise ImportUsageError(f"--out {out} is not empty and holds no bundle; choose a new or empty folder")
    if not force:
        raise ImportUsageError(f"--out {out} already holds a bundle ({', '.join(held)}); pass --force to replace it")


def read_model(path: Path, max_len: int | None) -> Any:
    from edge_lstm.importing.modelfile import ModelFileError, read_model_file

    try:
        return read_model_file(path, max_len)
    except ModelFileError as err:
        raise ImportModelError(f"{path.name}: {err}") from err


def _parse_labels(value: str) -> list[str]:
    """``--labels``: names separated by commas, or ``@FILE`` with one name per line."""
    if not value.startswith("@"):
        return value.split(",")
    path = Path(value[1:])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ImportModelError(f"--labels: cannot read {path}: {getattr(err, 'strerror', None) or err}") from err
    return text.removesuffix("\n").removesuffix("\r").split("\n") if text else []


def named(model_file: Any, labels: str | None) -> Any:
    """The model file with its softmax head's class names from ``--labels`` (refused for a binary head)."""
    from edge_lstm.importing.modelfile import ModelFileError, check_class_names

    spec = model_file.spec
    if labels is None:
        return model_file
    if spec.head != "softmax":
        raise ImportModelError(f"--labels names the classes of a Dense(k, softmax) head; this model's head is "
                                   f"{spec.dense[-1].label()}, whose labels are negative and positive")
    names = [n.strip() for n in _parse_labels(labels)]  # "a, b, c" and CRLF files: spaces around names go
    try:
        names = check_class_names(names, spec.classes)
    except ModelFileError as err:
        raise ImportModelError(f"--labels: {err}") from err
    return dataclasses.replace(model_file, spec=dataclasses.replace(spec, class_names=names))


def tokenizer_for(kind: str, path: Path, spec: Any, loaded: Any = None) -> Any:
    """Our tokenizer for the model's vocabulary and length (built from the Keras index, or loaded;
    ``loaded``: the edge-lstm tokenizer :func:`read_tokenizer` read already)."""
    from edge_lstm.importing.keras_index import WordIndexError, tokenizer_from_word_index

    if kind == "word-index":
        try:
            return tokenizer_from_word_index(path, spec.num_words, spec.max_len)
        except WordIndexError as err:
            raise ImportModelError(str(err)) from err
    tokenizer = loaded if loaded is not None else read_tokenizer(path)
    if (tokenizer.num_words, tokenizer.max_len) != (spec.num_words, spec.max_len):
        raise ImportModelError(
            f"{path.name} has {tokenizer.num_words} ids and {tokenizer.max_len} tokens per review; "
            f"the model has {spec.num_words} ids and reads {spec.max_len} tokens")
    return tokenizer


def vectorizer_tokenizer(model_file: Any) -> Any:
    """The bundle's tokenizer: the model's TextVectorization, reproduced by the device package."""
    from edge_lstm_device.bundle.vectorizer import VectorizerTokenizer

    spec = model_file.spec
    return VectorizerTokenizer(model_file.vocabulary, spec.max_len, spec.vectorizer.standardize)


def read_tokenizer(path: Path) -> Any:
    """An edge-lstm tokenizer file (``--tokenizer``), read once: its length is the hint for a model
    that leaves its input length open (without --max-len), and it is the bundle's tokenizer."""
    from edge_lstm_device.bundle import tokenizers
    from edge_lstm_device.bundle.tokenizer_file import TokenizerError

    try:
        return tokenizers.load(path)
    except TokenizerError as err:
        raise ImportModelError(str(err)) from err
