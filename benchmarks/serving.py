"""Serving overhead and throughput: in-process Pipeline.run vs end-to-end gRPC Predict, same pipeline and image.

    python benchmarks/serving.py [--pipeline resnet50] [--backend float] [--requests 40] [--json OUT]

Measured side by side in one run:
  * in-process `Pipeline.run` latency (p50 / p99)
  * gRPC Predict latency at 1 client against `brainwave serve` in its own process (p50 / p99) and the
    overhead between the two
  * the same overhead on a tiny pipeline (a few microseconds of TensorFlow), where it is not hidden in the
    network's run-to-run noise
  * throughput (requests/s) and latency at 1, 4 and 8 concurrent clients
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "samples"))
from quickstart import free_port, load_builder, wait_until_serving  # noqa: E402

console = Console()


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "n": len(ms)}


def time_calls(fn, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def tiny_pipeline_zip(workdir: Path) -> Path:
    """stage 0 only: decode a PNG and take its mean; isolates serving overhead from model time."""
    from brainwave.tf_runtime import tf

    from brainwave.pipeline import ServiceDefinition, TensorflowStage

    graph = tf.Graph()
    with graph.as_default():
        data = tf.compat.v1.placeholder(tf.string, shape=[], name="in_images")
        image = tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32)
        tf.reshape(tf.reduce_mean(image), [1, 1], name="image_mean")
    (workdir / "tiny.pb").write_bytes(graph.as_graph_def().SerializeToString())
    definition = ServiceDefinition([TensorflowStage("tiny.pb", "in_images:0", "image_mean:0", source=workdir / "tiny.pb")])
    return definition.save(workdir / "tiny" / "model.zip")


class Server:
    def __init__(self, model_zip: Path, backend: str | None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "brainwave.cli", "serve", str(model_zip), "--host", "127.0.0.1", "--port", str(self.port)]
        if backend:
            command += ["--backend", backend]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        wait_until_serving(self.address, self.process, timeout=900)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def measure_overhead(model_zip: Path, backend: str | None, image: bytes, count: int) -> dict:
    from brainwave.client import PredictionClient
    from brainwave.pipeline import Pipeline

    pipeline = Pipeline.load(model_zip, backend=backend)
    time_calls(lambda: pipeline.run(image), 3)
    in_process = time_calls(lambda: pipeline.run(image), count)
    pipeline.close()
    server = Server(model_zip, backend)
    try:
        with PredictionClient(server.address) as client:
            time_calls(lambda: client.score_image(image), 3)
            grpc_calls = time_calls(lambda: client.score_image(image), count)
    finally:
        server.stop()
    a, b = percentiles(in_process), percentiles(grpc_calls)
    return {"in_process": a, "grpc": b, "overhead_p50_ms": b["p50_ms"] - a["p50_ms"], "overhead_p99_ms": b["p99_ms"] - a["p99_ms"]}


def measure_throughput(address: str, image: bytes, clients: int, requests_per_client: int) -> dict:
    from brainwave.client import PredictionClient

    latencies: list[float] = []
    lock = threading.Lock()

    def worker():
        with PredictionClient(address) as client:
            client.score_image(image)
            own = time_calls(lambda: client.score_image(image), requests_per_client)
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"clients": clients, "requests": len(latencies), "requests_per_s": len(latencies) / elapsed, **percentiles(latencies)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default="resnet50")
    parser.add_argument("--backend", default="float")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per measurement (per client for throughput)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    import skimage

    image = (Path(skimage.__file__).parent / "data" / "chelsea.png").read_bytes()
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    with console.status("building pipelines..."):
        model_zip = load_builder(args.pipeline).build_model_zip(workdir / args.pipeline / "model.zip")
        tiny_zip = tiny_pipeline_zip(workdir)
    results = {"pipeline": args.pipeline, "backend": args.backend, "image": "chelsea.png", "cpus": os.cpu_count()}
    with console.status("tiny pipeline: in-process vs gRPC..."):
        results["tiny_pipeline"] = measure_overhead(tiny_zip, None, image, args.requests * 5)
    with console.status(f"{args.pipeline}: in-process vs gRPC..."):
        results["pipeline_overhead"] = measure_overhead(model_zip, args.backend, image, args.requests)
    server = Server(model_zip, args.backend)
    try:
        results["throughput"] = []
        for clients in (1, 4, 8):
            with console.status(f"{args.pipeline}: {clients} concurrent clients..."):
                per_client = max(3, args.requests // clients)
                results["throughput"].append(measure_throughput(server.address, image, clients, per_client))
    finally:
        server.stop()
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        console.print(f"wrote {args.json}")
    return 0


def print_report(results: dict) -> None:
    table = Table(title=f"in-process vs gRPC Predict (ms), backend {results['backend']}")
    for column in ("pipeline", "in-process p50", "gRPC p50", "overhead p50", "in-process p99", "gRPC p99", "overhead p99"):
        table.add_column(column, justify="right")
    for label, key in (("tiny (decode + mean)", "tiny_pipeline"), (results["pipeline"], "pipeline_overhead")):
        r = results[key]
        table.add_row(label, f"{r['in_process']['p50_ms']:.2f}", f"{r['grpc']['p50_ms']:.2f}", f"{r['overhead_p50_ms']:.2f}",
                      f"{r['in_process']['p99_ms']:.2f}", f"{r['grpc']['p99_ms']:.2f}", f"{r['overhead_p99_ms']:.2f}")
    console.print(table)
    table = Table(title=f"throughput, {results['pipeline']} on {results['cpus']} CPUs")
    for column in ("clients", "requests", "req/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for r in results["throughput"]:
        table.add_row(str(r["clients"]), str(r["requests"]), f"{r['requests_per_s']:.2f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}")
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
