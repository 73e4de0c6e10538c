"""The container image, built and run here: a Docker engine started by the fixture (private socket and data
root, vfs storage, no bridge network), debian:bookworm-slim made by debootstrap (deploy/docker/base-image.sh,
tarball cached across runs), `brainwave image build` of the repository's Dockerfile; the container scores a
real photo over gRPC, turns healthy through the gRPC health service, and drains on `docker stop`.

Skipped, with the reason, only where no Docker engine can start. Everything it made (engine, images,
containers, data root) is removed afterwards; the base tarball stays in the cache."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from brainwave.client import PredictionClient, check_health
from brainwave.image import build_image
from tests.support import REPO, free_port, pipeline_builder

# The first test's setup builds the image: a cold build on a vfs engine takes longer than the default timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

TAG = "brainwave:test"
TIGER_CAT = 282  # what the demo prints for chelsea.png on the emulator (README)


def docker(env: dict, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr.strip()[-2000:]}"
    return result


@pytest.fixture(scope="module")
def engine():
    """DOCKER_HOST for a dockerd of our own, stopped and wiped after the module."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("no Docker engine can start here: dockerd is not installed (scripts/setup.d/70-deploy.sh)")
    if os.geteuid() != 0:
        pytest.skip("no Docker engine can start here: dockerd needs root")
    root = Path(tempfile.mkdtemp(prefix="brainwave-docker-", dir="/var/tmp"))  # vfs layers are full copies: GBs
    socket = root / "docker.sock"
    log = root / "dockerd.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "--pidfile",
             str(root / "dockerd.pid"), "--host", f"unix://{socket}", "--storage-driver=vfs", "--iptables=false",
             "--ip6tables=false", "--bridge=none", "--ip-masq=false"], stdout=out, stderr=subprocess.STDOUT)
    env = {**os.environ, "DOCKER_HOST": f"unix://{socket}"}
    try:
        deadline = time.monotonic() + 60
        while docker(env, "version", timeout=30, check=False).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = " | ".join(log.read_text().strip().splitlines()[-3:])
                pytest.skip(f"no Docker engine can start here: {tail}")
            time.sleep(0.5)
        yield env
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
        for mount in mounts_under(root):  # dockerd leaves its network namespace mounted
            subprocess.run(["umount", "--lazy", mount], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def mounts_under(root: Path) -> list[str]:
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return sorted((p for p in points if p.startswith(f"{root}/")), reverse=True)


@pytest.fixture(scope="module")
def image(engine):
    result = subprocess.run(["bash", str(REPO / "deploy" / "docker" / "base-image.sh")], capture_output=True,
                            text=True, env=engine, timeout=1200)
    assert result.returncode == 0, result.stderr
    # A TLS-intercepting proxy between this machine and the registries signs with a locally added CA: the
    # build stage needs it too (it never reaches the runtime image).
    local_cas = tuple(sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")))
    built = build_image(REPO, TAG, network="host", ca_certs=local_cas, env=engine)
    print(f"\nbuilt {TAG}: {built.size_bytes / 1e9:.2f} GB in {built.seconds:.0f} s")
    yield TAG
    docker(engine, "rmi", "-f", TAG, check=False)
    docker(engine, "image", "prune", "-af", check=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """/models for the container: the demo's EfficientNet-Lite0 pipeline, readable by its unprivileged user."""
    folder = tmp_path_factory.mktemp("models")
    model = pipeline_builder("efficientnet-lite0").build_model_zip(folder / "model.zip")
    model.chmod(0o644)
    folder.chmod(0o755)
    return folder


def test_image_runs_unprivileged_with_a_grpc_healthcheck(engine, image):
    config = json.loads(docker(engine, "image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["brainwave", "serve"]
    assert "brainwave health" in " ".join(config["Healthcheck"]["Test"])


def test_container_scores_a_photo_and_drains_on_docker_stop(engine, image, models):
    port = free_port()
    name = f"brainwave-test-{port}"
    address = f"127.0.0.1:{port}"
    # Read-only root file system with a /tmp, as the Kubernetes manifests run it; calls in flight get 60 s.
    docker(engine, "run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
           "-v", f"{models}:/models:ro", "-e", f"BRAINWAVE_PORT={port}", "-e", "BRAINWAVE_GRACE=60", image,
           "/models/model.zip", "--host", "127.0.0.1")
    try:
        deadline = time.monotonic() + 600
        while True:
            state = json.loads(docker(engine, "inspect", name).stdout)[0]["State"]
            assert state["Running"], docker(engine, "logs", name).stderr[-2000:]
            try:
                if check_health(address, timeout=2) == "SERVING":
                    break
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            assert time.monotonic() < deadline, "the container did not become SERVING in 10 minutes"
            time.sleep(1)

        photo = (REPO / "samples" / "images" / "chelsea.png").read_bytes()
        with PredictionClient(address) as client:
            probabilities = client.score_image(photo)
        assert probabilities.shape == (1000,) and int(np.argmax(probabilities)) == TIGER_CAT

        while json.loads(docker(engine, "inspect", name).stdout)[0]["State"]["Health"]["Status"] != "healthy":
            assert time.monotonic() < deadline, "HEALTHCHECK never passed"
            time.sleep(1)

        # Calls in flight when `docker stop` sends SIGTERM: each answered in full.
        answers, errors = [], []

        def call() -> None:
            try:
                with PredictionClient(address, max_retries=0, timeout=300) as client:
                    answers.append(client.score_images([photo] * 4))
            except Exception as exc:  # noqa: BLE001 - counted, and the assertion shows it
                errors.append(exc)

        callers = [threading.Thread(target=call) for _ in range(3)]
        for caller in callers:
            caller.start()
        time.sleep(1.0)  # the calls are on their way (the 2 s drain delay covers any still in transit)
        stopped = time.monotonic()
        docker(engine, "stop", "--time", "120", name)
        for caller in callers:
            caller.join(300)
        print(f"\ndocker stop took {time.monotonic() - stopped:.1f} s; {len(answers)} calls answered, "
              f"{len(errors)} failed")
        assert not errors, errors
        assert [a.shape for a in answers] == [(4, 1000)] * 3
        state = json.loads(docker(engine, "inspect", name).stdout)[0]["State"]
        logs = docker(engine, "logs", name)
        assert state["ExitCode"] == 0, logs.stdout[-1000:] + logs.stderr[-1000:]
        assert "received SIGTERM" in logs.stdout + logs.stderr and "stopped" in logs.stdout + logs.stderr
    finally:
        docker(engine, "rm", "-f", name, check=False)
