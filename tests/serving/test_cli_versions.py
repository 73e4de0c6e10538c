"""The version-management commands against a `brainwave serve --base-path` process."""
import subprocess
import sys
import time

import grpc
import pytest

from brainwave.client import PredictionClient
from tests.support import free_port, skimage_image, small_pipeline_zip
from tests.serving.test_cli import run_cli


@pytest.fixture(scope="module")
def versioned_process(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli-versions")
    for version in (1, 2, 3):
        small_pipeline_zip(base / str(version) / "model.zip", seed=version)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "brainwave.cli", "serve", "--base-path", str(base), "--versions", "1,2",
         "--label", "stable=1", "--name", "small", "--host", "127.0.0.1", "--port", str(port), "--backend", "float",
         "--admin-without-keys"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    address = f"127.0.0.1:{port}"
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + 300
    with grpc.insecure_channel(address) as channel:
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
    yield address, base
    process.terminate()
    process.wait(timeout=60)


def version_answering(address):
    with PredictionClient(address, model_name="small") as client:
        client.score_image(skimage_image("chelsea.png"))
        return client.last_model_spec.version.value


def test_canary_versions_promote_rollback(versioned_process):
    address, base = versioned_process
    assert version_answering(address) == 1
    result = run_cli("canary", "small", "--address", address, "--version", "2", "--share", "0.25")
    assert result.returncode == 0, result.stderr
    assert "25%" in result.stdout and "canary" in result.stdout
    seen = [version_answering(address) for _ in range(8)]
    assert seen.count(2) == 2  # 25% of 8, deterministic split
    table = run_cli("versions", "small", "--address", address).stdout
    assert "stable" in table and "AVAILABLE" in table
    result = run_cli("promote", "small", "--address", address)
    assert result.returncode == 0 and "version 2 is now stable; unloaded 1" in result.stderr
    assert version_answering(address) == 2
    result = run_cli("rollback", "small", "--address", address, "--to", "1")
    assert result.returncode == 0, result.stderr
    assert "version 1 is now stable; unloaded 2" in result.stderr
    assert version_answering(address) == 1
    result = run_cli("reload", "small", "--address", address, "--base-path", str(base), "--versions", "latest")
    assert result.returncode == 0, result.stderr
    assert version_answering(address) == 3


def test_bad_label_is_a_clear_error(versioned_process):
    address, _ = versioned_process
    result = run_cli("canary", "small", "--address", address, "--version", "9")
    assert result.returncode == 1
    assert "FAILED_PRECONDITION" in result.stderr or "NOT_FOUND" in result.stderr
