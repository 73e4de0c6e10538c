"""Serving overhead and throughput: in-process Pipeline.run vs end-to-end gRPC Predict, same pipeline and image.

    python benchmarks/serving.py [--pipeline efficientnet-lite0] [--backends emulator float] [--seconds 10]
                                 [--json OUT]

Measured side by side in one run, per backend:
  * in-process `Pipeline.run` latency (p50 / p99) and each stage's median time
  * gRPC Predict latency at 1 client against `brainwave serve` in its own process (p50 / p99) and the
    overhead between the two
  * throughput (requests/s), p50 and p99 at 1, 2, 4 and 8 concurrent closed-loop clients, next to the
    1-client throughput and the pipeline's bound 1 / (slowest stage time), the stage times read from the server's
    own metrics at 1 client (so they are timed with the server's thread sizing, not this process's)
and once, the same overhead on a tiny pipeline (a few microseconds of TensorFlow), where it is not hidden in
the network's run-to-run noise.

The load levels are `brainwave bench`'s engine (brainwave.bench): for load against a server that is already
running, open-loop rates, REST, plots and the server's stage breakdown, use the command (docs/bench.md); this
script keeps what bench cannot do from outside, the in-process vs gRPC comparison.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from common import PHOTO, ServeProcess, pipeline_builder  # a sibling script (benchmarks/ is on sys.path)

console = Console(width=None if sys.stdout.isatty() else 200)


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


def measure_overhead(model_zip: Path, backend: str | None, image: bytes, count: int) -> dict:
    from brainwave.client import PredictionClient
    from brainwave.pipeline import Pipeline

    pipeline = Pipeline.load(model_zip, backend=backend)
    time_calls(lambda: pipeline.run(image), 3)
    in_process, stages = [], []
    for _ in range(count):
        start = time.perf_counter()
        stages.append(pipeline.run(image).stage_seconds)
        in_process.append(time.perf_counter() - start)
    labels = pipeline.stage_labels
    pipeline.close()
    server = ServeProcess(model_zip, *(["--backend", backend] if backend else []))
    try:
        with PredictionClient(server.address) as client:
            time_calls(lambda: client.score_image(image), 3)
            grpc_calls = time_calls(lambda: client.score_image(image), count)
    finally:
        server.stop()
    a, b = percentiles(in_process), percentiles(grpc_calls)
    stage_ms = {label: float(np.median([s[i] for s in stages]) * 1000) for i, label in enumerate(labels)}
    return {"in_process": a, "grpc": b, "overhead_p50_ms": b["p50_ms"] - a["p50_ms"],
            "overhead_p99_ms": b["p99_ms"] - a["p99_ms"], "stage_median_ms": stage_ms}


def measure_throughput(server: ServeProcess, image: bytes, clients: list[int], seconds: float) -> list[dict]:
    """Closed loop at each number of clients, for `seconds` each after a second of warm-up: `brainwave bench`'s
    engine (brainwave.bench), the same code and percentiles as the command, with the server's stage times."""
    from brainwave.bench import BenchConfig, run_bench

    report = run_bench(BenchConfig(server.address, inputs=[image], concurrency=tuple(clients), duration_s=seconds,
                                   warmup_s=1.0, metrics_url=server.metrics_url))
    return [{"clients": int(level.level.value), "requests": level.ok, "errors": level.errors,
             "requests_per_s": level.throughput, "p50_ms": level.latency_ms["p50"],
             "p99_ms": level.latency_ms["p99"], "mean_ms": level.latency_ms["mean"],
             "server_stage_ms": (level.server or {}).get("stages_ms", {})} for level in report.levels]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default="efficientnet-lite0", choices=["efficientnet-lite0", "resnet50"])
    parser.add_argument("--backends", nargs="+", default=["emulator", "float"])
    parser.add_argument("--requests", type=int, default=40, help="timed requests per latency measurement")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each throughput level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    image = PHOTO.read_bytes()
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    with console.status("building pipelines..."):
        model_zip = pipeline_builder(args.pipeline).build_model_zip(workdir / args.pipeline / "model.zip")
        tiny_zip = tiny_pipeline_zip(workdir)
    results = {"pipeline": args.pipeline, "image": PHOTO.name, "cpus": os.cpu_count(), "backends": {}}
    with console.status("tiny pipeline: in-process vs gRPC..."):
        results["tiny_pipeline"] = measure_overhead(tiny_zip, None, image, args.requests * 5)
    for backend in args.backends:
        entry = results["backends"][backend] = {}
        with console.status(f"{args.pipeline} on {backend}: in-process vs gRPC..."):
            entry["overhead"] = measure_overhead(model_zip, backend, image, args.requests)
        server = ServeProcess(model_zip, "--backend", backend)
        try:
            with console.status(f"{args.pipeline} on {backend}: {', '.join(map(str, args.clients))} concurrent clients..."):
                entry["throughput"] = measure_throughput(server, image, args.clients, args.seconds)
        finally:
            server.stop()
        stages = entry["throughput"][0]["server_stage_ms"]
        bound = entry["bound_requests_per_s"] = 1000.0 / max(stages.values())
        single = entry["throughput"][0]["requests_per_s"]
        for level in entry["throughput"]:
            level["of_one_client"] = level["requests_per_s"] / single
            level["of_bound"] = level["requests_per_s"] / bound
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        console.print(f"wrote {args.json}")
    return 0


def print_report(results: dict) -> None:
    table = Table(title=f"in-process vs gRPC Predict (ms), {results['pipeline']}")
    for column in ("pipeline", "backend", "in-process p50", "gRPC p50", "overhead p50", "in-process p99", "gRPC p99",
                   "overhead p99", "stages (median ms)"):
        table.add_column(column, justify="right")
    rows = [("tiny (decode + mean)", "-", results["tiny_pipeline"])]
    rows += [(results["pipeline"], backend, e["overhead"]) for backend, e in results["backends"].items()]
    for label, backend, r in rows:
        stages = " / ".join(f"{ms:.1f}" for ms in r["stage_median_ms"].values())
        table.add_row(label, backend, f"{r['in_process']['p50_ms']:.2f}", f"{r['grpc']['p50_ms']:.2f}",
                      f"{r['overhead_p50_ms']:.2f}", f"{r['in_process']['p99_ms']:.2f}", f"{r['grpc']['p99_ms']:.2f}",
                      f"{r['overhead_p99_ms']:.2f}", stages)
    console.print(table)
    table = Table(title=f"throughput, {results['pipeline']} on {results['cpus']} CPUs (closed loop)")
    for column in ("backend", "clients", "requests", "req/s", "p50 ms", "p99 ms", "server stages (mean ms)",
                   "of 1 client", "of 1/slowest stage at 1 client"):
        table.add_column(column, justify="right")
    for backend, e in results["backends"].items():
        for r in e["throughput"]:
            stages = " / ".join(f"{ms:.1f}" for ms in r["server_stage_ms"].values())
            table.add_row(backend, str(r["clients"]), str(r["requests"]), f"{r['requests_per_s']:.1f}",
                          f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", stages, f"{r['of_one_client']:.0%}",
                          f"{r['of_bound']:.0%}")
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
