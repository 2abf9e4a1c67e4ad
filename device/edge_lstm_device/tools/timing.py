"""One latency summary for every benchmark: warm-up, then percentiles of single calls."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

WARMUP_CALLS = 10


@dataclass(frozen=True)
class Latency:
    """Milliseconds per call: median, 90th and 99th percentile (linear interpolation), mean."""

    calls: int
    median: float
    p90: float
    p99: float
    mean: float

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples_ms: list[float]) -> Latency:
    if not samples_ms:
        raise ValueError("no latency samples")
    median, p90, p99 = (float(q) for q in np.percentile(samples_ms, [50, 90, 99]))
    mean = float(np.mean(samples_ms))
    return Latency(len(samples_ms), round(median, 3), round(p90, 3), round(p99, 3), round(mean, 3))


def time_calls(call: Callable[[int], object], calls: int, warmup: int = WARMUP_CALLS) -> Latency:
    """Run ``call(i)`` ``warmup`` times untimed, then ``calls`` times timed one by one."""
    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    for i in range(warmup):
        call(i)
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return summarize(samples)
