"""`brainwave bench`: the command. Registered by brainwave/cli.py; imports nothing of the server."""
from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

from brainwave.errors import BrainwaveError

BENCH_MODULES = ("hdrh", "httpx", "matplotlib", "prometheus_client")  # the `bench` extra


def _numbers(kind):
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of numbers, got {text!r}") from None
        if not values or any(v <= 0 for v in values):
            raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
        return values
    return parse


def add_bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="drive a running server with load and report latency percentiles and "
                                         "throughput (docs/bench.md)")
    bench.add_argument("--address", default="localhost:50051", help="HOST:PORT (the REST port with --protocol rest)")
    bench.add_argument("--protocol", choices=["grpc", "rest"], default="grpc")
    bench.add_argument("--model", default="", help="model name (default: the server's only model; REST needs it)")
    bench.add_argument("--model-version", type=int, default=None)
    bench.add_argument("--key", default=os.environ.get("BRAINWAVE_KEY"), help="access key (or BRAINWAVE_KEY)")
    bench.add_argument("--ssl", action="store_true", help="use TLS (implied by --ca)")
    bench.add_argument("--ca", type=Path, help="CA certificate to trust for TLS")
    bench.add_argument("--client-cert", type=Path, help="client certificate (mutual TLS)")
    bench.add_argument("--client-key", type=Path, help="client private key (mutual TLS)")
    bench.add_argument("images", nargs="*", type=Path,
                       help="image files or folders to send in turn (default: random inputs matching the model's "
                            "metadata)")
    load = bench.add_argument_group("load (levels run one after the other)")
    load.add_argument("--concurrency", type=_numbers(int), default=[],
                      help="closed loop: clients at each level, e.g. 1,2,4,8")
    load.add_argument("--rate", type=_numbers(float), default=[],
                      help="open loop: requests per second at each level, e.g. 5,10,20 (latency counted from the "
                           "intended send time)")
    load.add_argument("--arrivals", choices=["constant", "poisson"], default="constant",
                      help="open loop: evenly spaced sends or a Poisson process")
    load.add_argument("--duration", type=float, default=10.0, help="measured seconds per level")
    load.add_argument("--warmup", type=float, default=2.0, help="seconds per level before measuring")
    load.add_argument("--requests", type=int, default=None, help="stop a level after this many measured requests")
    load.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    load.add_argument("--max-outstanding", type=int, default=1000,
                      help="open loop: requests in flight before sending waits (the wait still counts)")
    load.add_argument("--seed", type=int, default=0, help="random inputs and Poisson arrivals")
    report = bench.add_argument_group("report")
    report.add_argument("--metrics-url", help="the server's Prometheus endpoint (http://HOST:PORT/metrics) for "
                                              "the per-stage time breakdown")
    report.add_argument("--json", type=Path, help="write the results (percentiles, CDF, HDR histogram) here")
    report.add_argument("--plot", type=Path, help="write a PNG: latency vs throughput, CDF per level, stage times")
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from brainwave.bench.engine import BenchConfig, run_bench
    from brainwave.cli import console as err, out
    from brainwave.bench.inputs import image_files
    from brainwave.bench.report import plot, table, write_json

    missing = [name for name in BENCH_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise BrainwaveError(f"brainwave bench needs its extra (missing {', '.join(missing)}): "
                             "pip install 'brainwave[bench]'")
    if args.duration <= 0 or args.warmup < 0:
        raise BrainwaveError("--duration must be positive and --warmup not negative")
    if (args.client_cert is None) != (args.client_key is None):
        raise BrainwaveError("mutual TLS needs both --client-cert and --client-key")
    config = BenchConfig(
        args.address, args.protocol, args.model, args.model_version, args.key,
        use_tls=args.ssl or args.ca is not None or args.client_cert is not None, ca=args.ca,
        client_cert=args.client_cert, client_key=args.client_key, inputs=image_files(args.images),
        concurrency=args.concurrency, rates=args.rate, arrivals=args.arrivals, duration_s=args.duration,
        warmup_s=args.warmup, max_requests=args.requests, timeout_s=args.timeout,
        max_outstanding=args.max_outstanding, metrics_url=args.metrics_url, seed=args.seed)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                   TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal)
    tasks: dict = {}
    total = args.warmup + args.duration

    def progress(level, elapsed, recorder) -> None:
        if level not in tasks:
            tasks[level] = bar.add_task(level.label, total=total, status="")
        phase = "warm-up" if elapsed < args.warmup else f"{sum(recorder.codes.values())} measured"
        bar.update(tasks[level], completed=min(elapsed, total), status=phase)

    with bar:
        report = run_bench(config, progress, on_level=lambda result: bar.update(tasks[result.level], visible=False)
                           if result.level in tasks else None)
    out.print(table(report))
    for path, write, what in ((args.json, write_json, "results"), (args.plot, plot, "plot")):
        if path is not None:
            write(report, path)
            err.print(f"wrote {what} to {path}")
    return 0
