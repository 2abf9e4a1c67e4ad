"""Score reviews with N interpreters in parallel threads (the interpreter releases the GIL in
``invoke()``); results come back in input order and equal one worker's. Each interpreter scores
its share in batches (:class:`~edge_lstm_device.runtime.scoring.TFLiteScorer`). Used by ``predict``,
``bench`` and ``serve``."""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from edge_lstm_device.bundle.rollback import RollbackGuard
from edge_lstm_device.bundle.signing import Trust
from edge_lstm_device.runtime.model import Prediction, SentimentModel
from edge_lstm_device.runtime.reviews import ReviewError, score_each

MAX_WORKERS = 64


def default_workers() -> int:
    """One worker per core, at most 4 (a Raspberry Pi 4 or 5 has 4 cores)."""
    return max(1, min(4, os.cpu_count() or 1))


class ModelPool:
    """Up to ``workers`` replicas of one :class:`SentimentModel`, each with its own interpreter.
    Replicas are made when first needed, so scoring one review costs one interpreter's memory."""

    def __init__(self, models: Sequence[SentimentModel], workers: int | None = None) -> None:
        if not models:
            raise ValueError("a pool needs at least one model")
        self.models = list(models)
        self.workers = max(workers or 0, len(self.models))
        self._idle: queue.Queue[SentimentModel] = queue.Queue()
        for model in self.models:
            self._idle.put(model)
        self._grow_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None  # started on the first batch to split

    @classmethod
    def load(cls, bundle_dir: Path | None = None, model: str | None = None, workers: int | None = None,
             threads: int = 1, interpreter: str | None = None, *, trust: Trust = None,
             calibrate: bool | None = None, guard: RollbackGuard | None = None) -> ModelPool:
        """Load the model once (see :meth:`SentimentModel.load`; ``trust``: the key its manifest
        must be signed with; ``calibrate``: choose it on this CPU; ``guard``: refuse a rollback),
        then ``workers - 1`` replicas."""
        workers = default_workers() if workers is None else workers
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_WORKERS}, got {workers}")
        first = SentimentModel.load(bundle_dir, model, threads, interpreter, trust=trust, calibrate=calibrate, guard=guard)
        return cls([first], workers)

    @property
    def first(self) -> SentimentModel:
        return self.models[0]

    def _borrow(self) -> SentimentModel:
        """An idle model; a new replica while the pool is below ``workers``; else wait for one."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            with self._grow_lock:
                if len(self.models) < self.workers:
                    self.models.append(self.first.replica())
                    return self.models[-1]
            return self._idle.get()

    @contextmanager
    def borrowed(self) -> Iterator[SentimentModel]:
        """A model no other caller uses until the block ends."""
        model = self._borrow()
        try:
            yield model
        finally:
            self._idle.put(model)

    def _grow(self) -> None:
        with self._grow_lock:
            while len(self.models) < self.workers:
                replica = self.first.replica()
                self.models.append(replica)
                self._idle.put(replica)

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions in input order (``ReviewTooLongError`` if a review is over the limits)."""
        return self.predict_ids([self.first.tokenizer.ids(text) for text in texts])

    def encode_each(self, texts: Sequence[str]) -> list[list[int] | ReviewError]:
        """Each review's ids, or why it cannot be scored (the model's :meth:`~SentimentModel.encode_each`)."""
        return self.first.encode_each(texts)

    def predict_each(self, texts: Sequence[str]) -> list[Prediction | ReviewError]:
        """A prediction for each review, or why it has none, split across the workers."""
        return score_each(self.encode_each(texts), self.predict_ids)

    def predict_ids(self, ids: Sequence[Sequence[int]]) -> list[Prediction]:
        """Predictions in input order. One review goes to an idle worker (so concurrent callers,
        such as a server's requests, run in parallel); more are split, one share per worker."""
        if len(ids) < 2 or self.workers == 1:
            with self.borrowed() as model:
                return model.predict_ids(ids)
        size = -(-len(ids) // self.workers)
        shares = [ids[i : i + size] for i in range(0, len(ids), size)]
        if self._executor is None:
            self._grow()
            with self._grow_lock:
                self._executor = self._executor or ThreadPoolExecutor(self.workers, thread_name_prefix="edge-lstm-worker")
        results = self._executor.map(lambda pair: pair[0].predict_ids(pair[1]), zip(self.models, shares))
        return [p for share in results for p in share]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
