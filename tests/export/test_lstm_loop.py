"""The length-aware loop form against Keras: exact in float, for LSTM and GRU cells, pre- and
post-padded input, masked and unmasked models, any length, any batch."""

from __future__ import annotations

import numpy as np
import pytest
from edge_lstm_device.runtime.scoring import TFLiteScorer

from edge_lstm.export import lstm_loop
from edge_lstm.export.lstm_loop import LoopModel, pad_state_table
from edge_lstm.samples.models import CELLS, STACKS, stacked_model, tiny_model
from tests.support.fixtures import BUNDLE

pytestmark = pytest.mark.tensorflow

FLOAT_EXACT = 1e-5


def _rows(max_len: int, seed: int) -> np.ndarray:
    """Pre-padded, post-padded and gappy rows of every length, all pads included."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(max_len + 1):
        ids = rng.integers(1, 50, n)
        pre, post = np.zeros(max_len, np.int32), np.zeros(max_len, np.int32)
        pre[max_len - n :], post[:n] = ids, ids
        gappy = rng.integers(0, 50, max_len)  # pad ids inside the review too
        rows += [pre, post, gappy]
    return np.array(rows, np.int32)


def _float_loop(model, max_len: int) -> TFLiteScorer:
    return TFLiteScorer(lstm_loop.to_tflite_loop(model, max_len, "float", lambda: iter(())), max_batch=5)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("mask_zero", [False, True])
def test_float_loop_equals_keras_for_any_padding(mask_zero: bool, cell: str) -> None:
    model = tiny_model(mask_zero, cell=cell)
    rows = _rows(13, seed=1)
    keras_scores = model.predict(rows, verbose=0).reshape(-1)
    scores = _float_loop(model, 13).score(rows)
    assert np.abs(scores - keras_scores).max() <= FLOAT_EXACT


def test_pad_state_table_stops_where_the_state_stops_changing() -> None:
    unmasked = pad_state_table(LoopModel.from_model(tiny_model(False)), 1000)
    assert 1 < unmasked.rows < 1000 and unmasked.last_change < unmasked.tolerance
    masked = pad_state_table(LoopModel.from_model(tiny_model(True)), 1000)
    assert masked.rows == 1 and not any(state.any() for state in masked.states)  # pad steps change nothing
    gru = pad_state_table(LoopModel.from_model(tiny_model(False, cell="gru")), 1000)
    assert len(gru.states) == 1 and gru.rows > 1  # a GRU's state is h alone


def test_shipped_model_float_loop_equals_keras_on_real_and_short_reviews() -> None:
    from edge_lstm import bundle
    from edge_lstm.samples import TEST_SAMPLE, read_sample

    model, tokenizer = bundle.load_model(BUNDLE), bundle.load_tokenizer(BUNDLE)
    texts = read_sample(TEST_SAMPLE).texts[:100]
    sentences = [s for t in texts for s in t.split(". ") if 2 <= len(s.split()) <= 32][:100]
    rows = tokenizer.encode_batch(texts + sentences)
    keras_scores = model.predict(rows, verbose=0).reshape(-1)
    assert np.abs(_float_loop(model, 200).score(rows) - keras_scores).max() <= FLOAT_EXACT


def test_manifest_record_of_the_form() -> None:
    record = lstm_loop.describe(tiny_model(False), 13)
    assert record["length_aware"] and not record["masked"] and record["steps_per_iteration"] == 4
    assert record["cell"] == "lstm" and lstm_loop.describe(tiny_model(True, cell="gru"), 13)["cell"] == "gru"
    assert record["pad_state_table"]["rows"] > 1 and "float64" in record["pad_state_table"]["computed"]


# Every stack, masked and not, with a sigmoid head; a logit head once on each of the writer's two paths (the
# single forward layer's pad-state table, the stacked runner): the head reads the last state whatever the
# layers below it, so the full product (8 more conversions, 31 s) checked nothing these do not.
STACK_CASES = [*((stack, mask_zero, "sigmoid") for stack in sorted(STACKS) for mask_zero in (False, True)),
               ("lstm", True, "logits"), ("stacked-bidirectional", False, "logits")]


@pytest.mark.parametrize("stack, mask_zero, head", STACK_CASES)
def test_stacked_and_bidirectional_float_loops_equal_keras(stack: str, mask_zero: bool, head: str) -> None:
    """Every direction and layer, masked or not, any padding; a logit head comes out as its sigmoid."""
    model = stacked_model(stack, mask_zero, head)
    rows = _rows(13, seed=2)
    keras_scores = model.predict(rows, verbose=0).reshape(-1)
    if head == "logits":
        keras_scores = 1 / (1 + np.exp(-keras_scores.astype(np.float64)))
    scores = _float_loop(model, 13).score(rows)
    assert np.abs(scores - keras_scores).max() <= FLOAT_EXACT


@pytest.mark.parametrize("stack, mask_zero", [("lstm", False), ("lstm", True), ("stacked-bidirectional", False)])
def test_softmax_head_gives_every_class_probability(stack: str, mask_zero: bool) -> None:
    """A Dense(4, softmax) head: (B, 4) probabilities equal to Keras', whatever the batch."""
    model = stacked_model(stack, mask_zero, "softmax")
    rows = _rows(13, seed=5)
    scorer = _float_loop(model, 13)
    scores = scorer.score(rows)
    assert scorer.classes == 4 and scores.shape == (len(rows), 4)
    assert np.abs(scores - model.predict(rows, verbose=0)).max() <= FLOAT_EXACT
    alone = np.concatenate([scorer.score(rows[i : i + 1]) for i in range(len(rows))])
    assert np.abs(alone - scores).max() <= 1e-6  # a row's probabilities do not depend on its batch mates


@pytest.mark.parametrize("stack", ["stacked-bidirectional", "stacked-three"])
def test_stacked_loops_over_whole_blocks_equal_keras(stack: str) -> None:
    """A window of whole blocks (max_len a multiple of the 10 steps per iteration of a stacked
    model): an unmasked model holds no step at all."""
    model = stacked_model(stack, False, "sigmoid", max_len=20)
    rows = _rows(20, seed=4)
    scores = _float_loop(model, 20).score(rows)
    assert np.abs(scores - model.predict(rows, verbose=0).reshape(-1)).max() <= FLOAT_EXACT
