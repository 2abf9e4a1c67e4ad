"""The Prometheus text exposition format (version 0.0.4), standard library only: counters,
gauges and histograms with labels, written by :func:`render` for ``serve``'s ``GET /metrics``."""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Callable, Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = labels + extra
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))


class Metric:
    """A named family of samples, one per label set."""

    kind = "untyped"

    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(Metric):
    """A count that only goes up, per label set (its name ends in ``_total``)."""

    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(k)} {_number(v)}" for k, v in items] or [f"{self.name} 0"]


class Gauge(Metric):
    """A value read when scraped (``read`` returns ``{labels: value}`` or one number)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float | dict[Labels, float]]) -> None:
        super().__init__(name, help_text)
        self.read = read

    def lines(self) -> list[str]:
        values = self.read()
        if not isinstance(values, dict):
            values = {(): values}
        return [f"{self.name}{_labels(k)} {_number(v)}" for k, v in sorted(values.items())]


class Histogram(Metric):
    """Observations counted in cumulative buckets, per label set."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help_text)
        self.bounds = sorted(buckets)
        self._series: dict[Labels, list[float]] = {}  # per-bucket counts (not cumulative), then +Inf, then the sum

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._series.setdefault(key, [0.0] * (len(self.bounds) + 2))
            series[bisect.bisect_left(self.bounds, value)] += 1
            series[-1] += value

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        out = []
        for key, series in items:
            running = 0.0
            for bound, count in zip([*self.bounds, float("inf")], series[:-1]):
                running += count
                out.append(f"{self.name}_bucket{_labels(key, (('le', _number(bound)),))} {_number(running)}")
            out += [f"{self.name}_sum{_labels(key)} {_number(series[-1])}", f"{self.name}_count{_labels(key)} {_number(running)}"]
        return out


def render(metrics: Iterable[Metric]) -> str:
    """The exposition text of ``metrics``, one family after the other."""
    return "".join(line + "\n" for metric in metrics for line in [*metric.header(), *metric.lines()])


def resident_bytes() -> float:
    """This process's resident memory (Linux: /proc/self/statm; elsewhere the peak, from getrusage)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource  # not on every platform: only needed here

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak * (1 if os.uname().sysname == "Darwin" else 1024)
