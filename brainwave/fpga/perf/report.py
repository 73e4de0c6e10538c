"""The estimate as text and as JSON, and its command lines: `brainwave models --estimate BOARD [--json]
[--per-layer] [--precision P]` (add_estimate_arguments, run_estimate) and `python -m brainwave.fpga.perf BOARD`
(main)."""
from __future__ import annotations

import argparse
import json
from contextlib import AbstractContextManager, nullcontext
from typing import Callable

from brainwave.npu.isa import Instruction
from brainwave.npu.numerics import DEFAULT_PRECISION, Precision

from ..boards import TARGETS
from .estimate import Estimate, estimate_model
from .resources import resources, within
from .v2 import V2_FILL, V2_INSN_OVERHEAD, LayerCost

# Published batch-1 figures (context only: other hardware, numerics and precision).
ANCHORS = [
    ("Microsoft Brainwave, Stratix 10 280, weights pinned on chip (ISCA 2018)", "ResNet-50, batch 1", "< 2 ms"),
    ("AMD Vitis AI DPU, ZCU102, 3x B4096 @ 287 MHz (2,048 MACs/core on ~710 DSPs; model zoo, end to end)",
     "ResNet-50 INT8, batch 1", "12.85 ms"),
    ("AMD Vitis AI DPU, ZCU104, 2x B4096", "EfficientNet-B0 INT8, batch 1", "~12 ms"),
    ("FINN ResNet-50 w1a2, Alveo U250 (dataflow)", "ResNet-50, minimum latency", "2 ms"),
]

ESTIMATE_NOTE = ("ESTIMATE from the kernel's structure (tile counts, II per loop, bursts, DDR bytes, overlap), "
                 "not a measurement: no synthesis or board run; clock, II and resources unverified")

Status = Callable[[str], AbstractContextManager]  # shows what is being done while it runs (rich's Console.status)


def _ms(cycles: float, est: Estimate) -> float:
    return cycles / (est.clock_mhz * 1e3)


def _label(i: int, d: Instruction) -> str:
    """The Keras layers an instruction computes, or its index when the program carries no names."""
    return d.name or f"insn{i}"


def _validation(est: Estimate) -> str:
    what = "per call" if est.validate_per_call else "once, at load (not per call)"
    return f"program check {_ms(est.validate_cycles, est):.2f} ms {what}"


def estimate_record(network: str, est: Estimate) -> dict:
    """The JSON object `brainwave models --estimate BOARD --json` prints for one network and precision."""
    res = resources(est.target, est.precision or DEFAULT_PRECISION.label)
    t = est.target
    return {
        "network": network,
        "precision": est.precision,
        "board": t.name,
        "estimate": True,
        "note": ESTIMATE_NOTE,
        "clock_mhz": est.clock_mhz,
        "latency_ms": round(est.latency_ms, 3),
        "latency_ms_v2_kernel": round(est.kernel_latency_ms, 3),
        "latency_ms_v1_as_coded": round(est.v1_as_coded_ms, 1),
        "latency_ms_v1_idealised": round(est.v1_idealised_ms, 1),
        "validate_ms": round(_ms(est.validate_cycles, est), 3),
        "validate_per_call": est.validate_per_call,
        "next_steps": [{"step": n, "saves_ms": round(s, 3)} for n, s in est.effects],
        "gmac": round(est.macs / 1e9, 3),
        "macs_per_cycle": {"bfp20": t.npu.macs_bfp20, "bfp16": t.npu.macs_bfp16, "bfp12": t.npu.macs_bfp16},
        "dsp": res["dsp"], "uram": res["uram"], "bram36": res["bram36"], "lut": res["lut"],
        "pe_lanes": res["lanes"], "resources_source": res["source"], "device": res["device"],
        "budget": res["budget"], "within_budget": within(res, res["budget"]),
        "within_device": within(res, res["device"]),
        "ddr_mb_per_image": round(est.ddr_bytes(True) / 1e6, 2),
        "ddr_mb_per_image_v2_kernel": round(est.ddr_bytes(False) / 1e6, 2),
        "weight_mb_per_image_v1_as_coded": round(est.v1_weight_bytes / 1e6, 1),
        "layers": [_layer_record(i, d, design, kernel, est)
                   for i, (d, design, kernel) in enumerate(zip(est.instructions, est.design, est.kernel))],
        "model": {"fill_cycles_per_band": V2_FILL, "control_cycles_per_instruction": V2_INSN_OVERHEAD,
                  "ddr_gbps": t.npu.ddr_gbps, "ddr_efficiency": t.npu.ddr_efficiency,
                  "port_bytes_per_cycle": t.npu.port_bits // 8, "pixels": t.npu.pixels, "dsp_cols": t.npu.dsp_cols,
                  "interleave": [t.npu.adder_latency, t.npu.interleave], "lb_blocks": t.npu.lb_blocks,
                  "weight_bank_bytes": t.npu.wbuf_bytes},
        "anchors": [{"system": who, "workload": what, "latency": lat} for who, what, lat in ANCHORS],
    }


