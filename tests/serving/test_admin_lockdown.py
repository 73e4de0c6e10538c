"""Secure by default: without keys the admin surface is refused; reloads stay inside the model roots; a reload
cannot silently unload everything; health reports what is really available."""
from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from brainwave.admin_client import ModelAdminClient
from brainwave.serving.servables import ServableManager
from brainwave.serving.versions import VersionPolicy
from tests.support import small_pipeline_zip, start_server


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "small"
    for version in (1, 2):
        small_pipeline_zip(base / str(version) / "model.zip", seed=version)
    return base


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_a_keyless_server_refuses_every_admin_call(base):
    running = start_server(ServableManager())
    try:
        with ModelAdminClient(running.address) as admin:
            for call in (lambda: admin.reload({"small": (base, VersionPolicy.parse("1"), {})}),
                         lambda: admin.set_canary("small", 1, 0.5), lambda: admin.promote("small"),
                         lambda: admin.rollback("small", 1), lambda: admin.figures("small")):
                code, details = _code(call)
                assert code == grpc.StatusCode.PERMISSION_DENIED and "--keys-file" in details
            assert running.manager.model_names() == []
            status = _code(lambda: admin.status("small"))[0]  # read-only model status stays open
            assert status == grpc.StatusCode.NOT_FOUND
    finally:
        running.server.stop(grace=0)


def test_reloads_stay_inside_the_model_roots_and_never_empty_the_server(base, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    small_pipeline_zip(elsewhere / "1" / "model.zip", seed=5)
    running = start_server(ServableManager(), admin_without_keys=True, model_roots=(base,))
    try:
        with ModelAdminClient(running.address) as admin, grpc.insecure_channel(running.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check
            assert health(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            admin.reload({"small": (base, VersionPolicy.parse("1"), {})})
            assert health(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
            for path in (elsewhere, base / ".." / ".." / "elsewhere", "/etc"):
                code, details = _code(lambda: admin.reload({"other": (path, VersionPolicy.parse("1"), {})}))
                assert code == grpc.StatusCode.INVALID_ARGUMENT and "outside the server's model roots" in details
            code, details = _code(lambda: admin.reload({}))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "would unload every model" in details
            assert [s.version for s in running.manager.versions("small")] == [1]
            assert health(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.server.stop(grace=0)
        running.manager.close()
