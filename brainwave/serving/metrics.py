"""Prometheus metrics of one server (its own registry, so several servers can live in one process), and the
per-call scope that labels them.

Every call runs inside a `request_scope`: it carries the call's request id (echoed to the client, attached to
log lines) and, once the prediction core has resolved it, the model and version that served it. Label values
are only ever names of served models and versions, or "unresolved": a client's arbitrary string never becomes a
time series.
"""
from __future__ import annotations

import contextlib
import re
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import grpc
from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from brainwave.logsetup import REQUEST_ID

UNRESOLVED = "unresolved"
REQUEST_ID_HEADER = "x-request-id"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass
class RequestScope:
    protocol: str  # "grpc" or "rest"
    method: str  # e.g. "PredictionService/Predict"
    request_id: str
    model: str = UNRESOLVED
    version: str = UNRESOLVED


_scope: ContextVar[RequestScope | None] = ContextVar("brainwave_request_scope", default=None)


def request_id(presented: str | None) -> str:
    """The client's own request id when it sent a sane one (so its logs and ours join), else a fresh one."""
    return presented if presented and _CLIENT_ID.fullmatch(presented) else uuid.uuid4().hex


@contextlib.contextmanager
def request_scope(protocol: str, method: str, rid: str) -> Iterator[RequestScope]:
    scope = RequestScope(protocol, method, rid)
    token, id_token = _scope.set(scope), REQUEST_ID.set(rid)
    try:
        yield scope
    finally:
        REQUEST_ID.reset(id_token)
        _scope.reset(token)


def note_servable(servable) -> None:
    """The call is served by this version: label its metrics with it."""
    scope = _scope.get()
    if scope is not None:
        scope.model, scope.version = servable.name, str(servable.version)


def note_model(name: str | None, served: Iterable[str]) -> None:
    """The call named `name`: label it with the model when that is a served one (the version stays unresolved
    unless the core resolved it)."""
    scope = _scope.get()
    if scope is not None and scope.model == UNRESOLVED and name and name in served:
        scope.model = name


