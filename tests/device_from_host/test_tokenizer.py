"""The one tokenizer: golden cases, round trips, and properties over any string."""

from __future__ import annotations

import json
import re
import tracemalloc

import numpy as np
import pytest
from edge_lstm_device.bundle import tokenizer_file as tokenizer_module
from edge_lstm_device.bundle.text import MAX_REVIEW_CHARS, MAX_REVIEW_WORDS, ReviewTooLongError, has_words, split_words
from edge_lstm_device.bundle.tokenizer import OOV_ID, PAD_ID, START_ID, Tokenizer
from edge_lstm_device.bundle.tokenizer_file import MAX_TOKENIZER_BYTES, TokenizerError
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_lstm.train.vocabulary import fit_tokenizer

TOK = fit_tokenizer(["the film the film the great", "a great film, isn't it?"], num_words=10, max_len=8)


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
    tok = fit_tokenizer(["a a a b b c"], num_words=5, max_len=4)
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
    assert fit_tokenizer(texts).words == fit_tokenizer(list(reversed(texts))).words


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_gives_max_len_ids_in_range(text: str) -> None:
    row = TOK.encode(text)
    assert row.shape == (8,) and row.dtype == np.int32
    assert row.min() >= 0 and row.max() < TOK.num_words
    assert row[-1] != PAD_ID  # the start id at least


@settings(max_examples=50, deadline=None)  # max_size: 200 copies stay within the review limits
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=150).map(lambda s: s * 200))
def test_long_and_odd_text_never_raises(text: str) -> None:
    row = TOK.encode(text + "\x00\x07\ud7ff🙂")
    assert row.shape == (8,)


def test_one_megabyte_review(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "great film " * 100_000
    with pytest.raises(ReviewTooLongError, match="1,100,000 characters long; the limit is 100,000"):
        TOK.encode(text)
    monkeypatch.setenv("EDGE_LSTM_MAX_REVIEW_CHARS", "2000000")
    monkeypatch.setenv("EDGE_LSTM_MAX_REVIEW_WORDS", "200000")
    assert TOK.encode(text).tolist()[-2:] == [5, 3]


# the words are exactly those of the original rule (training reproducibility)

_OLD_WORD = re.compile(r"(?:[^\W_]|')+")


def _old_split_words(text: str) -> list[str]:
    return _OLD_WORD.findall(re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE).lower())


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from("_'<br/> \u200bİẞ"))))
def test_split_words_is_the_original_rule(text: str) -> None:
    assert split_words(text) == _old_split_words(text)
    assert has_words(text) == bool(split_words(text))


def test_split_words_edge_cases_match_the_original_rule() -> None:
    for text in ["snake_case_", "__a__b'_'c", "İSTANBUL_x", "<BR/>_<br >'", "a\u200b_b", "٣_٤", "x" * 5000]:
        assert split_words(text) == _old_split_words(text)


# review limits

def test_review_limits_defaults() -> None:
    assert (MAX_REVIEW_CHARS, MAX_REVIEW_WORDS) == (100_000, 20_000)
    assert len(TOK.ids("a" * MAX_REVIEW_CHARS)) == 2
    with pytest.raises(ReviewTooLongError) as caught:
        TOK.ids("a" * 10_000_000)
    assert str(caught.value) == (
        "review is 10,000,000 characters long; the limit is 100,000 (set EDGE_LSTM_MAX_REVIEW_CHARS to raise it)"
    )
    assert len(TOK.ids("a " * MAX_REVIEW_WORDS)) == MAX_REVIEW_WORDS + 1
    with pytest.raises(ReviewTooLongError, match=r"review has 20,001 words; the limit is 20,000 \(set EDGE_LSTM_MAX"):
        TOK.ids("a " * (MAX_REVIEW_WORDS + 1))


def test_review_limits_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_LSTM_MAX_REVIEW_CHARS", "10")
    assert TOK.ids("the film") == [START_ID, 4, 3]
    with pytest.raises(ReviewTooLongError, match="11 characters long; the limit is 10 "):
        TOK.encode_batch(["the film", "the film!!!"])
    monkeypatch.setenv("EDGE_LSTM_MAX_REVIEW_CHARS", "1000")
    monkeypatch.setenv("EDGE_LSTM_MAX_REVIEW_WORDS", "2")
    with pytest.raises(ReviewTooLongError, match="3 words; the limit is 2 "):
        TOK.encode("a great film")
    monkeypatch.setenv("EDGE_LSTM_MAX_REVIEW_WORDS", "-5")
    with pytest.raises(TokenizerError, match="EDGE_LSTM_MAX_REVIEW_WORDS must be a positive integer, got '-5'"):
        TOK.encode("film")


def test_fit_is_not_limited() -> None:  # training data is bounded by the loader, not here
    assert fit_tokenizer(["a " * (MAX_REVIEW_WORDS + 10)], num_words=5).words == ("a",)


