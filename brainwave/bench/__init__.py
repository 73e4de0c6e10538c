"""`brainwave bench`: a load generator for any running brainwave (or TF Serving) server, over gRPC or REST.

Closed loop (`concurrency`: N clients, each sending when its last answer arrives) or open loop (`rates`:
requests sent on a schedule, constant or Poisson, whether or not earlier ones have answered; latency is counted
from each request's *intended* send time, so a server that falls behind shows its queue instead of hiding it
behind slower clients). Percentiles come from an HDR histogram; the server's per-stage times from its
Prometheus metrics. Needs only the light core plus the `bench` extra: no TensorFlow.

    from brainwave.bench import BenchConfig, run_bench
    report = run_bench(BenchConfig("localhost:50051", concurrency=(1, 4, 8), duration_s=10))
"""
from brainwave.bench.engine import BenchConfig, BenchReport, LevelResult, run_bench

__all__ = ["BenchConfig", "BenchReport", "LevelResult", "run_bench"]
