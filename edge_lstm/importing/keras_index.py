"""The Keras IMDB word index (``keras.datasets.imdb.get_word_index()``) as our tokenizer.

A model trained on ``keras.datasets.imdb.load_data(num_words=N)`` reads ids ``rank + 3``
(``index_from=3``, ranks start at 1): 0 pad, 1 start, 2 out-of-vocabulary, 3 never used, words
from 4 ("the"), and every id >= N is out-of-vocabulary. ``Tokenizer`` gives ``words[i]`` the id
``i + 3``, so ``words`` is a placeholder no text can produce (id 3), then the index's words by
rank, ``N - 4`` of them. The text splitting is ``split_words`` (shared with training); Keras made
its ids with another rule (:func:`keras_words`), measured in docs/bring-your-own-model.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from edge_lstm_device.bundle.text import split_words
from edge_lstm_device.bundle.tokenizer import FIRST_WORD_ID, OOV_ID, Tokenizer

DEFAULT_WORD_INDEX = Path("~/.keras/datasets/imdb_word_index.json")
INDEX_FROM = 3  # keras.datasets.imdb.load_data's default: id = rank + 3
UNUSED_ID_WORD = "<unused id 3>"  # split_words never yields "<" or spaces, so id 3 never appears
MAX_INDEX_BYTES = 64 * 2**20  # the official index is 1.6 MB
# what keras.datasets.imdb's ids were made with: Keras' text_to_word_sequence defaults
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
_KERAS_TABLE = str.maketrans({c: " " for c in KERAS_FILTERS})


class WordIndexError(ValueError):
    """A word index file is missing, malformed or unusable."""


def default_word_index() -> Path | None:
    """``~/.keras/datasets/imdb_word_index.json`` when it exists (Keras downloads it there)."""
    path = DEFAULT_WORD_INDEX.expanduser()
    return path if path.is_file() else None


def read_word_index(path: Path) -> dict[str, int]:
    """The index as ``{word: rank}`` (rank 1 = most frequent), checked."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            raise WordIndexError(f"{path} is over {MAX_INDEX_BYTES // 2**20} MiB; not a word index")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as err:
        raise WordIndexError(f"cannot read word index {path}: {err.strerror or err}") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WordIndexError(f"word index {path} is not UTF-8 JSON: {err}") from err
    if not isinstance(data, dict) or not data:
        raise WordIndexError(f"word index {path} is not a JSON object of word -> rank")
    bad = next((w for w, r in data.items() if not w or not isinstance(r, int) or isinstance(r, bool) or r < 1), None)
    if bad is not None:
        raise WordIndexError(f"word index {path}: entry {bad!r} -> {data[bad]!r} is not a word with a rank >= 1")
    return data


def ranked_words(index: dict[str, int], num_words: int) -> tuple[str, ...]:
    """``Tokenizer.words`` giving each word the id ``rank + 3`` below ``num_words``: the
    placeholder for the unused id 3, then the words of rank 1, 2, ... (which must be contiguous)."""
    if UNUSED_ID_WORD in index:
        raise WordIndexError(f"the word index holds the placeholder {UNUSED_ID_WORD!r}")
    keep = num_words - INDEX_FROM - 1
    ranked = sorted(index.items(), key=lambda item: item[1])[:keep]
    for position, (word, rank) in enumerate(ranked, start=1):
        if rank != position:
            raise WordIndexError(f"the word index's ranks are not 1, 2, 3, ...: {word!r} has rank {rank}, "
                                 f"expected {position}")
    return (UNUSED_ID_WORD,) + tuple(word for word, _ in ranked)


def tokenizer_from_word_index(path: Path, num_words: int, max_len: int) -> Tokenizer:
    """Our tokenizer giving each word of the Keras index the id ``rank + 3`` below ``num_words``
    (``"the"`` -> 4), as ``keras.datasets.imdb.load_data(num_words=num_words)`` did."""
    return Tokenizer(ranked_words(read_word_index(path), num_words), num_words, max_len)


def keras_words(text: str) -> list[str]:
    """How ``keras.datasets.imdb``'s ids were made, as measured (not used by the tokenizer):
    lowercase, each of ``KERAS_FILTERS`` becomes a space, split on spaces. ``<br />`` gives "br"."""
    return [word for word in text.lower().translate(_KERAS_TABLE).split(" ") if word]


def oov_rate(texts: Iterable[str], tokenizer: Tokenizer,
             split: Callable[[str], list[str]] = split_words) -> dict[str, float | int]:
    """Share of the words ``split`` finds that ``tokenizer`` maps to the out-of-vocabulary id."""
    ids = {word: i + FIRST_WORD_ID for i, word in enumerate(tokenizer.words)}
    words = oov = 0
    for text in texts:
        found = split(text)
        words += len(found)
        oov += sum(1 for word in found if ids.get(word, OOV_ID) == OOV_ID)
    return {"words": words, "oov": oov, "oov_rate": oov / words if words else 0.0}