class ServingMetrics:
    """What the server exports. Names (the `_total`, `_bucket`, `_sum`, `_count` suffixes are Prometheus's):

    brainwave_requests_total{protocol,method,model,version,code}      calls answered, by status code
    brainwave_request_seconds{protocol,method,model,version}          call latency (histogram)
    brainwave_stage_seconds{model,version,stage}                      one item's time in each pipeline stage
    brainwave_queued_requests{protocol}, brainwave_inflight_requests{protocol}   waiting for / holding a worker
    brainwave_inflight_pixels                                         decoded pixels reserved by running requests
    brainwave_model_versions{model,state}                             versions per state (AVAILABLE, LOADING...)
    brainwave_device_busy_seconds_total{backend}, brainwave_device_runs_total{backend}
    brainwave_device_errors_total{backend,kind}                       kind: timeout, unavailable, error
    brainwave_device_resets_total{backend}                            device resets (fpga: reprogrammed PL)
    grpc_server_started_total, grpc_server_handled_total, grpc_server_handling_seconds,
    grpc_server_msg_received_total, grpc_server_msg_sent_total        go-grpc-prometheus's names and labels
    http_server_request_duration_seconds{method,route,status}         the REST port, by route template
    process_*, python_gc_*, python_info                               prometheus-client's collectors
    """

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        call = ["protocol", "method", "model", "version"]
        self.requests = Counter("brainwave_requests", "Calls answered", [*call, "code"], registry=r)
        self.request_seconds = Histogram("brainwave_request_seconds", "Call latency in the server", call,
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.stage_seconds = Histogram("brainwave_stage_seconds", "Per-stage latency of one batch-1 item",
                                       ["model", "version", "stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.queued = Gauge("brainwave_queued_requests", "Calls accepted and waiting for a worker", ["protocol"],
                            registry=r)
        self.inflight = Gauge("brainwave_inflight_requests", "Calls running on a worker", ["protocol"], registry=r)
        self.inflight_pixels = Gauge("brainwave_inflight_pixels", "Decoded pixels reserved by running requests",
                                     registry=r)
        self.device_busy = Counter("brainwave_device_busy_seconds", "Time the featurizer backend spent running",
                                   ["backend"], registry=r)
        self.device_runs = Counter("brainwave_device_runs", "Featurizer runs", ["backend"], registry=r)
        self.device_errors = Counter("brainwave_device_errors", "Featurizer runs that failed",
                                     ["backend", "kind"], registry=r)
        rpc = ["grpc_type", "grpc_service", "grpc_method"]
        self.grpc_started = Counter("grpc_server_started", "RPCs started on the server", rpc, registry=r)
        self.grpc_handled = Counter("grpc_server_handled", "RPCs completed on the server", [*rpc, "grpc_code"],
                                    registry=r)
        self.grpc_seconds = Histogram("grpc_server_handling_seconds", "RPC handling time", rpc,
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.grpc_received = Counter("grpc_server_msg_received", "Messages received", rpc, registry=r)
        self.grpc_sent = Counter("grpc_server_msg_sent", "Messages sent", rpc, registry=r)
        self.http_seconds = Histogram("http_server_request_duration_seconds", "REST request handling time",
                                      ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self._featurizers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pipeline -> its featurizers

    # --- calls ---------------------------------------------------------------------------------
    def observe_request(self, scope: RequestScope, code: str, seconds: float) -> None:
        labels = (scope.protocol, scope.method, scope.model, scope.version)
        self.requests.labels(*labels, code).inc()
        self.request_seconds.labels(*labels).observe(seconds)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_seconds.labels(method if method in ("GET", "POST") else "other", route, str(status)).observe(seconds)

    # --- pipeline and device -------------------------------------------------------------------
    def _featurizer_stages(self, pipeline) -> list[tuple[int, str]]:
        """(stage index, backend name) of the pipeline's featurizer stages (those that hold a backend)."""
        if pipeline not in self._featurizers:
            self._featurizers[pipeline] = [(i, stage.backend.name) for i, stage in enumerate(pipeline.stages)
                                           if hasattr(getattr(stage, "backend", None), "run")]
        return self._featurizers[pipeline]

    def observe_stages(self, servable, stage_seconds) -> None:
        pipeline = servable.pipeline
        for label, seconds in zip(pipeline.stage_labels, stage_seconds):
            self.stage_seconds.labels(servable.name, str(servable.version), label).observe(seconds)
        for index, backend in self._featurizer_stages(pipeline):
            if index < len(stage_seconds):
                self.device_busy.labels(backend).inc(stage_seconds[index])
                self.device_runs.labels(backend).inc()

    def observe_device_error(self, pipeline, exc: Exception) -> None:
        from brainwave.featurizer.backend import BackendTimeoutError, BackendUnavailableError

        kind = "timeout" if isinstance(exc, BackendTimeoutError) else \
            "unavailable" if isinstance(exc, BackendUnavailableError) else "error"
        for _, backend in self._featurizer_stages(pipeline)[:1]:
            self.device_errors.labels(backend, kind).inc()
            self.device_runs.labels(backend).inc()

    def watch(self, manager, pixel_budget=None) -> None:
        """Export what is read when scraped: versions per state, device resets, pixels in flight."""
        self.registry.register(_ServableCollector(manager, self._featurizer_stages))
        if pixel_budget is not None:
            self.inflight_pixels.set_function(lambda: pixel_budget.in_flight)

    # --- worker pools --------------------------------------------------------------------------
    @contextlib.contextmanager
    def working(self, protocol: str) -> Iterator[None]:
        """A queued call got its worker: it counts as in flight until the block ends."""
        self.queued.labels(protocol).dec()
        self.inflight.labels(protocol).inc()
        try:
            yield
        finally:
            self.inflight.labels(protocol).dec()

    def executor(self, protocol: str, max_workers: int, thread_name_prefix: str) -> ThreadPoolExecutor:
        return _CountingExecutor(self, protocol, max_workers=max_workers, thread_name_prefix=thread_name_prefix)

    # --- exposition ----------------------------------------------------------------------------
    def asgi_app(self):
        """A Starlette app answering GET /metrics (text or OpenMetrics, as the scraper asks); 404 elsewhere."""
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        def metrics(request):
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
            return Response(encoder(self.registry), media_type=content_type)

        return Starlette(routes=[Route("/metrics", metrics, methods=["GET"])])


class _CountingExecutor(ThreadPoolExecutor):
    """The gRPC worker pool, counting calls waiting in its queue and running on its threads."""

    def __init__(self, metrics: ServingMetrics, protocol: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self._metrics, self._protocol = metrics, protocol

    def submit(self, fn, /, *args, **kwargs):
        self._metrics.queued.labels(self._protocol).inc()

        def run():
            with self._metrics.working(self._protocol):
                return fn(*args, **kwargs)
        return super().submit(run)


class _ServableCollector:
    def __init__(self, manager, featurizer_stages: Callable) -> None:
        self.manager, self.featurizer_stages = manager, featurizer_stages

    def collect(self):
        versions = GaugeMetricFamily("brainwave_model_versions", "Versions of each model, by state",
                                     labels=["model", "state"])
        resets = CounterMetricFamily("brainwave_device_resets", "Featurizer device resets", labels=["backend"])
        executors: dict[int, tuple[str, object]] = {}
        for name in self.manager.model_names():
            states: dict[str, int] = {}
            for servable in self.manager.versions(name):
                states[servable.state] = states.get(servable.state, 0) + 1
                pipeline = servable.pipeline
                for index, backend in self.featurizer_stages(pipeline) if pipeline is not None else ():
                    executor = getattr(pipeline.stages[index].backend, "executor", None)
                    if executor is not None:
                        executors[id(executor)] = (backend, executor)
            for state, count in sorted(states.items()):
                versions.add_metric([name, state], count)
        per_backend: dict[str, int] = {}
        for backend, executor in executors.values():
            per_backend[backend] = per_backend.get(backend, 0) + int(getattr(executor, "resets", 0))
        for backend, count in sorted(per_backend.items()):
            resets.add_metric([backend], count)
        yield versions
        yield resets


# --- standard gRPC server metrics ---------------------------------------------------------------
_GRPC_TYPES = {(False, False): "unary", (False, True): "server_stream", (True, False): "client_stream",
               (True, True): "bidi_stream"}


class GrpcMetricsInterceptor(grpc.ServerInterceptor):
    """grpc_server_* as go-grpc-prometheus names them, for every method the server has (auth refusals
    included: this interceptor comes first). Calls refused by --max-concurrent-rpcs never reach a handler
    and are not counted."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        kind = _GRPC_TYPES[(handler.request_streaming, handler.response_streaming)]
        labels = (kind, service, method)
        m = self.metrics

        def finish(context, start: float, failed: bool) -> None:
            code = context.code() or (grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK)
            m.grpc_handled.labels(*labels, code.name).inc()
            m.grpc_seconds.labels(*labels).observe(time.perf_counter() - start)

        def counted(messages, counter):
            for message in messages:
                counter.labels(*labels).inc()
                yield message

        def wrap(behavior):
            def call(request, context):
                m.grpc_started.labels(*labels).inc()
                start = time.perf_counter()
                if handler.request_streaming:
                    request = counted(request, m.grpc_received)
                else:
                    m.grpc_received.labels(*labels).inc()
                if handler.response_streaming:
                    return _streamed(behavior(request, context), lambda failed: finish(context, start, failed),
                                     lambda: m.grpc_sent.labels(*labels).inc())
                try:
                    response = behavior(request, context)
                except BaseException:
                    finish(context, start, True)
                    raise
                m.grpc_sent.labels(*labels).inc()
                finish(context, start, False)
                return response
            return call

        field = {"unary": "unary_unary", "server_stream": "unary_stream", "client_stream": "stream_unary",
                 "bidi_stream": "stream_stream"}[kind]
        return handler._replace(**{field: wrap(getattr(handler, field))})


def _streamed(responses, finish: Callable[[bool], None], sent: Callable[[], None]):
    failed = True
    try:
        for response in responses:
            sent()
            yield response
        failed = False
    finally:
        finish(failed)

