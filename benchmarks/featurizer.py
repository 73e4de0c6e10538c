"""Featurizer latency at batch 1: the NPU's native executor vs float32 TensorFlow on the same network.

    python benchmarks/featurizer.py [--networks resnet50 efficientnet-lite0] [--precisions bfp20 bfp16]
                                    [--repeats 15] [--simd avx512vnni avx2 portable] [--threads N]
                                    [--csim-runs 1] [--json OUT]

Measured side by side in one process, on the same real photo (scikit-image's chelsea.png, 224x224):
  * float32 TensorFlow: the `float` backend (the catalog Keras model in one traced tf.function)
  * the native executor (brainwave.npu.native, C++; what the `emulator` backend runs) on each SIMD path this CPU
    has, per precision
  * the HLS kernel as C simulation (g++ -O2), the reference: every native output is compared with its bytes
Each latency is the median of `--repeats` runs after one warm-up run. ratio = latency / float TF (goal <= 1.0).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from brainwave.npu.native import SIMD_PATHS
from brainwave.npu.numerics import DEFAULT_PRECISION, Precision

from accuracy_report import photo_input  # a sibling script (benchmarks/ is on sys.path); the executor tests use it too

console = Console(width=None if __import__("sys").stdout.isatty() else 140)


def median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up: graph tracing, first-touch allocations, weight repacking
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def timed(fn, repeats: int, float_s: float) -> tuple[dict, np.ndarray]:
    """The latency entry of one executor (median, samples, ratio to float TF) and its output."""
    seconds, samples = median_seconds(fn, repeats)
    return {"ms": seconds * 1e3, "samples_ms": [s * 1e3 for s in samples], "ratio_over_float": seconds / float_s}, fn()


def same_bytes(out: np.ndarray, reference: np.ndarray | None) -> bool | None:
    return None if reference is None else out.reshape(reference.shape).tobytes() == reference.tobytes()


def bench_precision(program, x: np.ndarray, float_s: float, args) -> dict:
    from brainwave.npu.csim import CsimExecutor, load_library
    from brainwave.npu.native import NativeExecutor
    from brainwave.npu.ops import program_macs

    entry: dict = {"instructions": len(program.instructions), "gmac": program_macs(program) / 1e9, "executors": {}}
    reference = None
    if args.csim_runs:
        load_library()  # built (once) outside the timed runs
        csim, times = CsimExecutor(), []
        for _ in range(args.csim_runs):
            start = time.perf_counter()
            reference = csim.run(program, x)
            times.append(time.perf_counter() - start)
        entry["csim_ms"] = statistics.median(times) * 1e3
    for simd in args.simd:
        with NativeExecutor(threads=args.threads, simd=simd) as native:
            result, out = timed(lambda: native.run(program, x), args.repeats, float_s)
            result["threads"] = native.threads
        entry["executors"][f"native {simd}"] = dict(result, equals_csim=same_bytes(out, reference))
    return entry


def bench_network(network: str, args) -> dict:
    from brainwave.featurizer.backend import create_backend
    from brainwave.models import build_featurizer, resolve_featurizer
    from brainwave.npu.compiler import compile_keras

    model = build_featurizer(resolve_featurizer(network))
    x = photo_input(network)
    float_backend = create_backend("float", model)
    float_s, float_samples = median_seconds(lambda: float_backend.run(x), args.repeats)
    float_backend.close()
    result = {"network": network, "float_tf_ms": float_s * 1e3,
              "float_tf_samples_ms": [s * 1e3 for s in float_samples], "precisions": {}}
    for precision in args.precisions:
        program = compile_keras(model, precision=precision)
        result["precisions"][precision] = bench_precision(program, x, float_s, args)
    return result


def print_table(results: list[dict]) -> None:
    table = Table(title="Featurizer latency, batch 1 (median)")
    for column in ("network", "precision", "executor", "ms", "/ float TF", "bytes vs C-sim"):
        table.add_column(column, justify="right" if column in ("ms", "/ float TF") else "left")
    verdict = {True: "equal", False: "[red]DIFFER", None: "-"}
    for r in results:
        table.add_row(r["network"], "float32", "TensorFlow", f"{r['float_tf_ms']:.1f}", "1.00x", "")
        for precision, e in r["precisions"].items():
            for name, x in e["executors"].items():
                colour = "green" if x["ratio_over_float"] <= 1.0 else "yellow"
                table.add_row(r["network"], precision, name, f"{x['ms']:.1f}", f"[{colour}]{x['ratio_over_float']:.2f}x",
                              verdict[x["equals_csim"]])
            if "csim_ms" in e:
                table.add_row(r["network"], precision, "C-sim (reference)", f"{e['csim_ms']:.0f}", "", "")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["resnet50", "efficientnet-lite0"])
    parser.add_argument("--precisions", nargs="+", choices=Precision.labels(),
                        default=[DEFAULT_PRECISION.label, Precision.BFP16.label],
                        help=f"NPU precisions to time (default: {DEFAULT_PRECISION.label} and bfp16)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--simd", nargs="*", default=None, choices=SIMD_PATHS,
                        help="native executor SIMD paths to time (default: every path this CPU has; none to skip)")
    parser.add_argument("--threads", type=int, default=None,
                        help="native executor threads (default: $BRAINWAVE_NPU_THREADS or the CPU count)")
    parser.add_argument("--csim-runs", type=int, default=1,
                        help="C-simulation runs per network and precision (0: no C-sim, no byte comparison)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.simd is None:
        from brainwave.npu.native import available_simd

        args.simd = available_simd()
    results = []
    for network in args.networks:
        with console.status(f"{network}: float TF, C-sim, native..."):
            results.append(bench_network(network, args))
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "processor": platform.processor()}, "repeats": args.repeats, "results": results}
        args.json.write_text(json.dumps(report, indent=2))
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
