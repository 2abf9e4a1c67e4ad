"""``edge-lstm import``: an IMDB recurrent model trained elsewhere (Keras 3 ``.keras``/``.h5`` or
tf-keras ``.h5``; LSTM or GRU layers, Bidirectional or stacked, TextVectorization inside or
``keras.datasets.imdb`` ids) becomes a bundle that export, parity and bench accept."""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click
import numpy as np

from edge_lstm.commands.common import JSON_OPTION, echo_json, status
from edge_lstm.tf_setup import quiet_tensorflow

TOLERANCE = 1e-5  # largest |Δp| allowed between the rebuilt model and the user's own
IMPORT_FILE = "import.json"
SAMPLE_ROWS = 64  # shipped test reviews through the tokenizer
RANDOM_ROWS = 64  # random ids over the whole vocabulary, random lengths
STAGING_PREFIX = ".edge-lstm-import."


def _tokenizer_source(word_index: Path | None, tokenizer: Path | None) -> tuple[str, Path]:
    """("word-index" | "tokenizer", file); the Keras default index when neither is given."""
    from edge_lstm.importing.keras_index import DEFAULT_WORD_INDEX, default_word_index

    if word_index and tokenizer:
        raise click.UsageError("give --word-index or --tokenizer, not both")
    if tokenizer:
        return "tokenizer", tokenizer
    found = word_index or default_word_index()
    if found is None:
        raise click.UsageError(f"no tokenizer: pass --word-index FILE (the Keras IMDB index; {DEFAULT_WORD_INDEX} "
                               "was not found) or --tokenizer FILE (an edge-lstm tokenizer.json)")
    return "word-index", found


def _check_out(out: Path, force: bool) -> None:
    """``--out`` must be new, empty, or (with --force) an old bundle to replace."""
    from edge_lstm.bundle import MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE

    if not out.is_dir() or not any(out.iterdir()):
        return
    held = [name for name in (MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE) if (out / name).exists()]
    if not held:
        raise click.UsageError(f"--out {out} is not empty and holds no bundle; choose a new or empty folder")
    if not force:
        raise click.UsageError(f"--out {out} already holds a bundle ({', '.join(held)}); pass --force to replace it")


def _read_model(path: Path, max_len: int | None) -> Any:
    from edge_lstm.importing.modelfile import ModelFileError, read_model_file

    try:
        return read_model_file(path, max_len)
    except ModelFileError as err:
        raise click.ClickException(f"{path.name}: {err}") from err


def _parse_labels(value: str) -> list[str]:
    """``--labels``: names separated by commas, or ``@FILE`` with one name per line."""
    if not value.startswith("@"):
        return value.split(",")
    path = Path(value[1:])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise click.ClickException(f"--labels: cannot read {path}: {getattr(err, 'strerror', None) or err}") from err
    return text.removesuffix("\n").removesuffix("\r").split("\n") if text else []


def _named(model_file: Any, labels: str | None) -> Any:
    """The model file with its softmax head's class names from ``--labels`` (refused for a binary head)."""
    from edge_lstm.importing.modelfile import ModelFileError, check_class_names

    spec = model_file.spec
    if labels is None:
        return model_file
    if spec.head != "softmax":
        raise click.ClickException(f"--labels names the classes of a Dense(k, softmax) head; this model's head is "
                                   f"{spec.dense[-1].label()}, whose labels are negative and positive")
    names = [n.strip() for n in _parse_labels(labels)]  # "a, b, c" and CRLF files: spaces around names go
    try:
        names = check_class_names(names, spec.classes)
    except ModelFileError as err:
        raise click.ClickException(f"--labels: {err}") from err
    return dataclasses.replace(model_file, spec=dataclasses.replace(spec, class_names=names))


def _tokenizer(kind: str, path: Path, spec: Any) -> Any:
    """Our tokenizer for the model's vocabulary and length (built from the Keras index, or loaded)."""
    from edge_lstm_device.bundle.tokenizer import Tokenizer, TokenizerError

    from edge_lstm.importing.keras_index import WordIndexError, tokenizer_from_word_index

    try:
        if kind == "word-index":
            return tokenizer_from_word_index(path, spec.num_words, spec.max_len)
        tokenizer = Tokenizer.load(path)
    except (WordIndexError, TokenizerError) as err:
        raise click.ClickException(str(err)) from err
    if (tokenizer.num_words, tokenizer.max_len) != (spec.num_words, spec.max_len):
        raise click.ClickException(
            f"{path.name} has {tokenizer.num_words} ids and {tokenizer.max_len} tokens per review; "
            f"the model has {spec.num_words} ids and reads {spec.max_len} tokens")
    return tokenizer


