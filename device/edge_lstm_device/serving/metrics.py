"""What ``serve``'s ``GET /metrics`` reports (Prometheus text format, :mod:`edge_lstm_device.serving.prometheus`)."""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Protocol

from edge_lstm_device.serving.connections import BodyBudget, ConnectionSlots
from edge_lstm_device.serving.prometheus import Counter, Gauge, Histogram, Labels, Metric, render, resident_bytes
from edge_lstm_device.serving.service import Services


class Observed(Protocol):
    """What the gauges read of a server when scraped (no import of the server: no cycle)."""

    slots: ConnectionSlots
    bodies: BodyBudget
    services: Services

    @property
    def in_flight(self) -> int: ...

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
OTHER_PATH = "other"  # the label of every path the server does not answer (keeps the label set small)


class ServeMetrics:
    """The counters a server updates, and the gauges it reads when scraped."""

    def __init__(self, server: Observed, paths: Collection[str]) -> None:
        self.server, self.paths = server, paths  # paths: those answered (any other is OTHER_PATH)
        self.requests = Counter("edge_lstm_http_requests_total", "HTTP requests answered, by path and status.")
        self.latency = Histogram("edge_lstm_http_request_duration_seconds",
                                 "Time from a request's first line to its answer, by path.", LATENCY_BUCKETS)
        self.reviews = Counter("edge_lstm_reviews_scored_total", "Reviews scored by POST /v1/predict.")
        self.batches = Histogram("edge_lstm_batch_size", "Reviews per interpreter call.", BATCH_BUCKETS)
        self.reloads = Counter("edge_lstm_reloads_total", "Bundles loaded on SIGHUP.")
        self.reload_failures = Counter("edge_lstm_reload_failures_total",
                                       "SIGHUP reloads that failed (the previous model kept serving).")
        self.reload_fallbacks = Counter("edge_lstm_reload_fallbacks_total",
                                        "SIGHUP reloads that serve another model than the bundle's first choice "
                                        "(a faster one did not load).")

    def answered(self, path: str, status: int, seconds: float) -> None:
        path = path if path in self.paths else OTHER_PATH
        self.requests.inc(path=path, status=str(status))
        self.latency.observe(seconds, path=path)

    def families(self) -> list[Metric]:
        server = self.server
        return [
            self.requests, self.latency, self.reviews, self.batches, self.reloads, self.reload_failures,
            self.reload_fallbacks,
            Gauge("edge_lstm_http_requests_in_flight", "Requests being answered.", lambda: server.in_flight),
            Gauge("edge_lstm_connections_open", "Open client connections.", lambda: server.slots.open),
            Gauge("edge_lstm_connections_max", "The most open connections (--max-connections).",
                  lambda: server.slots.limit),
            _Read("edge_lstm_connections_closed_total", "Connections the server closed: evicted (all slots taken, "
                  "it waited or read a body longest), timeout (no request head or body in time), refused (503, every slot busy).",
                  lambda: {(("reason", r),): server.slots.closed[r] for r in ("evicted", "timeout", "refused")}),
            Gauge("edge_lstm_body_bytes_reserved", "Bytes of request bodies being received or parsed "
                  "(at most --max-body-memory).", lambda: server.bodies.reserved),
            _Read("edge_lstm_bodies_refused_total", "Request bodies refused with 503: --max-body-memory was spent.",
                  lambda: server.bodies.refused),
            Gauge("edge_lstm_model_info", "The model being served (value 1).", self._model_labels),
            Gauge("edge_lstm_model_loaded_timestamp_seconds", "When the model being served was loaded.",
                  lambda: server.services.current.loaded_at),
            Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", resident_bytes),
            Gauge("process_threads", "Threads of the server process.", lambda: threading.active_count()),
        ]

    def render(self) -> str:
        return render(self.families())

    def _model_labels(self) -> dict[Labels, float]:
        info = self.server.services.current.info
        labels = (("model", info["model"]), ("file", info.get("file", "")), ("sha256", info["sha256"]["model"]),
                  ("interpreter", info.get("interpreter", "")))
        return {labels: 1}


class _Read(Gauge):
    """A counter kept elsewhere, read when scraped."""

    kind = "counter"
