"""The RTL PE lanes (rtl/, docs/hardware.md "PE lane (RTL)") against the NPU, byte for byte.

Each lane runs in Verilator and must reproduce the float32 accumulator of docs/numerics.md for: every CONV2D
output element of the randomized single-instruction sweep (tests/support/cases.py), more than 10^6 randomized
chunk sequences aimed at the format's edge cases, and two accumulations that reach the top of the float32 range.
The expected values are the NPU executor's (rtl_vectors.run_npu), never a model written here.
"""
from __future__ import annotations

import subprocess

import pytest

from brainwave.npu.isa import Opcode, Program
from brainwave.npu.numerics import Precision
from tests.rtl.rtl_random import overflow_set, random_set
from tests.rtl.rtl_vectors import RTL, VectorSet, add_conv_program, documented_timing, run_bench
from tests.support import cases

LANES = ("bfp20", "bfp16")
RUNS_PRECISIONS = {"bfp20": {Precision.BFP20, Precision.BFP16, Precision.BFP12},
                   "bfp16": {Precision.BFP16, Precision.BFP12}}


@pytest.mark.parametrize("lane", LANES)
def test_conv_sweep_matches_npu(lane_benches, lane, tmp_path):
    """Every output element of every CONV2D in the HLS sweep the lane's precisions cover: strides, padding,
    grouped and depthwise convs (chunks cut short), all value kinds, bfp20 sums past 2^24."""
    vs = VectorSet()
    sequences = 0
    for case in cases.sweep():
        program = Program.from_bytes(case.program, case.weights)
        d = program.instructions[0]
        if d.opcode == Opcode.CONV2D and Precision(d.precision) in RUNS_PRECISIONS[lane]:
            sequences += add_conv_program(vs, case.name, program, case.x)
    assert sequences == vs.sequences_checked() > 10_000
    run = run_bench(lane_benches[lane], vs, tmp_path)
    assert vs.mismatches(run.results) == []
    assert run.latency == documented_timing(lane)["latency"]


@pytest.mark.parametrize("lane", LANES)
def test_random_sequences_match_npu(lane_benches, lane, tmp_path):
    """More than 10^6 sequences per lane with every slot of the interleaved accumulator busy and 5% idle slot
    turns: the bulk with uniform mantissas, then all-zero and sparse chunks, maximum magnitudes, the smallest
    values, exponents at -50 and 50, exact cancellation to +0.0 and near-cancellation, bfp20 chunk sums on
    and next to rounding ties past 2^24, the narrower precisions, and sequences of 256 and 2048 chunks."""
    vs, counts = random_set(lane)
    assert counts["sequences"] == vs.sequences_checked() >= 1_000_000
    edge_cases = ["max", "signs", "sparse", "small", "exponents -50/50", "cancellation to +0.0",
                  "near cancellation", "long (256 chunks)", "long (2048 chunks)"]
    if lane == "bfp20":
        edge_cases += ["sums past 2^24", "rounding ties", "bfp16", "bfp12"]
        assert counts["rounding ties"] >= 10_000
    assert all(counts.get(name, 0) > 0 for name in edge_cases), counts
    run = run_bench(lane_benches[lane], vs, tmp_path, bubbles=5)
    assert vs.mismatches(run.results) == []
    assert run.latency == documented_timing(lane)["latency"]


def test_overflow_to_inf_matches_npu(lane_benches, tmp_path):
    """About 4.2 million maximal chunks: +Inf exactly where the NPU overflows, kept for the chunks after it,
    and a finite sum in the top binade next to it (docs/hardware.md: the adder's only non-normal result)."""
    vs = overflow_set()
    run = run_bench(lane_benches["bfp20"], vs, tmp_path)
    assert vs.mismatches(run.results) == []


def test_rtl_is_lint_clean(lane_benches):
    """verilator --lint-only -Wall on both lanes (the fixture has checked that verilator exists)."""
    proc = subprocess.run(["make", "-s", "-C", str(RTL), "lint"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
