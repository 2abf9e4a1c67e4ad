"""Score reviews with N interpreters in parallel threads (the interpreter releases the GIL in
``invoke()``); results come back in input order and equal one worker's. Used by ``predict``,
``bench`` and ``serve``."""

from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from edge_lstm_device.model import Prediction, SentimentModel

MAX_WORKERS = 64


def default_workers() -> int:
    """One worker per core, at most 4 (a Raspberry Pi 4 or 5 has 4 cores)."""
    return max(1, min(4, os.cpu_count() or 1))


class ModelPool:
    """``workers`` replicas of one :class:`SentimentModel`, each with its own interpreter."""

    def __init__(self, models: Sequence[SentimentModel]) -> None:
        if not models:
            raise ValueError("a pool needs at least one model")
        self.models = list(models)
        self._idle: queue.Queue[SentimentModel] = queue.Queue()
        for model in self.models:
            self._idle.put(model)
        self._executor = ThreadPoolExecutor(len(self.models), thread_name_prefix="edge-lstm-worker")

    @classmethod
    def load(cls, bundle_dir: Path | None = None, model: str | None = None, workers: int | None = None,
             threads: int = 1, interpreter: str | None = None) -> ModelPool:
        """Load the model once (see :meth:`SentimentModel.load`), then ``workers - 1`` replicas."""
        workers = default_workers() if workers is None else workers
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_WORKERS}, got {workers}")
        first = SentimentModel.load(bundle_dir, model, threads, interpreter)
        return cls([first] + [first.replica() for _ in range(workers - 1)])

    @property
    def first(self) -> SentimentModel:
        return self.models[0]

    @property
    def workers(self) -> int:
        return len(self.models)

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions in input order (``ReviewTooLongError`` if a review is over the limits)."""
        return self.predict_ids([self.first.tokenizer.ids(text) for text in texts])

    def predict_ids(self, ids: Sequence[Sequence[int]]) -> list[Prediction]:
        """Predictions in input order. One review goes to an idle worker (so concurrent callers,
        such as a server's requests, run in parallel); more are split, one share per worker."""
        if len(ids) < 2 or self.workers == 1:
            model = self._idle.get()  # blocks while every worker is busy
            try:
                return model.predict_ids(ids)
            finally:
                self._idle.put(model)
        size = -(-len(ids) // self.workers)
        shares = [ids[i : i + size] for i in range(0, len(ids), size)]
        results = self._executor.map(lambda pair: pair[0].predict_ids(pair[1]), zip(self.models, shares))
        return [p for share in results for p in share]

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
