"""Group concurrent callers' reviews into one interpreter call (``serve``'s ``/v1/predict``).

A caller submits its reviews' token ids as one job and blocks for its predictions
(:meth:`Batcher.predict_ids`), or is called back with them (:meth:`Batcher.submit`). Each of the
pool's ``workers`` scoring threads takes the first waiting job, then waits up to ``window_s`` for
more until the batch holds ``max_batch`` reviews, borrows a model and scores the whole batch in one
``predict_ids`` call. A review's score does not depend on its batch mates, so each caller gets what
scoring its reviews alone gives. One thread collects at a time (the others wait their turn), so
jobs that arrive during a window join that window's batch instead of starting another.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from typing import Callable, Sequence

from edge_lstm_device.runtime.model import Prediction
from edge_lstm_device.runtime.pool import ModelPool
from edge_lstm_device.runtime.scoring import MAX_BATCH

DEFAULT_WINDOW_S = 0.001
_NO_COLLECTOR = sys.maxsize  # the wanted count while no thread waits for jobs: submitting wakes nobody


class BatcherClosed(RuntimeError):
    """A job was submitted after :meth:`Batcher.close`."""


Done = Callable[[list[Prediction], "BaseException | None"], None]  # told a job's predictions, or its error


class _Job:
    """One caller's reviews, and whom to tell their predictions or their error."""

    __slots__ = ("ids", "finish")

    def __init__(self, ids: Sequence[Sequence[int]], finish: Done) -> None:
        self.ids, self.finish = ids, finish


class Batcher:
    """``pool.workers`` scoring threads that batch the reviews of concurrent callers."""

    def __init__(self, pool: ModelPool, max_batch: int = MAX_BATCH, window_s: float = DEFAULT_WINDOW_S) -> None:
        if max_batch < 1 or not window_s >= 0:
            raise ValueError(f"need max_batch >= 1 and window_s >= 0, got {max_batch} and {window_s}")
        self.pool, self.max_batch, self.window_s = pool, max_batch, window_s
        self.calls = self.reviews = 0  # predict_ids calls that succeeded, and the reviews they scored
        self.on_batch: Callable[[int], None] | None = None  # told each batch's size (serve's metrics)
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # reviews in self._jobs
        self._wanted = _NO_COLLECTOR  # reviews queued that end the waiting collector's wait
        self._closed = False
        self._changed = threading.Condition()
        self._collecting = threading.Lock()  # one thread collects a batch at a time
        self._threads = [threading.Thread(target=self._run, name=f"edge-lstm-batcher-{i}", daemon=True)
                         for i in range(pool.workers)]
        for thread in self._threads:
            thread.start()

    def predict_ids(self, ids: Sequence[Sequence[int]]) -> list[Prediction]:
        """Predictions for ``ids`` in order, once a scoring thread has scored them; raises what
        scoring raised (e.g. ``ModelRunError``), or :class:`BatcherClosed`."""
        if not ids:
            return []
        done = threading.Event()
        outcome: list = []

        def finish(predictions: list[Prediction], error: BaseException | None) -> None:
            outcome[:] = [predictions, error]
            done.set()

        self.submit(ids, finish)
        done.wait()
        predictions, error = outcome
        if error is not None:
            raise error
        return predictions

    def submit(self, ids: Sequence[Sequence[int]], done: Done) -> None:
        """Score ``ids`` without waiting: a scoring thread calls ``done(predictions, None)``, or
        ``done([], error)`` with what scoring raised; :class:`BatcherClosed` is raised here."""
        self._enqueue(_Job(ids, done))

    def _enqueue(self, job: _Job) -> None:
        with self._changed:
            if self._closed:
                raise BatcherClosed("the batcher is closed")
            self._jobs.append(job)
            self._queued += len(job.ids)
            if self._queued >= self._wanted:
                self._changed.notify()

    @property
    def queued(self) -> int:
        """Reviews submitted and not yet taken by a scoring thread."""
        return self._queued

    def counts(self) -> dict[str, int]:
        """Interpreter calls (batches) made and reviews scored so far."""
        with self._changed:
            return {"calls": self.calls, "reviews": self.reviews}

    def close(self, timeout: float | None = None) -> None:
        """Score the jobs already submitted, then stop the threads (refusing new jobs)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._collecting:
                batch = self._collect()
            if not batch:
                return
            self._score(batch)

    def _collect(self) -> list[_Job]:
        """The first waiting job and those that join it within the window; [] once closed and idle."""
        with self._changed:
            self._wanted = 1
            self._changed.wait_for(lambda: self._jobs or self._closed)
            if not self._jobs:
                return []
            batch = [self._take()]
            room = self.max_batch - len(batch[0].ids)
            if room > 0 and self.window_s > 0:
                self._wanted = room
                self._changed.wait_for(lambda: self._queued >= room or self._closed, self.window_s)
            while self._jobs and len(self._jobs[0].ids) <= room:  # in order: a job too large waits
                room -= len(self._jobs[0].ids)
                batch.append(self._take())
            self._wanted = _NO_COLLECTOR
            return batch

    def _take(self) -> _Job:
        job = self._jobs.popleft()
        self._queued -= len(job.ids)
        return job

    def _score(self, batch: list[_Job]) -> None:
        """Score ``batch`` in one call and hand each job its predictions. When a batch of several
        jobs fails, each job is scored alone, so the error reaches only the jobs it comes from."""
        ids = [row for job in batch for row in job.ids]
        try:
            with self.pool.borrowed() as model:
                predictions = model.predict_ids(ids)
        except Exception as err:  # noqa: BLE001 -- not handled here: re-raised in each caller's thread
            if len(batch) > 1:
                for job in batch:
                    self._score([job])
                return
            batch[0].finish([], err)
            return
        with self._changed:
            self.calls += 1
            self.reviews += len(ids)
        if self.on_batch is not None:
            self.on_batch(len(ids))
        start = 0
        for job in batch:
            job.finish(predictions[start : start + len(job.ids)], None)
            start += len(job.ids)
