"""The one tokenizer: golden cases, round trips, and properties over any string."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_lstm_device.tokenizer import OOV_ID, PAD_ID, START_ID, Tokenizer, TokenizerError, split_words

TOK = Tokenizer.fit(["the film the film the great", "a great film, isn't it?"], num_words=10, max_len=8)


def test_split_words_rules() -> None:
    assert split_words("Great<br /><br />FILM!") == ["great", "film"]
    assert split_words("isn't it 10/10?") == ["isn't", "it", "10", "10"]
    assert split_words("snake_case—dash") == ["snake", "case", "dash"]
    assert split_words("Café ÉTÉ 映画") == ["café", "été", "映画"]
    assert split_words("") == []


def test_vocabulary_ranked_by_frequency_ties_alphabetical() -> None:
    # film x3, the x3, great x2 -> ties broken alphabetically; keeps num_words - 3 = 7 words
    assert TOK.words[:3] == ("film", "the", "great")
    assert TOK.words[3:] == ("a", "isn't", "it")


def test_ids_follow_keras_imdb_convention() -> None:
    assert TOK.ids("The FILM unknownword") == [START_ID, 4, 3, OOV_ID]


def test_encode_pre_pads_and_pre_truncates() -> None:
    short = TOK.encode("film")
    assert short.tolist() == [PAD_ID] * 6 + [START_ID, 3]
    long = TOK.encode(" ".join(["the"] * 20 + ["film", "great"]))
    assert long.shape == (8,) and long.dtype == np.int32
    assert long.tolist()[-2:] == [3, 5]  # the end of a long review is kept
    assert START_ID not in long.tolist()


def test_words_beyond_num_words_are_oov() -> None:
    tok = Tokenizer.fit(["a a a b b c"], num_words=5, max_len=4)
    assert tok.words == ("a", "b")
    assert tok.ids("c") == [START_ID, OOV_ID]


def test_save_load_roundtrip(tmp_path) -> None:
    path = tmp_path / "tokenizer.json"
    TOK.save(path)
    again = Tokenizer.load(path)
    assert again == TOK
    assert again.fingerprint() == TOK.fingerprint()
    np.testing.assert_array_equal(again.encode_batch(["a film"]), TOK.encode_batch(["a film"]))


@pytest.mark.parametrize("content", ["", "[1, 2]", "{not json", '{"format_version": 99}', '{"format_version": 1}'])
def test_load_rejects_malformed(tmp_path, content: str) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(TokenizerError):
        Tokenizer.load(path)


def test_load_missing_file(tmp_path) -> None:
    with pytest.raises(TokenizerError, match="not found"):
        Tokenizer.load(tmp_path / "nope.json")


def test_fit_is_deterministic_whatever_the_order() -> None:
    texts = ["b a", "c a b", "d d a"]
    assert Tokenizer.fit(texts).words == Tokenizer.fit(list(reversed(texts))).words


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_gives_max_len_ids_in_range(text: str) -> None:
    row = TOK.encode(text)
    assert row.shape == (8,) and row.dtype == np.int32
    assert row.min() >= 0 and row.max() < TOK.num_words
    assert row[-1] != PAD_ID  # the start id at least


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1).map(lambda s: s * 200))
def test_long_and_odd_text_never_raises(text: str) -> None:
    row = TOK.encode(text + "\x00\x07\ud7ff🙂")
    assert row.shape == (8,)


def test_one_megabyte_review() -> None:
    row = TOK.encode("great film " * 100_000)
    assert row.tolist()[-2:] == [5, 3]
