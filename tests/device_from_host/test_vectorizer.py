"""The device's TextVectorization tokenizer gives the Keras layer's own ids, for any text."""

from __future__ import annotations

import numpy as np
import pytest
from edge_lstm_device.bundle import tokenizers
from edge_lstm_device.bundle.vectorizer import VectorizerTokenizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.tensorflow

CORPUS = ["The cat sat on the mat!", "A dog, a cat... and THE bird", "don't stop-believing", "Café ÉCOLE naïve",
          "x_y z-z <br />tags", "10/10 would watch again", "ÀÉÎ àéî ß", "tab\tseparated\nlines"]
# letters of both cases, digits, ASCII punctuation, ASCII and other whitespace, non-ASCII letters
ALPHABET = st.sampled_from(list("abcdeTHECAT019 .,!?'-_/<>()\"\t\n\r\x0b\x0c") + ["\u00a0", "\u2003", "é", "É", "ß", "ǅ", "İ"])


def _layer(standardize: str | None, length: int | None):
    import keras

    layer = keras.layers.TextVectorization(max_tokens=40, standardize=standardize, output_sequence_length=length)
    layer.adapt(CORPUS)
    return layer


def _ours(layer, length: int) -> VectorizerTokenizer:
    vocabulary = layer.get_vocabulary()
    return VectorizerTokenizer(tuple(vocabulary[2:]), length, layer.get_config()["standardize"])


@pytest.mark.parametrize("standardize", ["lower_and_strip_punctuation", "lower", None])
def test_ids_equal_the_layers_for_any_text(standardize: str | None) -> None:
    import tensorflow as tf

    layer = _layer(standardize, 12)
    ours = _ours(layer, 12)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.text(ALPHABET, max_size=60), min_size=1, max_size=8))
    def check(texts: list[str]) -> None:
        np.testing.assert_array_equal(ours.encode_batch(texts), layer(tf.constant(texts)).numpy())

    check()


def test_unpadded_ids_equal_the_layers_without_a_sequence_length() -> None:
    import tensorflow as tf

    layer, ours = _layer("lower_and_strip_punctuation", None), None
    ours = _ours(layer, 2500)
    for text in CORPUS + ["", "   ", "zzz unknown THE"]:
        expected = layer(tf.constant([text])).numpy()[0].tolist()
        assert ours.ids(text) == expected
        row = ours.encode(text)
        assert row[: len(expected)].tolist() == expected and not row[len(expected) :].any()  # post-padded


def test_the_tokenizer_file_round_trips_by_its_kind() -> None:
    ours = _ours(_layer("lower", 7), 7)
    again = tokenizers.from_json(ours.to_json())  # the one reader of tokenizer.json dispatches on "kind"
    assert isinstance(again, VectorizerTokenizer) and again == ours and again.fingerprint() == ours.fingerprint()
    assert again.settings()["padding"] == "post" and again.num_words == len(ours.words) + 2
