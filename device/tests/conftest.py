"""Device tests: they need only the device package, numpy, a TFLite interpreter and pytest, so
they run on a Raspberry Pi from a checkout: ``python -m pytest device/tests``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from edge_lstm_device.runtime.model import SentimentModel

# 300 real IMDB test reviews (the host package's shipped sample: plain gzipped JSON lines)
SAMPLE = Path(__file__).resolve().parents[2] / "edge_lstm" / "samples" / "test_reviews.jsonl.gz"


def sample_reviews() -> tuple[list[str], list[int]]:
    """Texts and labels (1 = positive) of the shipped sample."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return [r["text"] for r in records], [int(r["label"]) for r in records]


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel.load()


@pytest.fixture(scope="session", autouse=True)
def calibration_cache(tmp_path_factory: pytest.TempPathFactory):
    """The device's cache (calibration choices, probed files) of this test session: a choice cached
    by an earlier session, or by the user, cannot decide which model a test gets."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGE_LSTM_CACHE", str(tmp_path_factory.mktemp("edge-lstm-cache")))
        yield
