"""Batched, length-aware scoring: B reviews per call, each scored as if alone."""

from __future__ import annotations

import numpy as np
import pytest
from edge_lstm_device.runtime.model import SentimentModel
from edge_lstm_device.runtime.scoring import TFLiteScorer
from support import sample_reviews


def _sentences(texts: list[str], count: int) -> list[str]:
    """Short reviews: single sentences cut from real ones (as users send them)."""
    cut = [s.strip() for t in texts for s in t.replace("<br />", " ").split(". ")]
    return [s for s in cut if 3 <= len(s.split()) <= 32][:count]


@pytest.fixture(scope="module")
def rows(model: SentimentModel) -> np.ndarray:
    texts = sample_reviews()[0]
    mixed = texts[:40] + _sentences(texts, 40)  # long and short, unsorted
    return model.tokenizer.encode_batch(mixed)


def _same(model: SentimentModel) -> float:
    """How far a batched score may be from the same review's score alone: tflite-runtime 2.14's
    builtin kernels round differently by batch size (measured: <= 6e-8 on x86-64, 2.4e-6 on armv7l)."""
    return 0.0 if model.scorer.interpreter_dist == "ai-edge-litert" else 5e-6


def _alone(scorer: TFLiteScorer, rows: np.ndarray) -> np.ndarray:
    return np.array([scorer.score(row[None, :])[0] for row in rows])


@pytest.fixture(scope="module")
def scored_alone(model: SentimentModel, rows: np.ndarray) -> np.ndarray:
    """Each of ``rows`` scored by itself (once for every batch size below: seconds under emulation)."""
    return _alone(model.scorer, rows)


def test_the_default_model_takes_batches(model: SentimentModel) -> None:
    assert model.name == "int8_loop_tflite" and model.scorer.max_batch > 1


def test_fused_models_run_one_review_per_call(model: SentimentModel) -> None:
    fused = SentimentModel.load(model="int8_dynamic_tflite")
    assert fused.scorer.max_batch == 1


@pytest.mark.parametrize("max_batch", [2, 7, 16, 64])
def test_a_score_does_not_depend_on_batch_mates_or_batch_size(model: SentimentModel, rows: np.ndarray,
                                                              scored_alone: np.ndarray, max_batch: int) -> None:
    batched = TFLiteScorer(model.scorer.model_content, max_batch=max_batch)
    shuffled = np.random.default_rng(max_batch).permutation(len(rows))
    scores = np.empty(len(rows), np.float32)
    scores[shuffled] = batched.score(rows[shuffled])
    # every row has its own start state, steps and quantization: bit for bit in ai-edge-litert; tflite-runtime
    # 2.14's builtin kernels round differently by batch size
    np.testing.assert_allclose(scores, scored_alone, rtol=0, atol=_same(model))


def test_every_length_from_empty_to_over_the_window(model: SentimentModel) -> None:
    """Rows of 0 to max_len real ids, alone and together; the all-pad row is the state after
    max_len pad steps, as Keras computes it."""
    max_len = model.tokenizer.max_len
    lengths = [0, 1, 2, 3, 4, 5, 7, 61, 62, max_len - 1, max_len]
    rows = np.zeros((len(lengths), max_len), np.int32)
    for i, n in enumerate(lengths):
        rows[i, max_len - n :] = np.arange(n) % 50 + 3
    together = model.scorer.score(rows)
    np.testing.assert_allclose(together, _alone(model.scorer, rows), rtol=0, atol=_same(model))
    assert np.all((together > 0) & (together < 1))

