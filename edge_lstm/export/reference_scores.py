"""The bundle's reference scores: the float model's outputs for the shipped test reviews and for
short texts cut from them, written by every export so that a device can verify its own models
(``edge-lstm-device verify``; the reader is ``edge_lstm_device.bundle.reference_scores``)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from edge_lstm_device.bundle.reference_scores import FORMAT_VERSION
from edge_lstm_device.bundle.tokenizer import Tokenizer

from edge_lstm.train.data import Reviews

SENTENCES_PER_REVIEW = 2  # one-sentence texts cut from each review: ~2 per review, as many as the reviews and more
SENTENCE_WORDS = (4, 30)  # a sentence of fewer words says little; longer ones are reviews again
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str, most: int = SENTENCES_PER_REVIEW) -> list[str]:
    """The first ``most`` sentences of a review that have 4 to 30 words."""
    parts = _SENTENCE_END.split(" ".join(_BREAK.sub(" ", text).split()))
    low, high = SENTENCE_WORDS
    return [p for p in parts if low <= len(p.split()) <= high][:most]


def short_texts(reviews: Reviews) -> tuple[list[str], list[str]]:
    """Ids (``<review id>#s<k>``) and texts of one-sentence texts cut from the reviews."""
    ids, texts = [], []
    for review_id, text in zip(reviews.ids, reviews.texts):
        for k, sentence in enumerate(sentences(text), start=1):
            ids.append(f"{review_id}#s{k}")
            texts.append(sentence)
    return ids, texts


def _score_value(score: np.ndarray) -> float | list[float]:
    """A float32 score as JSON keeps it exactly (9 significant digits round-trip a float32)."""
    if np.ndim(score):
        return [float(f"{v:.9g}") for v in score]
    return float(f"{float(score):.9g}")


def _items(ids: list[str], texts: list[str], scores: np.ndarray, labels: np.ndarray | None) -> list[dict]:
    return [{"id": i, **({"label": int(labels[n])} if labels is not None else {}), "text": t,
             "score": _score_value(scores[n])} for n, (i, t) in enumerate(zip(ids, texts))]


def build(score: Any, tokenizer: Tokenizer, reviews: Reviews, source: str) -> dict:
    """The document: ``score`` (token rows → the float model's scores) on ``reviews`` (whole, with
    their labels) and on one-sentence texts cut from them."""
    short_ids, shorts = short_texts(reviews)
    sets = [("reviews", f"{len(reviews)} IMDB test reviews, whole ({source})", reviews.ids, reviews.texts,
             reviews.labels),
            ("short", f"{len(shorts)} one-sentence texts cut from those reviews (labels unknown)", short_ids, shorts,
             None)]
    out = []
    for name, description, ids, texts, labels in sets:
        scores = np.asarray(score(tokenizer.encode_batch(texts)))
        out.append({"name": name, "description": description, "items": _items(list(ids), texts, scores, labels)})
    return {"format_version": FORMAT_VERSION, "reference": "the float Keras model the bundle was exported from",
            "sets": out}
