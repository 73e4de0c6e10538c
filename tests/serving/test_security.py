"""TLS (incl. mutual TLS) and API keys over real gRPC: no key, wrong key, primary, secondary, rotation."""
import json
import logging
import os
import time

import grpc
import pytest

from brainwave.client import PredictionClient
from brainwave.serving.auth import KeyFile, KeyRing
from brainwave.serving.servables import ServableManager
from tests.support import start_server


@pytest.fixture(scope="module")
def keyed_server(resnet50_pipeline, tmp_path_factory):
    keys_file = tmp_path_factory.mktemp("keys") / "keys.json"
    keys_file.write_text(json.dumps({"primary": "primary-key-1", "secondary": "secondary-key-1"}))
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, keys=KeyFile(keys_file, recheck_seconds=0))
    running.keys_file = keys_file
    yield running
    running.server.stop(grace=0)


def _score(address, chelsea, **kwargs):
    with PredictionClient(address, max_retries=0, **kwargs) as client:
        return client.score_image(chelsea)


def test_no_key_and_wrong_key_are_unauthenticated_and_keys_never_logged(keyed_server, chelsea, caplog):
    caplog.set_level(logging.DEBUG)
    for kwargs, message in (({}, "missing API key"), ({"access_token": "guess"}, "invalid API key")):
        with pytest.raises(grpc.RpcError) as info:
            _score(keyed_server.address, chelsea, **kwargs)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert message in info.value.details()
    _score(keyed_server.address, chelsea, access_token="primary-key-1")
    assert "primary-key-1" not in caplog.text and "guess" not in caplog.text


def test_primary_secondary_and_bare_key(keyed_server, chelsea):
    assert _score(keyed_server.address, chelsea, access_token="primary-key-1").shape == (1000,)
    assert _score(keyed_server.address, chelsea, access_token="secondary-key-1").shape == (1000,)
    a = __import__("brainwave.protocol.api", fromlist=["api"]).api()
    request = a.PredictRequest()
    request.inputs["images"].dtype = a.DataType["DT_STRING"]
    request.inputs["images"].string_val.append(chelsea)
    with grpc.insecure_channel(keyed_server.address) as channel:  # the old C# client: the bare key, no "Bearer"
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                   request_serializer=a.PredictRequest.SerializeToString,
                                   response_deserializer=a.PredictResponse.FromString)
        assert "output_alias" in call(request, metadata=[("authorization", "secondary-key-1")], timeout=60).outputs


def test_health_stays_open(keyed_server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(keyed_server.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_keys_rotate_without_restart(keyed_server, chelsea):
    keyed_server.keys_file.write_text(json.dumps({"primary": "primary-key-2", "secondary": "primary-key-1"}))
    os.utime(keyed_server.keys_file, ns=(time.time_ns(), time.time_ns() + 10**9))  # make the change visible
    assert _score(keyed_server.address, chelsea, access_token="primary-key-2").shape == (1000,)
    assert _score(keyed_server.address, chelsea, access_token="primary-key-1").shape == (1000,)  # old primary is secondary
    with pytest.raises(grpc.RpcError) as info:
        _score(keyed_server.address, chelsea, access_token="secondary-key-1")  # retired
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_key_ring_swaps_atomically():
    ring = KeyRing("a")
    assert ring.accepts("a") and not ring.accepts("b")
    ring.set("b", "c")
    assert not ring.accepts("a") and ring.accepts("b") and ring.accepts("c")
    with pytest.raises(ValueError):
        ring.set(None, "")


def test_tls_with_key(resnet50_pipeline, pki, chelsea):
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, keys=KeyRing("tls-key"), tls_cert=pki / "server.crt", tls_key=pki / "server.key")
    try:
        ca = (pki / "ca.crt").read_bytes()
        scores = _score(running.address, chelsea, use_ssl=True, root_certificates=ca, access_token="tls-key")
        assert scores.shape == (1000,)
        with pytest.raises(grpc.RpcError) as info:  # a plaintext client against the TLS port
            with PredictionClient(running.address, max_retries=0, timeout=10, access_token="tls-key") as plain:
                plain.score_image(chelsea)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.server.stop(grace=0)


def test_mutual_tls_requires_a_client_certificate(resnet50_pipeline, pki, chelsea):
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, tls_cert=pki / "server.crt", tls_key=pki / "server.key", tls_client_ca=pki / "ca.crt")
    try:
        ca = (pki / "ca.crt").read_bytes()
        scores = _score(running.address, chelsea, use_ssl=True, root_certificates=ca,
                        client_certificate=(pki / "client.crt").read_bytes(),
                        client_private_key=(pki / "client.key").read_bytes())
        assert scores.shape == (1000,)
        with pytest.raises(grpc.RpcError) as info:
            _score(running.address, chelsea, use_ssl=True, root_certificates=ca, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.server.stop(grace=0)
