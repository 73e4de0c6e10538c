"""The v2 kernel's tiling of a CONV2D: a mirror of plan_conv in hls/src/npu_kernel.cpp.

tests/fpga/test_npu_config.py compares `plan_conv(...).as_kernel_tuple()` with the kernel's own plan (the C-sim
hook npu_plan_conv in libnpu.so) for every conv of the catalog networks and the HLS sweep, so every field,
including those a fallback to the generic path leaves behind, must be set exactly as the C++ sets it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from brainwave.npu.isa import Instruction
from brainwave.npu.numerics import BLOCK, Precision

from ..boards import NpuConfig


@dataclass
class ConvPlan:
    path: str  # "dense", "depthwise" or "generic" (PATH_DENSE, PATH_DEPTHWISE, PATH_GENERIC)
    nb_in: int = 0
    nbw: int = 1
    taps: int = 0
    steps: int = 0
    k: int = 0
    kt_per_group: int = 0
    n_kt: int = 0
    rows_cap: int = 0
    band_rows: int = 0
    n_bands: int = 0
    resident: bool = False
    lookahead: bool = True
    l_eff: int = 0

    PATH_CODES = {"dense": 0, "depthwise": 1, "generic": 2}

    def as_kernel_tuple(self) -> tuple:
        """In the order npu_plan_conv (the C-sim hook) reports it."""
        return (self.PATH_CODES[self.path], self.nb_in, self.nbw, self.taps, self.steps, self.k, self.kt_per_group,
                self.n_kt, self.rows_cap, self.band_rows, self.n_bands, int(self.resident), int(self.lookahead),
                self.l_eff)


def plan_conv(d: Instruction, npu: NpuConfig) -> ConvPlan:
    p = ConvPlan("generic", nb_in=math.ceil(d.in_c / BLOCK), taps=d.kernel_h * d.kernel_w, l_eff=npu.interleave)
    # weight blocks one bank holds: a 16-byte slot per block (bfp12 too), two for a bfp20 block
    cap = min(npu.wbuf_bytes // Precision(d.precision).block_bytes, npu.wbuf_bytes // 16)
    if d.is_depthwise:
        _plan_depthwise(p, d, npu, cap)
    elif d.groups == 1 or (d.in_c // d.groups) % BLOCK == 0:
        _plan_dense(p, d, npu, cap)
    if p.path != "generic":
        _plan_bands(p, d, npu)
    return p


def _plan_depthwise(p: ConvPlan, d: Instruction, npu: NpuConfig, cap: int) -> None:
    """acc_lanes channels per K-tile, one product per lane and tap; all taps' weights stay in the bank."""
    p.path = "depthwise"
    p.steps = p.taps
    p.k = npu.acc_lanes
    p.kt_per_group = p.n_kt = math.ceil(d.in_c / npu.acc_lanes)
    if p.taps * p.nb_in > cap:
        p.path = "generic"
    p.resident = True


def _plan_dense(p: ConvPlan, d: Instruction, npu: NpuConfig, cap: int) -> None:
    """K output channels per tile (fewer when a tile's weights would not fit the bank), tiles per group."""
    p.path = "dense"
    cg, opg = d.in_c // d.groups, d.out_c // d.groups
    p.nbw = math.ceil(cg / BLOCK)
    steps = p.taps * p.nbw
    kprec = npu.k_max
    if Precision(d.precision) == Precision.BFP20:  # split cascades when a chunk has at most 8 live lanes
        kprec = 2 * npu.dsp_cols if cg <= BLOCK // 2 and 2 * npu.dsp_cols <= npu.acc_lanes else npu.dsp_cols
    fit = cap // steps if steps <= cap else 0
    k = min(kprec, opg, fit)
    if k == 0:
        p.path = "generic"
        return
    p.steps = steps
    p.k = k
    p.kt_per_group = math.ceil(opg / k)
    p.n_kt = d.groups * p.kt_per_group
    p.resident = p.n_kt == 1


def _plan_bands(p: ConvPlan, d: Instruction, npu: NpuConfig) -> None:
    """Output rows per band: the whole layer if its rows fit the line buffer, else as many as fit with the next
    band's rows read ahead, else one row without look-ahead, else the generic path."""
    oh = d.out_h
    row_blocks = d.in_w * p.nb_in
    p.rows_cap = 0xFFFFFFFF if row_blocks == 0 else npu.lb_blocks // row_blocks
    r = 0
    if oh > 0 and band_span(d, oh) <= p.rows_cap:
        r = oh
    else:
        for c in range(1, oh):
            if band_span(d, c) + band_ahead(d, c) > p.rows_cap:
                break
            r = c
    if r == 0 and oh > 0 and band_span(d, 1) <= p.rows_cap:
        r = 1
        p.lookahead = False
    if r == 0 and oh > 0:
        p.path = "generic"
        return
    p.band_rows = r
    p.n_bands = math.ceil(oh / r) if r else 0
    p.l_eff = _interleave(min(r, oh) * d.out_w, npu)


def _interleave(band_pixels: int, npu: NpuConfig) -> int:
    """The number of pixel groups l in [adder latency, L] that wastes the fewest pixel slots in a band (the
    largest l on a tie)."""
    best, l_eff = None, npu.interleave
    for lv in range(npu.interleave, max(npu.adder_latency, 1) - 1, -1):
        slots = math.ceil(band_pixels / (npu.pixels * lv)) * lv
        if best is None or slots < best:
            best, l_eff = slots, lv
    return l_eff


def band_span(d: Instruction, r: int) -> int:
    """Line-buffer rows a band of r output rows spans (rows no tap reads take none when stride > kernel)."""
    kh, sh = d.kernel_h, d.stride_h
    return min(r * kh if kh < sh else (r - 1) * sh + kh, d.in_h)


def band_ahead(d: Instruction, r: int) -> int:
    """Input rows the next band of r output rows adds (read ahead while this band computes)."""
    if r >= d.out_h:
        return 0
    kh, sh = d.kernel_h, d.stride_h
    return min(r * kh if kh < sh else r * sh, d.in_h)


def band_input_rows(d: Instruction, p: ConvPlan, b: int) -> tuple[int, int]:
    """The input rows [lo, hi) band b's windows cover."""
    oy0 = b * p.band_rows
    oy1 = min(oy0 + p.band_rows, d.out_h)
    lo = max(oy0 * d.stride_h - d.pad_top, 0)
    hi = min((oy1 - 1) * d.stride_h - d.pad_top + d.kernel_h, d.in_h)
    return lo, hi
