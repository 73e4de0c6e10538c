"""`brainwave bench`: it sees a stall at p99, counts open-loop latency from intended send times, speaks gRPC and
REST with keys, reads the server's stage times, writes its JSON and plot, and runs without TensorFlow."""
from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from brainwave.bench import BenchConfig, run_bench
from brainwave.bench.engine import Level, Recorder, arrival_times, open_loop
from brainwave.bench.scrape import breakdown, parse
from brainwave.bench.targets import BenchError
from brainwave.serving.auth import KeyRing
from brainwave.serving.servables import ServableManager
from tests.support import REPO, start_server, tensor_pipeline_zip

STALL_S = 0.2


@pytest.fixture(scope="module")
def numbers_pipeline(tmp_path_factory):
    from brainwave.pipeline import Pipeline

    pipeline = Pipeline.load(tensor_pipeline_zip(tmp_path_factory.mktemp("numbers") / "model.zip"))
    yield pipeline
    pipeline.close()


@pytest.fixture(scope="module")
def numbers_server(numbers_pipeline):
    manager = ServableManager()
    manager.add("numbers", 1, numbers_pipeline)
    running = start_server(manager, rest_port=0, metrics_port=0, keys=KeyRing("bench-key"))
    running.rest_address = f"127.0.0.1:{running.server.rest.port}"
    running.metrics_url = f"http://127.0.0.1:{running.server.metrics_server.port}/metrics"
    yield running
    running.server.stop(grace=0)


def test_an_injected_stall_shows_at_p99_not_at_p50(numbers_server, numbers_pipeline, monkeypatch):
    """Every 20th request (5%) sleeps 200 ms inside the pipeline: p99 must show it, p50 must not."""
    real_run, count, lock = numbers_pipeline.run, itertools.count(1), threading.Lock()

    def sometimes_stalled(*args, **kwargs):
        with lock:
            stall = next(count) % 20 == 0
        if stall:
            time.sleep(STALL_S)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(numbers_pipeline, "run", sometimes_stalled)
    report = run_bench(BenchConfig(numbers_server.address, key="bench-key", concurrency=(1,), warmup_s=0,
                                   duration_s=120, max_requests=200))
    (level,) = report.levels
    assert level.ok == 200 and not level.errors
    assert level.latency_ms["p99"] >= STALL_S * 1000
    assert level.latency_ms["p50"] < STALL_S * 1000 / 4


def test_open_loop_latency_runs_from_the_intended_send_time():
    """A server that answers the first request after 1 s and the rest at once, at 20 requests/s with one request
    in flight at a time: the 19 requests meant for that second wait for it, and their latency says so (a
    closed-loop or send-time measurement would report about 0 for them)."""
    async def scenario() -> Recorder:
        loop = asyncio.get_running_loop()
        calls = itertools.count()

        async def call(payload) -> str:
            if next(calls) == 0:
                await asyncio.sleep(1.0)
            return "OK"

        recorder = Recorder()
        start = loop.time()
        times = arrival_times(20, "constant", start, start + 1.0, seed=0)
        await open_loop(call, [b""], times, start, recorder, max_outstanding=1)
        return recorder

    recorder = asyncio.run(scenario())
    result = recorder.result(Level("rate", 20), "constant", 0.0)
    assert sum(result.codes.values()) == 20
    assert result.latency_ms["p50"] >= 400  # intended at 0.05 .. 0.95 s, sent at ~1.0 s
    assert result.send_lag_ms["max"] >= 900


def test_arrival_schedules():
    constant = arrival_times(10, "constant", 5.0, 7.0, seed=0)
    assert len(constant) == 20 and np.allclose(np.diff(constant), 0.1) and constant[0] == 5.0
    poisson = arrival_times(50, "poisson", 0.0, 100.0, seed=1)
    assert 4500 < len(poisson) < 5500 and np.all(np.diff(poisson) >= 0)
    gaps = np.diff(poisson)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.1)  # exponential: CV 1


def test_grpc_and_rest_levels_with_keys_and_stage_breakdown(numbers_server):
    for protocol, address in (("grpc", numbers_server.address), ("rest", numbers_server.rest_address)):
        report = run_bench(BenchConfig(address, protocol=protocol, model="numbers", key="bench-key",
                                       concurrency=(1, 2), rates=(40,), duration_s=0.5, warmup_s=0.1,
                                       metrics_url=numbers_server.metrics_url))
        assert [level.level.label for level in report.levels] == ["1 client", "2 clients", "40/s"]
        for level in report.levels:
            assert level.ok > 0 and not level.errors, (protocol, level.codes)
            assert level.server["stages_ms"]["stage 0 (numbers.pb)"] > 0
            assert level.server["request_ms"] > 0
        assert report.levels[2].send_lag_ms


def test_refusals_are_counted_by_code_and_a_dead_start_is_one_error(numbers_server):
    with pytest.raises(BenchError, match="UNAUTHENTICATED"):
        run_bench(BenchConfig(numbers_server.address, concurrency=(1,), duration_s=0.2, warmup_s=0))
    with pytest.raises(BenchError, match="HTTP 401"):
        run_bench(BenchConfig(numbers_server.rest_address, protocol="rest", model="numbers", concurrency=(1,),
                              duration_s=0.2, warmup_s=0, inputs=[np.ones((1, 4), np.float32)]))
    with pytest.raises(BenchError, match="--model"):
        run_bench(BenchConfig(numbers_server.rest_address, protocol="rest", concurrency=(1,)))


