"""Tiny hostile requests cannot exhaust the server, cancelled work stops, and every refusal is a clear status
with a short message; after each, the server still answers a real photo (issue "First contact")."""
from __future__ import annotations

import resource
import time

import grpc
import numpy as np
import pytest

from brainwave.client import PredictionClient
from brainwave.protocol.api import api
from brainwave.serving.servables import ServableManager
from tests.support import start_server

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def predict_stub(channel):
    a = api()
    return channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                               request_serializer=a.PredictRequest.SerializeToString,
                               response_deserializer=a.PredictResponse.FromString)


def string_request(values: list[bytes], shape: list[int] | None, model: str = "") -> object:
    request = api().PredictRequest()
    request.model_spec.name = model
    tensor = request.inputs["images"]
    tensor.dtype = api().DataType["DT_STRING"]
    tensor.string_val.extend(values)
    for size in shape or ():
        tensor.tensor_shape.dim.add().size = size
    return request


def call(address: str, request, timeout: float = 120):
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        return predict_stub(channel)(request, timeout=timeout)


def refused(address: str, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(address, request)
    return info.value


def still_serving(address: str, image: bytes) -> None:
    with PredictionClient(address) as client:
        assert client.score_image(image).shape == (1000,)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("shape", [[2 ** 21], [2 ** 40], [2 ** 32, 2 ** 32], [-1], [1] * 40],
                         ids=["2^21", "2^40", "2^32x2^32-wraps", "negative", "rank-40"])
def test_one_value_and_a_huge_shape_costs_nothing(resnet50_server, chelsea, shape):
    """A ~100-byte request whose one string_val would be broadcast to the declared shape."""
    request = string_request([chelsea[:32]], shape)
    assert len(request.SerializeToString()) < 300
    before = peak_rss_mb()
    error = refused(resnet50_server.address, request)
    assert error.code() == INVALID, error.details()
    assert len(error.details()) < 300 and "Traceback" not in error.details()
    assert peak_rss_mb() - before < 50, "the server allocated memory for a shape it should have refused"
    still_serving(resnet50_server.address, chelsea)


def test_too_many_images_are_refused_before_any_decode(resnet50_server, chelsea):
    error = refused(resnet50_server.address, string_request([b"x"] * 65, [65]))
    assert error.code() == INVALID and "65" in error.details()
    still_serving(resnet50_server.address, chelsea)


def test_numeric_fill_is_bounded_by_the_model_input(tmp_path, chelsea):
    """A float-input model: one float_val broadcast to a billion elements is refused; the honest shape works."""
    from brainwave.pipeline import Pipeline
    from tests.support import tensor_pipeline_zip

    manager = ServableManager()
    manager.add("numbers", 1, Pipeline.load(tensor_pipeline_zip(tmp_path / "model.zip")))
    running = start_server(manager)
    try:
        request = api().PredictRequest()
        tensor = request.inputs["images"]
        tensor.dtype = api().DataType["DT_FLOAT"]
        for size in (1 << 15, 1 << 15, 4):
            tensor.tensor_shape.dim.add().size = size
        tensor.float_val.append(1.0)
        error = refused(running.address, request)
        assert error.code() == INVALID and "elements" in error.details()
        with PredictionClient(running.address) as client:
            assert client.score_numpy_array(np.ones(4, np.float32)).shape == (3,)
    finally:
        running.server.stop(grace=0)
        manager.close()


def test_decoded_pixels_are_budgeted_per_request_and_per_server(resnet50_pipeline, chelsea):
    from brainwave.serving.limits import RequestLimits

    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    pixels = 451 * 300  # chelsea.png
    running = start_server(manager, limits=RequestLimits(max_request_pixels=3 * pixels),
                           max_inflight_pixels=2 * pixels)
    try:
        error = refused(running.address, string_request([chelsea] * 4, [4]))
        assert error.code() == INVALID and "pixels" in error.details()  # over the per-request limit
        error = refused(running.address, string_request([chelsea] * 3, [3]))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # fits a request, not the server's budget
        assert "--max-inflight-pixels" in error.details()
        assert call(running.address, string_request([chelsea] * 2, [2])).outputs["output_alias"].tensor_shape.dim[0].size == 2
    finally:
        running.server.stop(grace=0)


def test_pixel_budget_waits_then_refuses():
    from brainwave.errors import ResourceLimitError
    from brainwave.serving.limits import PixelBudget

    budget = PixelBudget(100, wait_s=0.2)
    with budget.reserve(80):
        with pytest.raises(ResourceLimitError, match="server busy"):
            with budget.reserve(30):
                pass
    with budget.reserve(100):  # everything was returned
        assert budget.in_flight == 100
    assert budget.in_flight == 0


def test_a_cancelled_request_stops_between_items(resnet50_server, chelsea):
    before = _histogram_count(resnet50_server, "stage 1 (resnet50 on float)")
    with grpc.insecure_channel(resnet50_server.address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        future = predict_stub(channel).future(string_request([chelsea] * 64, [64]), timeout=300)
        time.sleep(0.5)
        future.cancel()
    time.sleep(2.0)  # whatever item was running finishes; nothing after it starts
    ran = _histogram_count(resnet50_server, "stage 1 (resnet50 on float)") - before
    assert ran < 64, "the server decoded and ran every item of a cancelled request"
    still_serving(resnet50_server.address, chelsea)


def test_a_burst_of_cancelled_requests_leaves_the_server_responsive(resnet50_server, chelsea):
    with grpc.insecure_channel(resnet50_server.address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        futures = [predict_stub(channel).future(string_request([chelsea] * 8, [8]), timeout=300) for _ in range(40)]
        for future in futures:
            future.cancel()
    time.sleep(1.0)
    still_serving(resnet50_server.address, chelsea)


def _histogram_count(server, stage: str) -> float:
    for metric in server.server.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "brainwave_stage_seconds_count" and sample.labels.get("stage") == stage:
                return sample.value
    return 0.0


def test_concurrent_rpcs_beyond_the_limit_get_resource_exhausted(resnet50_pipeline, chelsea):
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, max_concurrent_rpcs=2, workers=4)
    try:
        codes = []
        with grpc.insecure_channel(running.address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
            futures = [predict_stub(channel).future(string_request([chelsea] * 6, [6]), timeout=300) for _ in range(6)]
            for future in futures:
                try:
                    future.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    codes.append(exc.code())
                    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        assert "Concurrent RPC limit" in exc.details()
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and grpc.StatusCode.OK in codes
        still_serving(running.address, chelsea)
    finally:
        running.server.stop(grace=0)


def test_a_20kb_model_name_is_not_echoed(resnet50_server, chelsea):
    error = refused(resnet50_server.address, string_request([chelsea], [1], model="m" * 20_000))
    assert error.code() == grpc.StatusCode.NOT_FOUND  # not RESOURCE_EXHAUSTED from an oversized trailer
    assert len(error.details()) < 400
    still_serving(resnet50_server.address, chelsea)


def test_duplicate_output_filter_is_invalid(resnet50_server, chelsea):
    request = string_request([chelsea], [1])
    request.output_filter.extend(["output_alias", "output_alias"])
    error = refused(resnet50_server.address, request)
    assert error.code() == INVALID and "more than once" in error.details()


def test_an_internal_error_does_not_leak_its_text(resnet50_pipeline, chelsea, monkeypatch):
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager)
    try:
        def broken(*args, **kwargs):
            raise RuntimeError("/secret/path/inside/the/server")

        monkeypatch.setattr(resnet50_pipeline, "run", broken)
        error = refused(running.address, string_request([chelsea], [1]))
        assert error.code() == grpc.StatusCode.INTERNAL and "secret" not in error.details()
        monkeypatch.undo()
        still_serving(running.address, chelsea)
    finally:
        running.server.stop(grace=0)


def test_health_follows_availability(resnet50_pipeline):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    manager = ServableManager()
    running = start_server(manager)
    try:
        with grpc.insecure_channel(running.address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            assert check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            manager.add("resnet50", 1, resnet50_pipeline)
            assert check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.server.stop(grace=0)
