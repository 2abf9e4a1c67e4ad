"""The TextVectorization tokenizer kind on the device (numpy only): Keras' rules, post-padding."""

from __future__ import annotations

import json

import pytest
from edge_lstm_device.bundle import tokenizers
from edge_lstm_device.bundle.text import MAX_CHARS_ENV, MAX_WORDS_ENV, ReviewTooLongError
from edge_lstm_device.bundle.tokenizer_file import TokenizerError
from edge_lstm_device.bundle.vectorizer import VectorizerTokenizer


def _tokenizer(standardize: str | None = "lower_and_strip_punctuation", max_len: int = 6) -> VectorizerTokenizer:
    return VectorizerTokenizer(("the", "film", "dont", "great", "Film"), max_len, standardize)


def test_keras_rules_ascii_case_punctuation_and_whitespace() -> None:
    tok = _tokenizer()
    assert tok.ids("The FILM... don't\tgreat!") == [2, 3, 4, 5]  # ASCII lowercase, punctuation removed
    assert tok.ids("Ünïcode film\u00a0the") == [1, 1]  # non-ASCII untouched; a no-break space does not split
    assert tok.ids("") == [] and tok.word_count(tok.ids("the film")) == 2


def test_lower_keeps_punctuation_and_none_keeps_case() -> None:
    assert _tokenizer("lower").ids("The film!") == [2, 1]
    assert _tokenizer(None).ids("the Film") == [2, 6]


def test_length_limits_name_the_variable_that_raises_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_WORDS_ENV, "3")
    monkeypatch.setenv(MAX_CHARS_ENV, "30")
    tok = _tokenizer()
    assert tok.ids("the film great") == [2, 3, 5]
    with pytest.raises(ReviewTooLongError, match=f"review has 4 words; the limit is 3 \\(set {MAX_WORDS_ENV}"):
        tok.ids("the film, great film")
    with pytest.raises(ReviewTooLongError, match=f"31 characters long; the limit is 30 \\(set {MAX_CHARS_ENV}"):
        tok.ids("x" * 31)


def test_rows_are_post_padded_and_keep_the_first_ids() -> None:
    tok = _tokenizer(max_len=3)
    assert tok.encode("the film").tolist() == [2, 3, 0]
    assert tok.encode("great the film dont").tolist() == [5, 2, 3]


def test_the_file_names_its_kind_and_is_checked() -> None:
    data = json.loads(_tokenizer().to_json())
    assert data["kind"] == "text_vectorization" and tokenizers.from_dict(data) == _tokenizer()
    with pytest.raises(TokenizerError, match="num_words"):
        tokenizers.from_dict({**data, "num_words": 3})
    with pytest.raises(TokenizerError, match="unknown tokenizer kind"):
        tokenizers.from_dict({**data, "kind": "bpe"})
    with pytest.raises(TokenizerError, match="standardize"):
        tokenizers.from_dict({**data, "standardize": "strip_punctuation"})


def test_a_kind_reads_only_its_own_files() -> None:
    from edge_lstm_device.bundle.tokenizer import Tokenizer

    with pytest.raises(TokenizerError, match="'text_vectorization' is not 'imdb'"):
        Tokenizer.from_json(_tokenizer().to_json())
