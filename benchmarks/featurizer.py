"""Featurizer latency at batch 1: the bit-exact NPU emulator vs float32 TensorFlow on the same network.

    python benchmarks/featurizer.py [--networks resnet50 efficientnet-lite0] [--precisions bfp20 bfp16]
                                    [--repeats 15] [--csim-runs 1] [--json OUT]

Measured side by side in one process, on the same real photo (scikit-image's chelsea.png, 224x224):
  * float32 TensorFlow: the `float` backend (the catalog Keras model in one traced tf.function)
  * the emulator: the `emulator` backend (compiled program run in numpy), per precision
  * the HLS kernel as C simulation (g++ -O2), for reference, with a byte comparison against the emulator
Each latency is the median of `--repeats` runs after one warm-up run. ratio = emulator / float (goal <= 1.0).
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

from brainwave.npu.numerics import DEFAULT_PRECISION, Precision

console = Console(width=None if __import__("sys").stdout.isatty() else 140)
VGG_MEANS_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def photo_input(network: str) -> np.ndarray:
    """chelsea.png at 224x224, preprocessed the way each network's pipeline does: (1, 224, 224, 3) float32."""
    from PIL import Image
    from skimage import data

    rgb = np.asarray(Image.fromarray(data.chelsea()).resize((224, 224), Image.Resampling.BILINEAR), np.float32)
    if network == "resnet50":
        return (rgb[..., ::-1] - VGG_MEANS_BGR)[None].astype(np.float32)
    return ((rgb - np.float32(127.0)) / np.float32(128.0))[None].astype(np.float32)


def median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up: graph tracing, first-touch allocations
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples


def bench_network(network: str, precisions: list[str], repeats: int, csim_runs: int) -> dict:
    from brainwave.featurizer.backend import create_backend
    from brainwave.models import build_featurizer, resolve_featurizer
    from brainwave.npu import csim

    model = build_featurizer(resolve_featurizer(network))
    x = photo_input(network)
    float_backend = create_backend("float", model)
    float_s, float_samples = median_seconds(lambda: float_backend.run(x), repeats)
    result = {"network": network, "float_tf_ms": float_s * 1e3,
              "float_tf_samples_ms": [s * 1e3 for s in float_samples], "precisions": {}}
    for precision in precisions:
        emulator = create_backend("emulator", model, {"precision": precision})
        emu_s, emu_samples = median_seconds(lambda: emulator.run(x), repeats)
        emulated = emulator.run(x)
        entry = {"emulator_ms": emu_s * 1e3, "emulator_samples_ms": [s * 1e3 for s in emu_samples],
                 "ratio_emulator_over_float": emu_s / float_s, "instructions": len(emulator.program.instructions),
                 "gmac": emulator.program.macs / 1e9}
        if csim_runs:
            times = []
            for _ in range(csim_runs):
                kernel_out, seconds = csim.run_csim(emulator.program, x)
                times.append(seconds)
            entry["csim_ms"] = statistics.median(times) * 1e3
            entry["csim_equals_emulator"] = kernel_out.tobytes() == emulated.reshape(kernel_out.shape).tobytes()
        result["precisions"][precision] = entry
        emulator.close()
    float_backend.close()
    return result


def print_table(results: list[dict]) -> None:
    table = Table(title="Featurizer latency, batch 1 (median)")
    for column in ("network", "precision", "float TF ms", "emulator ms", "emulator / float", "C-sim ms",
                   "C-sim == emulator"):
        table.add_column(column, justify="right" if "ms" in column or "/" in column else "left")
    for r in results:
        for precision, e in r["precisions"].items():
            ratio = e["ratio_emulator_over_float"]
            table.add_row(r["network"], precision, f"{r['float_tf_ms']:.1f}", f"{e['emulator_ms']:.1f}",
                          f"[{'green' if ratio <= 1.0 else 'yellow'}]{ratio:.2f}x", f"{e.get('csim_ms', float('nan')):.0f}",
                          {True: "bytes equal", False: "[red]DIFFER", None: "-"}[e.get("csim_equals_emulator")])
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["resnet50", "efficientnet-lite0"])
    parser.add_argument("--precisions", nargs="+", choices=Precision.labels(),
                        default=[DEFAULT_PRECISION.label, Precision.BFP16.label],
                        help=f"NPU precisions to time (default: {DEFAULT_PRECISION.label} and bfp16)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--csim-runs", type=int, default=1, help="C-simulation runs per network (0 to skip)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    results = []
    for network in args.networks:
        with console.status(f"{network}: float TF, emulator, C-sim..."):
            results.append(bench_network(network, args.precisions, args.repeats, args.csim_runs))
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
