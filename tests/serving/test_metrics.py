"""Observability: /metrics (only there, on --metrics-host), labels that never carry a client's string, request,
stage, device, queue and process metrics, the standard gRPC server metrics, the Grafana dashboard against the
names we export, and request ids in replies and JSON logs."""
from __future__ import annotations

import base64
import io
import json
import logging
import re
import threading
import time

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from brainwave.client import PredictionClient
from brainwave.featurizer.backend import BackendTimeoutError
from brainwave.protocol.api import api
from brainwave.serving.servables import ServableManager
from tests.support import REPO, start_server

DASHBOARD = REPO / "deploy" / "grafana" / "brainwave.json"


@pytest.fixture(scope="module")
def observed(resnet50_pipeline):
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, rest_port=0, metrics_port=0, metrics_host="127.0.0.1")
    running.rest = f"http://127.0.0.1:{running.server.rest.port}"
    running.metrics = f"http://127.0.0.1:{running.server.metrics_server.port}"
    yield running
    running.server.stop(grace=0)


def scrape(running) -> dict[str, list]:
    """family name -> samples, read over HTTP as Prometheus would."""
    text = httpx.get(running.metrics + "/metrics").text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def traffic(running, chelsea) -> None:
    """One good and one bad call over each protocol."""
    with PredictionClient(running.address) as client:
        client.score_image(chelsea)
    with PredictionClient(running.address, model_name="nope", max_retries=0) as client:
        with pytest.raises(grpc.RpcError):
            client.score_image(chelsea)
    body = {"instances": [{"b64": base64.b64encode(chelsea).decode()}]}
    assert httpx.post(running.rest + "/v1/models/resnet50:predict", json=body, timeout=60).status_code == 200
    assert httpx.post(running.rest + "/v1/models/" + "x" * 500 + ":predict", json=body).status_code == 404


def test_metrics_only_on_metrics_and_on_the_asked_host(observed):
    assert observed.server.metrics_server.host == "127.0.0.1"
    assert httpx.get(observed.metrics + "/metrics").status_code == 200
    for path in ("/", "/anything", "/metrics/x"):
        assert httpx.get(observed.metrics + path).status_code == 404


def test_requests_are_labelled_by_served_model_and_version_or_unresolved(observed, chelsea):
    before = scrape(observed)
    traffic(observed, chelsea)
    after = scrape(observed)

    def delta(**labels) -> float:
        return value(after["brainwave_requests"], "brainwave_requests_total", **labels) - \
            value(before["brainwave_requests"], "brainwave_requests_total", **labels)

    for protocol in ("grpc", "rest"):
        assert delta(protocol=protocol, model="resnet50", version="1", code="OK") == 1
        assert delta(protocol=protocol, model="unresolved", version="unresolved", code="NOT_FOUND") == 1
    models = {s.labels["model"] for s in after["brainwave_requests"]}
    assert models <= {"resnet50", "unresolved"}, "a client's string became a label"
    latency = value(after["brainwave_request_seconds"], "brainwave_request_seconds_count", protocol="rest",
                    model="resnet50", version="1", method="PredictionService/Predict")
    assert latency >= 1
    stages = {s.labels["stage"] for s in after["brainwave_stage_seconds"] if s.labels.get("version") == "1"}
    assert stages == set(observed.manager.resolve("resnet50").pipeline.stage_labels)


def test_device_process_grpc_and_http_metrics(observed, chelsea):
    traffic(observed, chelsea)
    families = scrape(observed)
    assert value(families["brainwave_device_busy_seconds"], "brainwave_device_busy_seconds_total", backend="float") > 0
    assert value(families["brainwave_device_runs"], "brainwave_device_runs_total", backend="float") >= 2
    assert value(families["brainwave_model_versions"], "brainwave_model_versions", model="resnet50",
                 state="AVAILABLE") == 1
    assert value(families["grpc_server_handled"], "grpc_server_handled_total", grpc_method="Predict",
                 grpc_code="NOT_FOUND", grpc_service="tensorflow.serving.PredictionService", grpc_type="unary") >= 1
    assert value(families["grpc_server_started"], "grpc_server_started_total", grpc_method="Predict") >= 2
    assert value(families["http_server_request_duration_seconds"], "http_server_request_duration_seconds_count",
                 route="/v1/models/{name}:predict", status="404", method="POST") >= 1
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "python_gc_collections", "python_info"):
        assert name in families


def test_device_errors_and_resets_are_counted(resnet50_pipeline, chelsea, monkeypatch):
    from types import SimpleNamespace

    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager)
    try:
        featurizer = next(stage for stage in resnet50_pipeline.stages if hasattr(stage, "backend"))

        def late(image):
            raise BackendTimeoutError("the NPU did not finish within 30 s; the device was reset")

        monkeypatch.setattr(featurizer.backend, "run", late)
        monkeypatch.setattr(featurizer.backend, "executor", SimpleNamespace(resets=3), raising=False)
        with PredictionClient(running.address, max_retries=0) as client:
            with pytest.raises(grpc.RpcError) as info:
                client.score_image(chelsea)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        samples = {f.name: f.samples for f in running.server.metrics.registry.collect()}
        assert value(samples["brainwave_device_errors"], "brainwave_device_errors_total", backend="float",
                     kind="timeout") == 1
        assert value(samples["brainwave_device_resets"], "brainwave_device_resets_total", backend="float") == 3
    finally:
        running.server.stop(grace=0)


