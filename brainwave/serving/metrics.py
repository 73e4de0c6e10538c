"""Prometheus metrics of one server (its own registry, so several servers can live in one process)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("brainwave_requests", "gRPC requests handled", ["method", "model", "code"], registry=self.registry)
        self.request_seconds = Histogram("brainwave_request_seconds", "gRPC request latency", ["method", "model"],
                                         buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.stage_seconds = Histogram("brainwave_stage_seconds", "Per-stage latency of one batch-1 item",
                                       ["model", "version", "stage"], buckets=_LATENCY_BUCKETS, registry=self.registry)

    def observe_request(self, method: str, model: str, code: str, seconds: float) -> None:
        self.requests.labels(method, model, code).inc()
        self.request_seconds.labels(method, model).observe(seconds)

    def observe_stages(self, servable, stage_seconds) -> None:
        for label, seconds in zip(servable.pipeline.stage_labels, stage_seconds):
            self.stage_seconds.labels(servable.name, str(servable.version), label).observe(seconds)

    def serve_http(self, port: int, address: str = "127.0.0.1") -> None:
        start_http_server(port, addr=address, registry=self.registry)