def _peak(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_review_memory_is_bounded() -> None:
    one_word = "a" * MAX_REVIEW_CHARS  # the old word regex took ~13 MB for this, ~1.25 GB for 10 MB
    assert _peak(lambda: TOK.ids(one_word)) < 1_000_000
    many_words = ("a " * MAX_REVIEW_WORDS)[: MAX_REVIEW_CHARS]
    assert _peak(lambda: TOK.ids(many_words)) < 4_000_000
    huge = "a" * 10_000_000
    assert _peak(lambda: pytest.raises(ReviewTooLongError, TOK.ids, huge)) < 100_000


@pytest.mark.parametrize("text", ["", "   \n\t", "\u200b\u200b\u200b", "!!! ... ???", "<br /><br/>", "___", "\u200d🙂"])
def test_has_words_false(text: str) -> None:
    assert not has_words(text)
    assert TOK.ids(text) == [START_ID]


@pytest.mark.parametrize("text", ["a", "Film!", "\u200bok\u200b", "'", "映画", "10/10"])
def test_has_words_true(text: str) -> None:
    assert has_words(text)


# hostile tokenizer files

def _valid() -> dict:
    return TOK.to_dict()


@pytest.mark.parametrize(
    "change, match",
    [
        ({"format_version": "1"}, "unsupported tokenizer format '1'"),
        ({"format_version": True}, "unsupported tokenizer format True"),
        ({"words": "film the"}, "words must be a list, got str"),
        ({"words": {"film": 3}}, "words must be a list, got dict"),
        ({"words": ["film", 3]}, "every word must be a string"),
        ({"words": ["film", None]}, "every word must be a string"),
        ({"words": ["film", "film"]}, "duplicate words"),
        ({"words": ["w"] * 3 + [str(i) for i in range(20)]}, "more words than num_words"),
        ({"num_words": "10"}, "num_words must be an integer, got '10'"),
        ({"num_words": 10.0}, "num_words must be an integer, got 10.0"),
        ({"num_words": True}, "num_words must be an integer, got True"),
        ({"num_words": 3}, r"num_words must be in \[4, 10,000,000\], got 3"),
        ({"num_words": 10**12}, "num_words must be in"),
        ({"num_words": 10**5000}, "num_words must be in .*, got a 16,610-bit integer"),
        ({"max_len": 0}, r"max_len must be in \[1, 10,000\], got 0"),
        ({"max_len": 10_001}, "max_len must be in"),
        ({"max_len": None}, "max_len must be an integer, got None"),
        ({"max_len": [200]}, "max_len must be an integer"),
    ],
)
def test_from_dict_rejects_wrong_types_and_ranges(change: dict, match: str) -> None:
    with pytest.raises(TokenizerError, match=match) as caught:
        Tokenizer.from_dict({**_valid(), **change})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("key", ["format_version", "words", "num_words", "max_len"])
def test_from_dict_missing_key(key: str) -> None:
    data = _valid()
    del data[key]
    with pytest.raises(TokenizerError):
        Tokenizer.from_dict(data)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
_ANY = _JSON | st.builds(object) | st.binary(max_size=5) | st.just(np.arange(3)) | st.tuples(st.text(max_size=3))


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries(
    {},
    optional={"format_version": st.just(1) | _ANY, "words": st.just(["a", "b"]) | _ANY,
              "num_words": st.just(10) | _ANY, "max_len": st.just(8) | _ANY},
))
def test_from_dict_raises_only_tokenizer_error(data: dict) -> None:
    try:
        tok = Tokenizer.from_dict(data)
    except TokenizerError as err:
        assert "\n" not in str(err)
    else:
        assert isinstance(tok, Tokenizer)


@pytest.mark.parametrize("value", [None, [1], "x", 3, b"{}"])
def test_from_dict_of_a_non_dict(value: object) -> None:
    with pytest.raises(TokenizerError, match="expected a JSON object"):
        Tokenizer.from_dict(value)


@pytest.mark.parametrize("content", ["null", "42", '"tokenizer"', "[]", "true"])
def test_load_rejects_non_object_json(tmp_path, content: str) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(TokenizerError, match="not a JSON object"):
        Tokenizer.load(path)


@pytest.mark.parametrize(
    "content", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000], ids=["lists", "objects"]
)
def test_load_rejects_deep_nesting(tmp_path, content: str) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(TokenizerError, match="nested too deeply"):
        Tokenizer.load(path)


def test_load_refuses_big_files_before_reading_them(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_TOKENIZER_BYTES == 16 << 20
    with pytest.raises(TokenizerError, match="larger than 16,777,216 bytes"):
        Tokenizer.load("/dev/zero")  # endless: only a bounded read returns
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(_valid()) + " " * 500)
    monkeypatch.setattr(tokenizer_module, "MAX_TOKENIZER_BYTES", 400)
    with pytest.raises(TokenizerError, match="larger than 400 bytes"):
        Tokenizer.load(path)


def test_load_rejects_huge_integers(tmp_path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text('{"format_version": 1, "num_words": ' + "9" * 5000 + "}")
    with pytest.raises(TokenizerError, match="cannot read"):
        Tokenizer.load(path)


def test_load_rejects_binary_and_folders(tmp_path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_bytes(b"\xff\xfe{\x00")
    with pytest.raises(TokenizerError, match="cannot read"):
        Tokenizer.load(path)
    with pytest.raises(TokenizerError, match="cannot read"):
        Tokenizer.load(tmp_path)