def test_errors_during_a_level_are_counted_by_status(numbers_server, numbers_pipeline, monkeypatch):
    from brainwave.errors import InvalidInputError

    real_run, calls = numbers_pipeline.run, {"count": itertools.count()}

    def every_other(*args, **kwargs):  # the first call (bench's connection check) succeeds
        if next(calls["count"]) % 2:
            raise InvalidInputError("refused on purpose")
        return real_run(*args, **kwargs)

    monkeypatch.setattr(numbers_pipeline, "run", every_other)
    for protocol, address, code in (("grpc", numbers_server.address, "INVALID_ARGUMENT"),
                                    ("rest", numbers_server.rest_address, "HTTP 400")):
        calls["count"] = itertools.count()
        report = run_bench(BenchConfig(address, protocol=protocol, model="numbers", key="bench-key",
                                       inputs=[np.ones((1, 4), np.float32)], concurrency=(1,), warmup_s=0,
                                       duration_s=30, max_requests=20))
        (level,) = report.levels
        assert level.ok + level.errors.get(code, 0) == 20 and level.errors.get(code, 0) >= 9, level.codes


def test_scrape_breakdown():
    text = """# TYPE brainwave_stage_seconds histogram
brainwave_stage_seconds_sum{model="m",version="1",stage="stage 0"} 2.0
brainwave_stage_seconds_count{model="m",version="1",stage="stage 0"} 10.0
brainwave_stage_seconds_sum{model="other",version="1",stage="stage 0"} 50.0
brainwave_stage_seconds_count{model="other",version="1",stage="stage 0"} 1.0
# TYPE brainwave_request_seconds histogram
brainwave_request_seconds_sum{protocol="grpc",method="PredictionService/Predict",model="m",version="1"} 3.0
brainwave_request_seconds_count{protocol="grpc",method="PredictionService/Predict",model="m",version="1"} 10.0
"""
    before = parse(text.replace("2.0", "1.0").replace("10.0", "5.0").replace("3.0", "1.0"), model="m")
    after = parse(text, model="m")
    assert breakdown(before, after) == {"stages_ms": {"stage 0": pytest.approx(200.0)},
                                        "request_ms": pytest.approx(400.0)}


def test_the_command_writes_json_and_plot_without_tensorflow(numbers_server, tmp_path):
    """`brainwave bench` as a user runs it, in a process that must never import TensorFlow."""
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    code = ("import sys; from brainwave.cli import main; rc = main(sys.argv[1:]); "
            "assert 'tensorflow' not in sys.modules, 'bench imported TensorFlow'; sys.exit(rc)")
    args = ["bench", "--address", numbers_server.address, "--key", "bench-key", "--concurrency", "1,2",
            "--rate", "30", "--arrivals", "poisson", "--duration", "0.5", "--warmup", "0.1",
            "--metrics-url", numbers_server.metrics_url, "--json", str(out_json), "--plot", str(out_png)]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "p99.9" in done.stdout and "1 client " in done.stdout and "30/s" in done.stdout
    results = json.loads(out_json.read_text())
    assert [level["label"] for level in results["levels"]] == ["1 client", "2 clients", "30/s"]
    assert results["levels"][2]["arrivals"] == "poisson" and results["levels"][0]["latency_ms"]["p99"] > 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command_fails_in_one_line(numbers_server, tmp_path):
    from tests.support import free_port

    for args, message in ((["--address", f"127.0.0.1:{free_port()}", "--timeout", "2"], "UNAVAILABLE"),
                          (["--address", numbers_server.address, str(tmp_path / "missing.png")], "does not exist")):
        done = subprocess.run([sys.executable, "-m", "brainwave.cli", "bench", *args, "--duration", "0.2"],
                              capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_tls_on_both_protocols(numbers_pipeline, pki):
    manager = ServableManager()
    manager.add("numbers", 1, numbers_pipeline)
    running = start_server(manager, rest_port=0, keys=KeyRing("tls-key"), tls_cert=pki / "server.crt",
                           tls_key=pki / "server.key")
    try:
        for protocol, port in (("grpc", running.server.port), ("rest", running.server.rest.port)):
            report = run_bench(BenchConfig(f"localhost:{port}", protocol=protocol, model="numbers", key="tls-key",
                                           ca=pki / "ca.crt", concurrency=(1,), warmup_s=0, duration_s=10,
                                           max_requests=5))
            assert report.levels[0].ok == 5, (protocol, report.levels[0].codes)
    finally:
        running.server.stop(grace=0)


def test_without_the_bench_extra_the_command_says_what_to_install(monkeypatch, capsys):
    import importlib.util

    from brainwave.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hdrh" else real(name, *a))
    assert main(["bench", "--address", "127.0.0.1:1"]) == 1
    assert "pip install 'brainwave[bench]'" in capsys.readouterr().err
