"""Replicas behind a real L7 load balancer: three `brainwave serve` processes on loopback behind HAProxy
(an HTTP/2 gRPC proxy health-checking each through the gRPC health service), and a fourth whose model cannot
load, under 8 closed-loop clients (PredictionClient with its retry policy). Every failed call is counted.

The load runs until a number of calls has succeeded after the event under test (never for a fixed time), so
a slow machine makes the tests longer, not red."""
from __future__ import annotations

import shutil

import pytest

from tests.deploy.harness import cluster, watch_health

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None,
                                reason="HAProxy is not installed (scripts/setup.d/70-deploy.sh installs it)")

CLIENTS = 8
HEALTHY = ("r1", "r2", "r3")


@pytest.fixture(scope="module")
def replicas(small_zip, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("replicas")
    broken = workdir / "broken.zip"
    broken.write_bytes(small_zip.read_bytes()[: small_zip.stat().st_size // 2])  # a truncated archive
    serve = [str(small_zip), "--drain-delay", "5"]  # HAProxy notices NOT_SERVING in about 0.4 s
    local = cluster.LocalCluster(workdir, serve, replicas=len(HEALTHY), extra={"broken": [str(broken)]})
    local.start(wait=HEALTHY)
    yield local
    local.stop()


def load(replicas, photo: bytes) -> cluster.Load:
    return cluster.Load(replicas.proxy.address, photo, clients=CLIENTS, seconds=600).start()


def report(what: str, replicas, before: dict[str, int], result) -> dict[str, int]:
    spread = {name: count - before.get(name, 0) for name, count in replicas.proxy.requests().items()}
    print(f"\n{what}: {result.ok} calls answered, {result.failures} failed {dict(result.failed)}; "
          f"per replica {spread}")
    return spread


def test_load_spreads_across_replicas(replicas, photo):
    before = replicas.proxy.requests()
    running = load(replicas, photo)
    running.wait_for(600)
    result = running.stop()
    spread = report("spread", replicas, before, result)
    assert result.failures == 0, result.failed
    total = sum(spread.values())
    for name in HEALTHY:  # round robin: each gets about a third
        assert spread[name] >= total / 6, spread


def test_kill_9_of_a_replica_under_load_fails_no_call(replicas, photo):
    before = replicas.proxy.requests()
    running = load(replicas, photo)
    running.wait_for(100)
    victim = replicas.replicas["r2"]
    assert replicas.proxy.requests()["r2"] > before["r2"]  # it had been taking calls
    assert victim.kill() == -9
    answered = running.result.ok
    running.wait_for(answered + 300)  # the survivors carry the load
    victim.start()  # and it comes back
    victim.wait_serving()
    replicas.proxy.wait_status("r2", "UP")
    running.wait_for(running.result.ok + 100)
    result = running.stop()
    report("kill -9 of r2", replicas, before, result)
    assert result.failures == 0, result.failed


def test_rolling_restart_fails_no_call(replicas, photo):
    before = replicas.proxy.requests()
    running = load(replicas, photo)
    running.wait_for(100)
    for name in HEALTHY:
        replica = replicas.replicas[name]
        seen: list[str] = []
        watcher = watch_health(replica.address, seen)
        assert replicas.restart(name) == 0, replica.log_tail()  # SIGTERM: drained, exited 0, back in rotation
        watcher.join(30)
        assert seen[-1] == "NOT_SERVING", seen  # reported before the process went away
        running.wait_for(running.result.ok + 50)
    result = running.stop()
    report("rolling restart", replicas, before, result)
    assert result.failures == 0, result.failed
    for name in HEALTHY:  # the proxy let each go because it read NOT_SERVING, before its listener closed
        assert replicas.proxy.down_reasons(name)[-1] == "Layer7 invalid response", replicas.proxy.down_reasons(name)


def test_replica_whose_model_cannot_load_gets_no_traffic(replicas, photo):
    broken = replicas.replicas["broken"]
    assert broken.process.wait(120) != 0
    assert "error:" in broken.log.read_text()
    row = replicas.proxy.servers()["broken"]
    assert row["status"] == "DOWN" and int(row["stot"] or 0) == 0, row