def test_queued_and_inflight_calls(resnet50_pipeline, chelsea, monkeypatch):
    """With one worker, a call held inside the pipeline is in flight and the next one waits in the queue."""
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, workers=1)
    gauges = running.server.metrics
    release, entered = threading.Event(), threading.Event()
    real_run = resnet50_pipeline.run

    def held(*args, **kwargs):
        entered.set()
        release.wait(60)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(resnet50_pipeline, "run", held)
    calls = []
    try:
        with PredictionClient(running.address) as client:
            calls = [threading.Thread(target=client.score_image, args=(chelsea,)) for _ in range(2)]
            for call in calls:
                call.start()
            assert entered.wait(60)
            deadline = time.monotonic() + 30
            while gauges.queued.labels("grpc")._value.get() < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert gauges.inflight.labels("grpc")._value.get() == 1
            assert gauges.queued.labels("grpc")._value.get() == 1
            release.set()
            for call in calls:
                call.join(60)
        deadline = time.monotonic() + 30  # the reply leaves before the worker is handed back
        while gauges.inflight.labels("grpc")._value.get() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gauges.inflight.labels("grpc")._value.get() == 0 and gauges.queued.labels("grpc")._value.get() == 0
    finally:
        release.set()
        running.server.stop(grace=0)


def _dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    names = set()
    for expr in exprs:
        names |= set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]", expr))
        names |= set(re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", expr))
    return names


def test_the_grafana_dashboard_uses_exactly_the_names_we_export(observed, chelsea, resnet50_pipeline, monkeypatch):
    traffic(observed, chelsea)
    exported = {sample.name for samples in scrape(observed).values() for sample in samples}
    # families that have no sample until something happens: a device error, a reset counter
    exported |= {"brainwave_device_errors_total", "brainwave_device_resets_total"}
    used = _dashboard_metrics()
    assert used, "no metric found in the dashboard's queries"
    assert used <= exported, f"the dashboard queries metrics the server does not export: {sorted(used - exported)}"
    ours = {name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for name in exported
            if name.startswith("brainwave_") and not name.endswith("_created")}
    shown = {name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for name in used}
    assert ours <= shown, f"exported but on no panel: {sorted(ours - shown)}"


def test_request_ids_reach_the_client_and_json_logs(resnet50_pipeline, chelsea):
    from brainwave.logsetup import RequestIdFilter, json_formatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("brainwave.serving")
    logger.addHandler(handler)
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, rest_port=0)
    try:
        request = api().PredictRequest()
        request.model_spec.name = "nope"
        with grpc.insecure_channel(running.address) as channel:
            predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                          request_serializer=api().PredictRequest.SerializeToString,
                                          response_deserializer=api().PredictResponse.FromString)
            with pytest.raises(grpc.RpcError) as info:
                predict(request, timeout=30)
            grpc_id = dict(info.value.trailing_metadata())["x-request-id"]
            _, call = predict.with_call(_image_request(chelsea), timeout=60, metadata=[("x-request-id", "client-7")])
            assert dict(call.trailing_metadata())["x-request-id"] == "client-7"
        rest = httpx.post(f"http://127.0.0.1:{running.server.rest.port}/v1/models/resnet50:predict",
                          json={"instances": [[1.0]]})
        rest_id = rest.headers["x-request-id"]
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        by_id = {line["request_id"]: line for line in lines if line.get("request_id")}
        assert "NOT_FOUND" in by_id[grpc_id]["message"] and by_id[grpc_id]["level"] == "WARNING"
        assert "INVALID_ARGUMENT" in by_id[rest_id]["message"]
        assert {"time", "level", "logger", "message"} <= set(by_id[rest_id])
    finally:
        logger.removeHandler(handler)
        running.server.stop(grace=0)


def _image_request(image: bytes):
    request = api().PredictRequest()
    tensor = request.inputs["images"]
    tensor.dtype = api().DataType["DT_STRING"]
    tensor.tensor_shape.dim.add().size = 1
    tensor.string_val.append(image)
    return request


def test_serve_wires_rest_metrics_and_json_logs(tmp_path):
    """The CLI end to end: `brainwave serve --rest-port --metrics-port --metrics-host --log-format json`."""
    import subprocess
    import sys

    from tests.support import free_port, tensor_pipeline_zip

    model = tensor_pipeline_zip(tmp_path / "numbers" / "model.zip")
    grpc_port, rest_port, metrics_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "brainwave.cli", "serve", str(model), "--host", "127.0.0.1", "--port", str(grpc_port),
         "--rest-port", str(rest_port), "--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1",
         "--log-format", "json", "--no-warmup"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{rest_port}/v1/models/numbers", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        answer = httpx.post(f"http://127.0.0.1:{rest_port}/v1/models/numbers:predict", json={"instances": [[1, 2]]})
        assert answer.status_code == 400
        assert "brainwave_requests_total" in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == answer.headers["x-request-id"] for line in logged), stderr[-2000:]