def _vectorizer_tokenizer(model_file: Any) -> Any:
    """The bundle's tokenizer: the model's TextVectorization, reproduced by the device package."""
    from edge_lstm_device.bundle.vectorizer import VectorizerTokenizer

    spec = model_file.spec
    return VectorizerTokenizer(model_file.vocabulary, spec.max_len, spec.vectorizer.standardize)


# Texts that exercise a TextVectorization's rules: case, punctuation, apostrophes, non-ASCII
# letters and whitespace, repeated and leading spaces, unknown words, an empty text.
EDGE_TEXTS = ["What a WONDERFUL film!!! 10/10", "don't stop-believing... (really)", "Café ÉCOLE naïve\u00a0x\ty\u2003z",
              "   spaced    out   ", "zzqxunknownword the", "", "<br />HTML<br/>breaks", "mixed_case_Words and_under_scores"]


def _check_texts() -> list[str]:
    from edge_lstm.samples import TEST_SAMPLE, read_sample

    return read_sample(TEST_SAMPLE).texts[:SAMPLE_ROWS] + EDGE_TEXTS


def _check_rows(tokenizer: Any) -> np.ndarray:
    """Shipped real reviews plus random, randomly padded ids over the whole vocabulary."""
    from edge_lstm.samples import TEST_SAMPLE, read_sample

    real = tokenizer.encode_batch(read_sample(TEST_SAMPLE).texts[:SAMPLE_ROWS])
    rng = np.random.default_rng(0)
    rand = rng.integers(0, tokenizer.num_words, (RANDOM_ROWS, tokenizer.max_len), dtype=np.int32)
    for row, length in zip(rand, rng.integers(1, tokenizer.max_len + 1, RANDOM_ROWS)):
        row[: tokenizer.max_len - length] = 0
    return np.concatenate([real, rand])


def _reference(path: Path, spec: Any, vocabulary: Any = None) -> tuple[Any, str]:
    """The user's model loaded by the Keras that wrote it (only after the safe check passed)."""
    from edge_lstm.importing.modelfile import ModelFileError, load_with_its_keras

    try:
        return load_with_its_keras(path, spec, vocabulary)
    except ModelFileError as err:
        raise click.ClickException(str(err)) from err


def _max_len_hint(tok_path: Path, max_len: int | None) -> int | None:
    """--max-len, else the length of an edge-lstm tokenizer (used only if the model leaves it open)."""
    if max_len is not None:
        return max_len
    from edge_lstm_device.bundle.tokenizer import Tokenizer, TokenizerError

    try:
        return Tokenizer.load(tok_path).max_len
    except TokenizerError as err:
        raise click.ClickException(str(err)) from err


def _prove_equal(model_path: Path, spec: Any, model: Any, tokenizer: Any) -> tuple[str, float, int]:
    """(reference loader, max |Δp|, rows) of the rebuilt model against the user's original."""
    reference, loader = _reference(model_path, spec, getattr(tokenizer, "words", None) if spec.vectorizer else None)
    if spec.vectorizer:  # the original reads raw text: this proves the tokenizer equals its layer too
        from edge_lstm.evaluate.subjects import text_input

        texts = _check_texts()
        rows = tokenizer.encode_batch(texts)
        max_diff = _equivalence(model, reference, rows, text_input(reference, texts))
    else:
        rows = _check_rows(tokenizer)
        max_diff = _equivalence(model, reference, rows, unpadded=spec.whole_reviews)
    status(f"outputs against {loader} on {len(rows)} rows: max |Δp| {max_diff:.2g} (tolerance {TOLERANCE:g})")
    if max_diff > TOLERANCE:
        raise click.ClickException(f"the rebuilt model differs from the original by {max_diff:.3g} "
                                   f"(> {TOLERANCE:g}); nothing written")
    return loader, max_diff, len(rows)