def _layer_record(i: int, d: Instruction, design: LayerCost, kernel: LayerCost, est: Estimate) -> dict:
    """One instruction: its v2 design cost in full, its v2 kernel cost in brief."""
    return {"name": _label(i, d), "op": d.op.name, "path": design.path, "in_shape": list(d.in_shape),
            "out_shape": list(d.out_shape), "macs": design.macs, "bands": design.bands, "k_tiles": design.tiles,
            "k": design.k, "steps": design.steps, "interleave": design.interleave, "units": design.units,
            "ii": 1 if design.path in ("dense", "depthwise") else None, "compute_cycles": design.compute_cycles,
            "cycles": design.cycles, "ms": round(_ms(design.cycles, est), 4), "bound": design.bound,
            "weight_bytes": design.weight_bytes, "act_read_bytes": design.act_read_bytes,
            "act_write_bytes": design.act_write_bytes, "ms_v2_kernel": round(_ms(kernel.cycles, est), 4),
            "bound_v2_kernel": kernel.bound, "ddr_bytes_v2_kernel": kernel.ddr_bytes}


def format_estimate(name: str, est: Estimate, per_layer: bool = False) -> str:
    t = est.target
    c = t.npu
    lines = [
        f"{name} on {t.name} ({t.device.part}): {ESTIMATE_NOTE}",
        f"  {len(est.instructions)} instructions, {est.macs / 1e9:.2f} GMAC; v2 engine P={c.pixels} x K={c.dsp_cols}"
        f" (bfp20) / {c.k_max} (bfp16, bfp12) x 16 lanes, L={c.interleave}, {c.clock_mhz:g} MHz",
        f"  {'v1 kernel, idealised (old model: one block per cycle)':<58} {est.v1_idealised_ms:10.1f} ms"
        f"  @ {est.v1_clock_mhz():g} MHz",
        f"  {'v1 kernel, as coded (port requests counted)':<58} {est.v1_as_coded_ms:10.1f} ms"
        f"  weights moved {est.v1_weight_bytes / 1e9:.2f} GB",
        f"  {'v2 kernel, this interface (hls/src/npu_kernel.cpp)':<58} {est.kernel_latency_ms:10.2f} ms"
        f"  DDR {est.ddr_bytes(False) / 1e6:.1f} MB; {_validation(est)}",
    ]
    for n, s in est.effects:
        lines.append(f"    next step: {n:<52} -{s:7.2f} ms")
    lines.append(f"  {'v2 design (docs/hardware.md)':<58} {est.latency_ms:10.2f} ms"
                 f"  DDR {est.ddr_bytes(True) / 1e6:.1f} MB")
    lines += _resource_lines(est)
    for op, (n, cyc) in sorted(est.by_op().items(), key=lambda kv: -kv[1][1]):
        lines.append(f"  {op:<15} x{n:<4} {cyc / 1e6:10.3f} M cycles  {_ms(cyc, est):9.3f} ms (v2 design)")
    if per_layer:
        lines += _per_layer_lines(est)
    lines.append("  published batch-1 figures (other hardware and numerics, for scale):")
    for who, what, lat in ANCHORS:
        lines.append(f"    {lat:>9}  {what}: {who}")
    return "\n".join(lines)


