"""PredictionClient's retries are gRPC's own retry policy (the channel's service config): UNAVAILABLE is
retried for the idempotent calls, up to the configured attempts; no other status is. Its round_robin option
balances calls over every address of the target (client-side load balancing, as with a headless Service)."""
from __future__ import annotations

import json
from concurrent import futures

import grpc
import numpy as np
import pytest

from brainwave.client import GRPC_MAX_ATTEMPTS, PredictionClient, service_config
from brainwave.protocol.api import PREDICTION_SERVICE, api
from brainwave.protocol.tensors import numpy_to_tensor


class ScriptedPredict:
    """A Predict endpoint that answers the first calls with the scripted statuses, then with a tensor."""

    def __init__(self, statuses: list[grpc.StatusCode]) -> None:
        self.statuses = list(statuses)
        self.calls = 0

    def __call__(self, request, context):
        self.calls += 1
        if self.statuses:
            context.abort(self.statuses.pop(0), "scripted")
        response = api().PredictResponse()
        response.outputs["output_alias"].CopyFrom(numpy_to_tensor(np.arange(3, dtype=np.float32)[np.newaxis]))
        return response


@pytest.fixture
def scripted():
    servers = []

    def serve(statuses: list[grpc.StatusCode]) -> tuple[str, ScriptedPredict]:
        handler = ScriptedPredict(statuses)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        method = grpc.unary_unary_rpc_method_handler(handler, request_deserializer=api().PredictRequest.FromString,
                                                     response_serializer=api().PredictResponse.SerializeToString)
        service = grpc.method_handlers_generic_handler(PREDICTION_SERVICE, {"Predict": method})
        server.add_generic_rpc_handlers((service,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}", handler

    yield serve
    for server in servers:
        server.stop(0)


def test_unavailable_is_retried_by_the_channel(scripted):
    address, handler = scripted([grpc.StatusCode.UNAVAILABLE] * 3)
    with PredictionClient(address, max_retries=3, retry_backoff=0.01) as client:
        assert client.score_numpy_array(np.zeros(4, np.float32)).tolist() == [0.0, 1.0, 2.0]
    assert handler.calls == 4


def test_retries_stop_at_the_configured_attempts(scripted):
    address, handler = scripted([grpc.StatusCode.UNAVAILABLE] * 3)
    with PredictionClient(address, max_retries=1, retry_backoff=0.01) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.score_numpy_array(np.zeros(4, np.float32))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and handler.calls == 2


@pytest.mark.parametrize("status", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                                    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL])
def test_other_statuses_are_not_retried(scripted, status):
    address, handler = scripted([status])
    with PredictionClient(address, max_retries=3, retry_backoff=0.01) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.score_numpy_array(np.zeros(4, np.float32))
    assert info.value.code() == status and handler.calls == 1


def test_no_retries_means_one_attempt(scripted):
    address, handler = scripted([grpc.StatusCode.UNAVAILABLE])
    with PredictionClient(address, max_retries=0) as client:
        with pytest.raises(grpc.RpcError):
            client.score_numpy_array(np.zeros(4, np.float32))
    assert handler.calls == 1


def test_service_config_names_only_the_idempotent_calls():
    assert service_config(0, 0.2) is None
    config = json.loads(service_config(10, 0.2))
    (method_config,) = config["methodConfig"]
    policy = method_config["retryPolicy"]
    assert policy["maxAttempts"] == GRPC_MAX_ATTEMPTS  # gRPC's cap, not 11
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    names = {(n["service"], n["method"]) for n in method_config["name"]}
    assert names == {("tensorflow.serving.PredictionService", "Predict"),
                     ("tensorflow.serving.PredictionService", "GetModelMetadata"),
                     ("tensorflow.serving.ModelService", "GetModelStatus")}


def test_round_robin_spreads_calls_over_every_address(scripted):
    (first, a), (second, b) = scripted([]), scripted([])
    target = f"ipv4:{first},{second}"  # what a headless Service's DNS name resolves to, here on loopback
    with PredictionClient(target) as client:  # gRPC's default (pick_first): every call to one address
        for _ in range(20):
            client.score_numpy_array(np.zeros(4, np.float32))
    assert sorted((a.calls, b.calls)) == [0, 20]
    with PredictionClient(target, load_balancing="round_robin") as client:
        for _ in range(200):  # until both addresses are connected and taking turns
            client.score_numpy_array(np.zeros(4, np.float32))
            if min(a.calls, b.calls) >= 5:
                break
    assert min(a.calls, b.calls) >= 5, (a.calls, b.calls)