def _equivalence(model: Any, reference: Any, rows: np.ndarray, reference_input: Any = None,
                 unpadded: bool = False) -> float:
    """max |Δ| of the rebuilt model's outputs against the original's (on each review unpadded, for
    a model that reads whole reviews)."""
    from edge_lstm.evaluate.backends import predict_unpadded

    ours = model.predict(rows, batch_size=len(rows), verbose=0)
    if unpadded:
        theirs = predict_unpadded(reference, rows)
    else:
        theirs = np.asarray(reference.predict(rows if reference_input is None else reference_input,
                                              batch_size=len(rows), verbose=0))
    if theirs.shape != ours.shape:
        raise click.ClickException(f"the original model answers with shape {theirs.shape}, expected {ours.shape}")
    return float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64))))


def _record(model_path: Path, spec: Any, tok_kind: str, tok_path: Path, tokenizer: Any,
            loader: str, max_diff: float, rows: int) -> dict:
    from edge_lstm_device.bundle.files import file_sha256

    return {
        "source": {"file": model_path.name, "sha256": file_sha256(model_path), "bytes": model_path.stat().st_size,
                   "format": spec.description, "keras_version": spec.keras_version},
        "architecture": {"layers": spec.architecture, "num_words": spec.num_words,
                         "embedding_dim": spec.embedding_dim, "cell": spec.cell, "units": spec.units,
                         "mask_zero": spec.mask_zero, "head": spec.head, "max_len": spec.max_len,
                         "max_len_from": spec.max_len_from, "whole_reviews": spec.whole_reviews,
                         "functional": spec.functional,
                         "recurrent": [dataclasses.asdict(r) for r in spec.recurrent],
                         "dense": [dataclasses.asdict(d) for d in spec.dense],
                         **({"labels": list(spec.labels)} if spec.labels else {})},
        "tokenizer": {"from": {"word-index": "Keras IMDB word index (ids rank + 3)", "tokenizer": "edge-lstm tokenizer",
                               "text-vectorization": "the model's TextVectorization layer"}[tok_kind],
                      "file": tok_path.name, "sha256": file_sha256(tok_path), "words": len(tokenizer.words),
                      "fingerprint": tokenizer.fingerprint()},
        "equivalence": {"reference": loader, "rows": rows, "max_abs_diff": max_diff, "tolerance": TOLERANCE},
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
    }


def _write(out: Path, model: Any, model_file: Any, tokenizer: Any, record: dict) -> list[str]:
    """Write the bundle into a folder beside ``out``, check it reads back, then rename it into place."""
    from edge_lstm_device.bundle.files import atomic_write_json

    from edge_lstm import bundle
    from edge_lstm.importing.modelfile import ModelFileError, read_model_file, write_bundle_attrs

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out.parent))
    except OSError as err:
        raise click.ClickException(f"cannot write beside {out}: {err.strerror or err}") from err
    try:
        config = {k: record["architecture"][k] for k in ("num_words", "max_len", "embedding_dim", "cell", "units", "mask_zero")}
        model.compile(loss="binary_crossentropy")  # as training saves it (else tf-keras warns on save)
        bundle.write_trained(staging, model, tokenizer, {"config": config, "import": record})
        write_bundle_attrs(staging / bundle.MODEL_FILE, model_file.spec)
        atomic_write_json(staging / IMPORT_FILE, record)
        written = read_model_file(staging / bundle.MODEL_FILE)
        if not all(np.array_equal(a, b) for a, b in zip(written.weights, model_file.weights)):
            raise click.ClickException("the written model.h5 does not hold the imported weights")
        if (written.spec.labels, written.spec.whole_reviews) != (model_file.spec.labels, model_file.spec.whole_reviews):
            raise click.ClickException("the written model.h5 does not hold the class names or the window's reading")
        os.chmod(staging, 0o755)
        _swap(staging, out)
        return sorted(p.name for p in out.iterdir())
    except (bundle.BundleError, ModelFileError, OSError) as err:
        raise click.ClickException(f"cannot write the bundle to {out}: {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an old bundle there (``--force``) is moved aside, then removed."""
    if not out.exists() or not any(out.iterdir()):
        os.replace(staging, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX + "old.", dir=out.parent))
    os.replace(out, aside / "bundle")
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(aside / "bundle", out)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