def _resource_lines(est: Estimate) -> list[str]:
    t = est.target
    res = resources(t, est.precision or DEFAULT_PRECISION.label)
    budget = res["budget"]
    fit = ""
    if budget:
        fit = (f"; budget {budget['dsp']} / {budget['uram']} / {budget['bram36']} / {budget['lut'] / 1e3:.0f}K"
               + (" (within)" if within(res, budget) else " (OVER BUDGET)"))
    return [f"  resources (v2 design, {res['lanes']} PE lanes): {res['dsp']} DSP, {res['uram']} URAM, "
            f"{res['bram36']} BRAM36, {res['lut'] / 1e3:.0f}K LUT of {t.device.dsp} / {t.device.uram} / "
            f"{t.device.bram36} / {t.device.lut / 1e3:.0f}K" + fit,
            f"    ({res['source']})"]


def _per_layer_lines(est: Estimate) -> list[str]:
    lines = [f"  per layer (v2 design | v2 kernel): {'path':<9} {'bands':>5} {'tiles':>5} {'K':>3} "
             f"{'steps':>5} {'ms':>8} bound    {'ms':>8} bound"]
    for i, (d, c, k) in enumerate(zip(est.instructions, est.design, est.kernel)):
        lines.append(f"    {_label(i, d)[:34]:<34} {c.path:<9} {c.bands:>5} {c.tiles:>5} {c.k:>3} {c.steps:>5} "
                     f"{_ms(c.cycles, est):8.3f} {c.bound:<8} {_ms(k.cycles, est):8.3f} {k.bound}")
    return lines


def print_estimate(name: str, model, board: str, precision: str = DEFAULT_PRECISION.label, per_layer: bool = False,
                   file=None) -> Estimate:
    est = estimate_model(model, board, precision)
    print(format_estimate(f"{name} ({precision})", est, per_layer), file=file)
    return est


# ---- command lines -----------------------------------------------------------------------------------------
def add_estimate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments for `brainwave models --estimate BOARD`."""
    parser.add_argument("--estimate", metavar="BOARD", choices=sorted(TARGETS),
                        help="print the NPU latency ESTIMATE for BOARD (" + ", ".join(sorted(TARGETS)) + ")")
    parser.add_argument("--precision", choices=Precision.labels(), default=None,
                        help="NPU precision for --estimate (default: every precision)")
    parser.add_argument("--per-layer", action="store_true", help="with --estimate: one line per layer")
    parser.add_argument("--json", action="store_true", help="with --estimate: print JSON (one object per network "
                        "and precision)")


def run_estimate(args: argparse.Namespace, console) -> int:
    """`brainwave models --estimate BOARD [--json]`: the estimate for every catalog network and precision."""
    from brainwave.models.catalog import catalog_entries

    return _report([spec.model_ref for spec in catalog_entries()], args.estimate, args, console.status)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m brainwave.fpga.perf",
                                 description="NPU latency estimate for the catalog featurizers (an ESTIMATE)")
    ap.add_argument("board", choices=sorted(TARGETS))
    ap.add_argument("--model", choices=("resnet50", "efficientnet-lite0", "all"), default="all")
    ap.add_argument("--precision", choices=Precision.labels(), default=None)
    ap.add_argument("--per-layer", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    names = ["resnet50", "efficientnet-lite0"] if args.model == "all" else [args.model]
    return _report(names, args.board, args, lambda _what: nullcontext())


def _report(networks: list[str], board: str, args: argparse.Namespace, status: Status) -> int:
    """Text per network and precision as it is estimated, or one JSON list at the end (--json)."""
    as_json = getattr(args, "json", False)
    records = []
    for name in networks:
        with status(f"building {name} for the estimate..."):
            model = _catalog_model(name)
        for prec in _precisions(getattr(args, "precision", None)):
            if as_json:
                with status(f"estimating {name} {prec}..."):
                    records.append(estimate_record(name, estimate_model(model, board, prec)))
            else:
                print_estimate(name, model, board, prec, getattr(args, "per_layer", False))
    if as_json:
        print(json.dumps(records, indent=1))
    return 0


def _precisions(arg: str | None) -> list[str]:
    """The one asked for, else every precision, the default first."""
    return [arg] if arg else [DEFAULT_PRECISION.label] + [p.label for p in Precision if p != DEFAULT_PRECISION]


def _catalog_model(name: str):
    from brainwave.models.catalog import build_featurizer, resolve_featurizer

    return build_featurizer(resolve_featurizer(name))
