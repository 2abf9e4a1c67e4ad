"""The proof an import rests on: the rebuilt tf-keras model answers as the user's own model does,
loaded by the Keras that wrote it, on real reviews, random ids and texts that exercise a
TextVectorization's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_lstm.importing.errors import ImportModelError

TOLERANCE = 1e-5  # largest |Δp| allowed between the rebuilt model and the user's own
SAMPLE_ROWS = 64  # shipped test reviews through the tokenizer
RANDOM_ROWS = 64  # random ids over the whole vocabulary, random lengths


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
        raise ImportModelError(str(err)) from err


def prove_equal(model_path: Path, spec: Any, model: Any, tokenizer: Any,
                log: Callable[[str], None]) -> tuple[str, float, int]:
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
    log(f"outputs against {loader} on {len(rows)} rows: max |Δp| {max_diff:.2g} (tolerance {TOLERANCE:g})")
    if max_diff > TOLERANCE:
        raise ImportModelError(f"the rebuilt model differs from the original by {max_diff:.3g} "
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
        raise ImportModelError(f"the original model answers with shape {theirs.shape}, expected {ours.shape}")
    return float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64))))