@click.command("import")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Bundle folder to write (new or empty; an existing bundle only with --force).")
@click.option("--word-index", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The Keras IMDB word index the model was trained with "
                   "[default: ~/.keras/datasets/imdb_word_index.json when present].")
@click.option("--tokenizer", "tokenizer_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="An edge-lstm tokenizer.json instead of a Keras word index.")
@click.option("--max-len", type=click.IntRange(1, 100_000), default=None,
              help="Tokens per review, for a model that does not fix its input length (the lecture: 200) "
                   "[default: whole reviews, read unpadded as Keras reads them: a 2,500-id window whose "
                   "leading pads are skipped].")
@click.option("--labels", default=None, metavar="NAMES|@FILE",
              help="Class names of a Dense(k, softmax) head, in output order: 'a,b,c', or @FILE with one name "
                   "per line [default: class_0 ... class_{k-1}]. A binary model's labels are negative and positive.")
@click.option("--force", is_flag=True, help="Replace the bundle folder --out if it already holds one.")
@JSON_OPTION
def import_command(model_path: Path, out: Path, word_index: Path | None, tokenizer_path: Path | None,
                   max_len: int | None, labels: str | None, force: bool, as_json: bool) -> None:
    """Import an IMDB recurrent model trained elsewhere: read MODEL as data (no code from it runs),
    accept a Sequential or Functional chain [Input ->] [TextVectorization ->] Embedding (mask_zero
    or not) -> 1 to 3 LSTM or GRU layers, each optionally Bidirectional -> 0 to 2 Dense ->
    Dense(1, sigmoid), Dense(1) logits or Dense(k, softmax) (Dropout layers anywhere), rebuild it in tf-keras with the
    same weights, prove its outputs equal the original's (Keras loads the original, |Δp| <= 1e-5),
    and write a bundle (model.h5, tokenizer.json, metrics.json, import.json) for export.

    The tokenizer: a model with a TextVectorization brings its own; others read the ids of
    keras.datasets.imdb (--word-index) or of an edge-lstm tokenizer (--tokenizer).

    Supported: Keras 3 .keras, Keras 3 .h5, tf-keras .h5.

    \b
    Examples:
      edge-lstm import model.keras --out mybundle        # ~/.keras/datasets/imdb_word_index.json
      edge-lstm import model.h5 --word-index imdb_word_index.json --out mybundle
      edge-lstm import keras_io.keras --word-index imdb_word_index.json --max-len 200 --out kerasio
      edge-lstm import tutorial.keras --out tutorial     # TextVectorization inside: its own vocabulary
      edge-lstm import ratings.keras --out ratings --labels negative,good,excellent   # Dense(3, softmax)
      edge-lstm export --int8 --bundle mybundle && edge-lstm parity --bundle mybundle --original model.keras
    """
    _check_out(out, force)
    quiet_tensorflow()
    hint = _max_len_hint(tokenizer_path, max_len) if tokenizer_path else max_len
    model_file = _named(_read_model(model_path, hint), labels)
    spec = model_file.spec
    status(f"{model_path.name}: {spec.description}, {spec.architecture}, {spec.max_len} tokens; read as data")
    if spec.vectorizer:
        if word_index or tokenizer_path:
            raise click.UsageError("the model tokenizes with its own TextVectorization layer: drop --word-index and --tokenizer")
        tok_kind, tok_path, tokenizer = "text-vectorization", model_path, _vectorizer_tokenizer(model_file)
    else:
        tok_kind, tok_path = _tokenizer_source(word_index, tokenizer_path)
        tokenizer = _tokenizer(tok_kind, tok_path, spec)
    from edge_lstm.importing.modelfile import build_model

    model = build_model(model_file)
    loader, max_diff, rows = _prove_equal(model_path, spec, model, tokenizer)
    record = _record(model_path, spec, tok_kind, tok_path, tokenizer, loader, max_diff, rows)
    files = _write(out, model, model_file, tokenizer, record)
    if as_json:
        echo_json({"bundle": str(out), "files": files, **record})
    else:
        click.echo(f"bundle written to {out} ({', '.join(files)}); "
                   f"max |Δp| against the original {max_diff:.2g}")
        click.echo(f"next: edge-lstm export --int8 --bundle {out} && edge-lstm parity --bundle {out}")
