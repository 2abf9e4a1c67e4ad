"""Small balanced samples of real IMDB reviews shipped for offline demos, tests and calibration.

``test_reviews.jsonl.gz``: 300 test-split reviews (demos, parity, tests).
``train_reviews.jsonl.gz``: 400 training-split reviews (int8 calibration without the data set).
Made by ``scripts/make_samples.py`` from the official data set.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from edge_lstm.train.data import Reviews

HERE = Path(__file__).resolve().parent
TEST_SAMPLE = HERE / "test_reviews.jsonl.gz"
TRAIN_SAMPLE = HERE / "train_reviews.jsonl.gz"


def write_sample(path: Path, reviews: Reviews) -> None:
    lines = (
        json.dumps({"id": i, "label": int(y), "text": t}, ensure_ascii=False)
        for i, y, t in zip(reviews.ids, reviews.labels, reviews.texts)
    )
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as handle:
        handle.write("\n".join(lines) + "\n")


def read_sample(path: Path = TEST_SAMPLE) -> Reviews:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return Reviews([r["text"] for r in rows], np.array([r["label"] for r in rows], np.int32), [r["id"] for r in rows])
