"""Performance model of the NPU on a board: cycles, DDR bytes and resources per layer. AN ESTIMATE.

Nothing here is measured: no synthesis, no board. The model is derived from the kernels' structure.

- **v1 as coded** (the kernel before the v2 rewrite, `git show e0d4466~2:hls/src/npu_kernel.cpp`): every loop
  at the II its port requests force. An m_axi port answers one request per cycle, and v1 read weights a byte
  at a time (II = 1 + block bytes: 17 in bfp16, 33 in bfp20), input pixels a float at a time per tap, biases as
  four byte reads, and checked every weight exponent with one byte read per cycle. Printed beside the
  idealised figure the old model gave (one block per cycle), which ignored all of that.
- **v2 kernel** (hls/src/npu_kernel.cpp as it is now, this interface: one weights port, one arena port,
  float32 arena, validation on every call). `plan_conv` is the kernel's own tiling (plan_conv in the C++;
  tests/fpga/test_npu_config.py compares them through libnpu.so). Per band: the flattened STEPS loop runs
  n_units * steps * L iterations at II=1 plus one pipeline fill per K-tile and unpacks one weight beat per
  iteration (the next tile into the idle bank; what does not fit is drained serially), the reader moves input
  rows and residuals through the arena port, the vector unit handles one pixel every VEC_II cycles, the writer
  one port beat per cycle, all sharing the DRAM bandwidth; the band takes the longest of them. Plus a
  per-instruction control overhead and the exposed prologue (first tile, first rows).
- **v2 design** (docs/hardware.md): the same engine with the next-step interface, each effect listed
  separately: program validation once at load (no per-call exponent check), activations stored quantized
  where all consumers are convolutions of one precision, weights and arena over several HP ports, and on
  Alveo the weights resident in URAM across calls.

Board and engine parameters come from brainwave/fpga/boards.py (TARGETS), the same table the kernel's
hls/src/npu_config.h is generated from. Resource figures: see `resources()`.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

from brainwave.npu.numerics import DEFAULT_PRECISION, Precision

from .boards import BOARDS, REPO, TARGETS, Board, NpuConfig, Target, get_board, get_target

BLOCK = 16

# ---- v1 (the old kernel) -----------------------------------------------------------------------------------
V1_WEIGHT_PORT_BITS = 128  # the old kernel's widened weights port (gmem1)
V1_PIPE_DEPTH = 12  # assumed pipeline depth of a loop entry in the old model
V1_OLANES = 8

# ---- v2 (hls/src/npu_kernel.cpp) ---------------------------------------------------------------------------
# Depth of the STEPS loop's pipeline, paid once per (band, K-tile): line-buffer read 2, 16-DSP cascade with
# input/output registers 18, packed split 1, int->float32 3, exponent add 1, float32 add (fabric) 8, write 1.
V2_FILL = 34
V2_INSN_OVERHEAD = 200  # per instruction: 32 program words, decode, plan loop, dataflow start and drain
V2_VALIDATE_PER_INSN = 40  # per instruction in the per-call check (32 words + field and bound checks)

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


@dataclass
class Layer:
    op: str
    in_shape: tuple
    out_shape: tuple
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    pads: tuple = (0, 0, 0, 0)  # top, left, bottom, right
    groups: int = 1
    precision: int = int(DEFAULT_PRECISION)  # the program's precision code (brainwave.npu.numerics.Precision)
    name: str = ""
    has_residual: int = 0
    in_offset: int = -1  # arena offsets (for the quantized-storage analysis); -1 when unknown
    out_offset: int = -1
    residual_offset: int = -1
    in2_offset: int = -1


def _tap_axis(n_out, k, s, p, n_in):
    return [sum(1 for kk in range(k) if 0 <= o * s - p + kk < n_in) for o in range(n_out)]


def _tap_counts(L: Layer) -> int:
    """Sum over output pixels of valid taps (separable per axis)."""
    ih, iw, _ = L.in_shape
    oh, ow, _ = L.out_shape
    ys = _tap_axis(oh, L.kernel[0], L.stride[0], L.pads[0], ih)
    xs = _tap_axis(ow, L.kernel[1], L.stride[1], L.pads[1], iw)
    return sum(ys) * sum(xs)


def _is_depthwise(L: Layer) -> bool:
    return L.groups == L.in_shape[2] and L.out_shape[2] == L.in_shape[2]


def layer_macs(L: Layer) -> int:
    if L.op != "CONV2D":
        return 0
    ic = L.in_shape[2]
    return L.out_shape[0] * L.out_shape[1] * L.out_shape[2] * L.kernel[0] * L.kernel[1] * (ic // L.groups)


def weight_blocks(L: Layer) -> int:
    taps = L.kernel[0] * L.kernel[1]
    if _is_depthwise(L):
        return taps * math.ceil(L.in_shape[2] / BLOCK)
    return L.out_shape[2] * taps * math.ceil(L.in_shape[2] // L.groups / BLOCK)


def weight_bytes(L: Layer) -> int:
    return weight_blocks(L) * (Precision(L.precision).block_bytes + 1) + 4 * L.out_shape[2]


# ============================================================================================================
# v1: the kernel before this rewrite


def v1_idealised_cycles(L: Layer, board: Board) -> int:
    """The old model: one 16-wide block MAC per cycle, one block per cycle for quantization, one element per
    cycle elsewhere (what `brainwave models --estimate` printed before v2)."""
    ih, iw, ic = L.in_shape
    oh, ow, oc = L.out_shape
    pix = oh * ow
    if L.op == "CONV2D":
        taps = _tap_counts(L)
        nb_in = math.ceil(ic / BLOCK)
        quant = taps * (nb_in + V1_PIPE_DEPTH)
        port_bytes = min(board.hp_port_bits, V1_WEIGHT_PORT_BITS) // 8
        if _is_depthwise(L) and L.groups > 1:
            mac = taps * (nb_in + V1_PIPE_DEPTH)
        else:
            cg = ic // L.groups
            nbw = math.ceil(cg / BLOCK)
            if cg % BLOCK == 0 or L.groups == 1:
                stretch = max(1.0, Precision(L.precision).block_bytes / port_bytes)
                mac = taps * (math.ceil(oc / V1_OLANES) * V1_OLANES * nbw * stretch + V1_PIPE_DEPTH)
            else:
                chunks = nbw + (cg // BLOCK)
                mac = taps * oc * chunks * (BLOCK // 2 + V1_PIPE_DEPTH)
        return int(pix * (2 * oc + 2 * V1_PIPE_DEPTH) + quant + mac)
    if L.op in ("MAXPOOL", "AVGPOOL"):
        return int(_tap_counts(L) * oc + pix * V1_PIPE_DEPTH)
    if L.op == "GLOBAL_AVGPOOL":
        return ih * iw * ic + ic + V1_PIPE_DEPTH
    if L.op in ("ADD", "ACTIVATION"):
        return ih * iw * ic + V1_PIPE_DEPTH
    if L.op == "PAD":
        return pix * oc + oh * V1_PIPE_DEPTH
    raise ValueError(f"unknown op {L.op}")


# kept for callers of the old name
layer_cycles = v1_idealised_cycles


@dataclass
class V1Cost:
    cycles: int
    weight_bytes: int  # bytes the weights port moves (every byte a separate request)
    arena_bytes: int
    validate_cycles: int = 0


def v1_as_coded(L: Layer) -> V1Cost:
    """The old kernel with its port requests counted: one request per cycle per m_axi port."""
    ih, iw, ic = L.in_shape
    oh, ow, oc = L.out_shape
    pix = oh * ow
    d = V1_PIPE_DEPTH
    if L.op == "CONV2D":
        bb = Precision(L.precision).block_bytes
        taps = _tap_counts(L)  # valid (pixel, tap) pairs
        nb_in = math.ceil(ic / BLOCK)
        cg, opg = ic // L.groups, oc // L.groups
        nbw = math.ceil(cg / BLOCK)
        quant = taps * (nb_in * BLOCK + d)  # QUANT: 16 single-float reads per block on gmem2
        if _is_depthwise(L):
            mac = taps * (nb_in * (1 + bb) + d)  # DW_BLOCKS: exponent + mantissa bytes per block on gmem1
            wbytes = taps * nb_in * (1 + bb)
        elif L.groups == 1 or cg % BLOCK == 0:
            lanes = math.ceil(oc / V1_OLANES) * V1_OLANES
            mac = taps * (oc * nbw * (1 + bb) + (lanes - oc) * nbw + d * math.ceil(oc / V1_OLANES) * nbw)
            wbytes = taps * oc * nbw * (1 + bb)
        else:
            chunks = nbw + (cg // BLOCK) * (cg % BLOCK != 0)
            mac = taps * oc * (nbw * (1 + bb + d) + chunks * (BLOCK // 2 + d))
            wbytes = taps * oc * nbw * (1 + bb)
        clear = pix * (oc + d)
        vector = pix * (oc * 4 + d)  # bias as four byte reads on gmem1: II = 4
        wbytes += pix * oc * 4
        arena = taps * ic * 4 + pix * oc * 4 * (1 + L.has_residual)
        validate = weight_blocks(L)  # one exponent byte per cycle, every call
        return V1Cost(int(quant + mac + clear + vector), int(wbytes), int(arena), int(validate))
    n_in, n_out = ih * iw * ic, oh * ow * oc
    if L.op in ("MAXPOOL", "AVGPOOL"):
        cells = _tap_counts(L) * oc
        return V1Cost(int(cells + pix * oc + pix * d), 0, 4 * (cells + n_out))
    if L.op == "GLOBAL_AVGPOOL":
        return V1Cost(n_in + 2 * ic + 3 * d, 0, 4 * (n_in + ic))
    if L.op == "ADD":
        return V1Cost(2 * n_in + d, 0, 12 * n_in)  # two reads per element on gmem2: II = 2
    if L.op == "ACTIVATION":
        return V1Cost(n_in + d, 0, 8 * n_in)
    if L.op == "PAD":
        return V1Cost(n_out + oh * ow * d, 0, 4 * (n_in + n_out))
    raise ValueError(f"unknown op {L.op}")


# ============================================================================================================
# v2: the kernel's tiling plan (a mirror of plan_conv in hls/src/npu_kernel.cpp)


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


def plan_conv(L: Layer, npu: NpuConfig) -> ConvPlan:
    ih, iw, ic = L.in_shape
    oh, ow, oc = L.out_shape
    kh, kw = L.kernel
    sh = L.stride[0]
    prec = Precision(L.precision)
    k_max = npu.k_max
    acc_lanes = npu.acc_lanes
    wb_blocks = npu.wbuf_bytes // 16
    cap = min(npu.wbuf_bytes // prec.block_bytes, wb_blocks)
    p = ConvPlan("generic", nb_in=math.ceil(ic / BLOCK), taps=kh * kw, l_eff=npu.interleave)
    groups = L.groups
    cg, opg = ic // groups, oc // groups
    if _is_depthwise(L):
        p.path = "depthwise"
        p.steps = p.taps
        p.k = acc_lanes
        p.kt_per_group = p.n_kt = math.ceil(ic / acc_lanes)
        if p.taps * p.nb_in > cap:
            p.path = "generic"
        p.resident = True
    elif groups == 1 or cg % BLOCK == 0:
        p.path = "dense"
        p.nbw = math.ceil(cg / BLOCK)
        steps = p.taps * p.nbw
        kprec = k_max
        if prec == Precision.BFP20:  # split cascades when a chunk has at most 8 live lanes
            kprec = 2 * npu.dsp_cols if cg <= BLOCK // 2 and 2 * npu.dsp_cols <= acc_lanes else npu.dsp_cols
        fit = cap // steps if steps <= cap else 0
        k = min(kprec, opg, fit)
        if k == 0:
            p.path = "generic"
        else:
            p.steps = steps
            p.k = k
            p.kt_per_group = math.ceil(opg / k)
            p.n_kt = groups * p.kt_per_group
            p.resident = p.n_kt == 1
    if p.path == "generic":
        return p
    row_blocks = iw * p.nb_in
    p.rows_cap = 0xFFFFFFFF if row_blocks == 0 else npu.lb_blocks // row_blocks
    r = 0
    if oh > 0 and _band_span(L, oh) <= p.rows_cap:
        r = oh  # the whole layer in one band
    else:
        for c in range(1, oh):
            if _band_span(L, c) + _band_ahead(L, c) > p.rows_cap:
                break
            r = c
    if r == 0 and oh > 0 and _band_span(L, 1) <= p.rows_cap:
        r = 1
        p.lookahead = False
    if r == 0 and oh > 0:
        p.path = "generic"
        return p
    p.band_rows = r
    p.n_bands = math.ceil(oh / r) if r else 0
    pix = min(r, oh) * ow
    best = None
    for lv in range(npu.interleave, max(npu.adder_latency, 1) - 1, -1):
        slots = math.ceil(pix / (npu.pixels * lv)) * lv
        if best is None or slots < best:
            best, p.l_eff = slots, lv
    return p


def _band_span(L: Layer, r: int) -> int:
    """Line-buffer rows a band of r output rows spans (rows no tap reads take none when stride > kernel)."""
    kh, sh, ih = L.kernel[0], L.stride[0], L.in_shape[0]
    return min(r * kh if kh < sh else (r - 1) * sh + kh, ih)


def _band_ahead(L: Layer, r: int) -> int:
    kh, sh, ih, oh = L.kernel[0], L.stride[0], L.in_shape[0], L.out_shape[0]
    if r >= oh:
        return 0
    return min(r * kh if kh < sh else r * sh, ih)


def _touched_rows(L: Layer) -> list[bool]:
    ih = L.in_shape[0]
    oh = L.out_shape[0]
    kh, sh, pt = L.kernel[0], L.stride[0], L.pads[0]
    out = []
    for iy in range(ih):
        t = False
        for ky in range(kh):
            v = iy + pt - ky
            if v >= 0 and v % sh == 0 and v // sh < oh:
                t = True
                break
        out.append(t)
    return out


def _band_rows_in(L: Layer, p: ConvPlan, b: int) -> tuple[int, int]:
    oy0 = b * p.band_rows
    oy1 = min(oy0 + p.band_rows, L.out_shape[0])
    lo = max(oy0 * L.stride[0] - L.pads[0], 0)
    hi = min((oy1 - 1) * L.stride[0] - L.pads[0] + L.kernel[0], L.in_shape[0])
    return lo, hi


# ============================================================================================================
# v2: what a run costs


@dataclass(frozen=True)
class Variant:
    """Which interface the v2 engine runs behind. `kernel`: this round's (hls/src/npu_kernel.cpp as it is)."""

    name: str
    validate_per_call: bool = True
    quantized_storage: bool = False  # activations stored quantized where all consumers are convs of one precision
    weight_ports: int = 1
    arena_ports: int = 1
    weights_resident: bool = False  # weights kept in URAM across calls (loaded once, with the program)
    pooled_ports: bool = False  # every HP port carries any stream (weights, rows, residuals, outputs)
    arena_on_chip: bool = False  # intermediate tensors kept on chip when the arena fits


def kernel_variant(tgt: Target) -> Variant:
    return Variant("v2 kernel (this interface)")


def design_variant(tgt: Target) -> Variant:
    c = tgt.npu
    return Variant("v2 design (next-step interface)", validate_per_call=False, quantized_storage=True,
                   weight_ports=c.design_weight_ports, arena_ports=c.design_arena_ports, pooled_ports=True,
                   weights_resident=c.weights_resident_bytes > 0, arena_on_chip=c.arena_on_chip_bytes > 0)


def _stored_bytes_per_value(prec: Precision) -> float:
    """A quantized activation as stored: bfp20 mantissas in 16-bit lanes, bfp16 8-bit, bfp12 4-bit; one
    exponent byte per 16 values."""
    return {Precision.BFP20: 2.0, Precision.BFP16: 1.0, Precision.BFP12: 0.5}[prec] + 1 / 16


@dataclass
class LayerCost:
    name: str
    op: str
    path: str
    cycles: int
    compute_cycles: int = 0  # the engine's II=1 iterations (or the op's loop iterations)
    weight_bytes: int = 0
    act_read_bytes: int = 0
    act_write_bytes: int = 0
    bound: str = ""  # what limits the layer: compute, reader, writer, fetch, ddr (convs); vector, ddr (others)
    interleave: int = 0  # pixel groups taking turns in the II=1 loop (l_eff)
    units: int = 0  # work units of P x l_eff pixels, summed over bands
    tiles: int = 0
    bands: int = 0
    k: int = 0
    steps: int = 0
    macs: int = 0

    @property
    def ddr_bytes(self) -> int:
        return self.weight_bytes + self.act_read_bytes + self.act_write_bytes


def _ddr_bytes_per_cycle(c: NpuConfig) -> float:
    return c.ddr_gbps * 1e9 * c.ddr_efficiency / (c.clock_mhz * 1e6)


def _run_beats(first: int, n: int) -> int:
    """128-bit beats of an aligned run covering bytes [first, first + n)."""
    if n <= 0:
        return 0
    return (first + n + 15) // 16 - first // 16


ONCHIP_BYTES_PER_CYCLE = 1024  # an on-chip arena (BRAM, hundreds of 72-bit ports): not a bound here


def v2_conv(L: Layer, tgt: Target, var: Variant, in_q: bool = False, out_q: bool = False,
            weights_on_chip: bool = False, arena_on_chip: bool = False) -> LayerCost:
    c = tgt.npu
    prec = Precision(L.precision)
    p = plan_conv(L, c)
    ih, iw, ic = L.in_shape
    oh, ow, oc = L.out_shape
    macs = layer_macs(L)
    if p.path == "generic":
        v1 = v1_as_coded(L)
        return LayerCost(L.name, L.op, "generic", v1.cycles + V2_INSN_OVERHEAD, v1.cycles, v1.weight_bytes,
                         v1.arena_bytes, 0, "generic", macs=macs)
    port = c.port_bits / 8
    read_bw = port * var.arena_ports
    write_bw = port * var.arena_ports
    fetch_bw = port * var.weight_ports
    pooled = var.weight_ports + var.arena_ports if var.pooled_ports else 0
    if arena_on_chip:  # activations never leave the chip; the ports carry only weights
        read_bw = write_bw = ONCHIP_BYTES_PER_CYCLE
    ddr = _ddr_bytes_per_cycle(c)
    L_ = p.l_eff
    pl = c.pixels * L_
    bb = prec.block_bytes
    in_value = _stored_bytes_per_value(prec) if in_q else 4.0
    out_value = _stored_bytes_per_value(prec) if out_q else 4.0
    if in_q:
        row_bytes = iw * p.nb_in * BLOCK * in_value
    else:
        row_bytes = iw * ic * 4.0
    row_blocks = iw * p.nb_in
    touched = _touched_rows(L)

    # weight loads: (first byte, bytes) runs per tile; beats the engine unpacks (one per iteration per port)
    def tile_runs(t):
        if p.path == "depthwise":
            nblk, o0, kc = p.taps * p.nb_in, 0, oc
            blk0 = 0
        else:
            opg = oc // L.groups
            g, j = divmod(t, p.kt_per_group)
            o0 = g * opg + j * p.k
            kc = min(p.k, opg - j * p.k)
            blk0, nblk = o0 * p.steps, kc * p.steps
        return nblk * bb, nblk, 4 * kc, blk0, o0

    def tile_beats(t):
        mb, eb, bbytes, blk0, o0 = tile_runs(t)
        # the blob's offsets are not known to the model: mantissas start 16-aligned, the rest 0.5 beat off avg
        return _run_beats(blk0 * bb, mb) + math.ceil(eb / 16) + 1 + math.ceil(bbytes / 16) + 1, mb + eb + bbytes

    loads_per_band = 1 if p.path == "depthwise" else p.n_kt
    tile_list = [tile_beats(t) for t in range(loads_per_band)]
    # beats per iteration the idle bank takes: one per weight port (the design: any of its pooled ports)
    unpack_rate = var.weight_ports + (var.arena_ports if var.pooled_ports else 0)
    if weights_on_chip:
        tile_list = [(0, 0) for _ in tile_list]
    total_loads = 1 if p.resident else p.n_bands * loads_per_band

    def load(gidx):
        return tile_list[0 if p.path == "depthwise" else gidx % loads_per_band]

    cycles = V2_INSN_OVERHEAD
    compute_total = 0
    w_bytes_total = 0
    rd_total = 0
    wr_total = 0
    bounds: dict[str, int] = {}
    absorb_rate = c.absorb_blocks  # line-buffer blocks an iteration can take
    # prologue: tile 0 unpacked, exposed; the rows stream in while the first tile computes
    beats0, bytes0 = load(0)
    w_bytes_total += bytes0
    cycles += max(beats0 / unpack_rate, bytes0 / fetch_bw)
    g = 1  # loads started
    cur = 0
    steps_total = p.steps + 1 + (1 if L.has_residual else 0)  # + bias, + residual (the vector unit)
    loaded = 0  # rows [0, loaded) belong to bands already started
    pending_next = 0.0  # blocks of the next band's rows still to take
    for b in range(p.n_bands):
        oy0 = b * p.band_rows
        pix = (min(oy0 + p.band_rows, oh) - oy0) * ow
        n_units = math.ceil(pix / pl)
        n_iter = n_units * steps_total * L_
        lo, hi = _band_rows_in(L, p, b)
        lo = max(lo, loaded)
        band_rows = sum(touched[lo:hi]) if hi > lo else 0
        loaded = max(loaded, hi)
        if b == 0:
            pending_cur = band_rows * row_blocks
        else:
            pending_cur = pending_next  # what the previous band's look-ahead left of this band's rows
        nlo, nhi = _band_rows_in(L, p, b + 1) if b + 1 < p.n_bands else (0, 0)
        nlo = max(nlo, loaded)
        next_blocks = (sum(touched[nlo:nhi]) if nhi > nlo else 0) * row_blocks
        pending_next = next_blocks
        rows_read = band_rows if b == 0 else 0
        engine = float(V2_FILL)  # one pipeline fill per band
        fetch_bytes = 0
        for t in range(p.n_kt):
            if (not p.resident) and (p.path != "depthwise" or t == 0) and (b > 0 or t > 0):
                cur += 1
            beats = 0
            if g < total_loads and g == cur + 1:
                beats, nbytes = load(g)
                fetch_bytes += nbytes
                g += 1
            unpack_iters = math.ceil(beats / unpack_rate)
            cur_iters = math.ceil(pending_cur / absorb_rate)
            pending_cur = 0
            n_t = max(n_iter, cur_iters + unpack_iters)
            free = n_t - cur_iters - unpack_iters
            if p.lookahead and pending_next:
                pending_next = max(0.0, pending_next - free * absorb_rate)
            engine += n_t
        if not p.lookahead:
            pass  # the next band takes all its rows during its own first tile
        compute_total += n_iter * p.n_kt
        rd = (rows_read * row_bytes + (next_blocks / row_blocks if row_blocks else 0) * row_bytes
              + (pix * oc * 4.0 if L.has_residual else 0.0))
        wr = pix * oc * out_value
        kcs = [min(p.k, oc - t * p.k) if p.path == "depthwise" else min(p.k, oc // L.groups - (t % p.kt_per_group) * p.k)
               for t in range(p.n_kt)]
        reader = rd / read_bw
        writer = sum(pix * math.ceil(kc * out_value / port) for kc in kcs) / var.arena_ports
        fetch = fetch_bytes / fetch_bw
        dram = (fetch_bytes + (0 if arena_on_chip else rd + wr)) / ddr
        if pooled and not arena_on_chip:  # any stream on any port: reads and writes share the pool
            reader = (rd + fetch_bytes) / (port * pooled)
            writer = wr / (port * pooled)
            fetch = 0.0
        elif pooled:
            fetch = fetch_bytes / (port * pooled)
        parts = {"compute": engine, "reader": reader, "writer": writer, "fetch": fetch, "ddr": dram}
        worst = max(parts, key=parts.get)
        bounds[worst] = bounds.get(worst, 0) + 1
        cycles += parts[worst]
        w_bytes_total += fetch_bytes
        rd_total += rd
        wr_total += wr
    cycles += V2_FILL  # drain of the last unit through the vector unit and writer
    bound = max(bounds, key=bounds.get) if bounds else "compute"
    if weights_on_chip:
        w_bytes_total = 0
    if arena_on_chip:
        rd_total = wr_total = 0
    units = sum(math.ceil((min(b * p.band_rows + p.band_rows, oh) - b * p.band_rows) * ow / pl)
                for b in range(p.n_bands))
    return LayerCost(L.name, L.op, p.path, int(math.ceil(cycles)), compute_total, int(w_bytes_total),
                     int(rd_total), int(wr_total), bound, interleave=p.l_eff, units=units, tiles=p.n_kt,
                     bands=p.n_bands, k=p.k, steps=p.steps, macs=macs)


def v2_vector_op(L: Layer, tgt: Target, var: Variant, on_chip: bool = False) -> LayerCost:
    """ADD, ACTIVATION, PAD, pools: VW floats (one port beat) per iteration, float32 in and out."""
    c = tgt.npu
    vw = c.port_bits // 32
    ih, iw, ic = L.in_shape
    oh, ow, oc = L.out_shape
    n_in, n_out = ih * iw * ic, oh * ow * oc
    ports = var.arena_ports + (var.weight_ports if var.pooled_ports else 0)
    vw = vw * ports if var.pooled_ports else vw  # the design reads and writes a beat per port per cycle
    if L.op == "ADD":
        iters = math.ceil(n_in / vw) * (2 if not var.pooled_ports else 1)  # two read beats per iteration
        rd, wr = 8 * n_in, 4 * n_out
    elif L.op == "ACTIVATION":
        iters, rd, wr = math.ceil(n_in / vw), 4 * n_in, 4 * n_out
    elif L.op == "PAD":
        iters, rd, wr = oh * ow * math.ceil(oc / vw), 4 * n_in, 4 * n_out
    elif L.op in ("MAXPOOL", "AVGPOOL"):
        cells = _tap_counts(L)
        row_floats = iw * ic
        cap = c.pool_floats // row_floats if row_floats else 0
        if row_floats and cap >= min(L.kernel[0], ih):  # row cache: each touched row read once
            rows = sum(_touched_rows(L))
            rd = 4 * rows * row_floats
            iters = max(cells * math.ceil(ic / c.pool_lanes), rd / (4 * vw))  # pool_lanes channels per cycle
        else:  # pool_direct: cells re-read
            iters = (cells + oh * ow) * math.ceil(oc / vw)
            rd = 4 * cells * oc
        wr = 4 * n_out
    elif L.op == "GLOBAL_AVGPOOL":
        iters = ih * iw * math.ceil(ic / vw) + 2 * ic
        rd, wr = 4 * n_in, 4 * ic
    else:
        raise ValueError(f"unknown op {L.op}")
    dram = 0 if on_chip else (rd + wr) / _ddr_bytes_per_cycle(c)
    if on_chip:
        iters = iters / max(1, ONCHIP_BYTES_PER_CYCLE // (4 * vw)) if L.op in ("PAD", "ACTIVATION", "ADD") else iters
    cycles = V2_INSN_OVERHEAD + max(iters, dram) + V2_FILL
    return LayerCost(L.name, L.op, "vector", int(math.ceil(cycles)), iters, 0, 0 if on_chip else rd,
                     0 if on_chip else wr, "vector" if iters >= dram else "ddr")


def _quantized_tensors(layers: list[Layer], output_offset: int | None) -> tuple[set, set]:
    """Which CONV2D inputs and which outputs could be stored quantized: a tensor whose every consumer is a
    CONV2D reading it as its input, all of one precision (not a residual, not an ADD or pool operand), and
    which is not the program's output. The program's input comes from the host as float32."""
    writer_of: dict[int, int] = {}  # arena offset -> index of the instruction that last wrote it
    consumers: dict[int, list[tuple[int, str]]] = {}
    for i, L in enumerate(layers):
        reads = [(L.in_offset, "in")]
        if L.op == "ADD":
            reads.append((L.in2_offset, "in2"))
        if L.op == "CONV2D" and L.has_residual:
            reads.append((L.residual_offset, "res"))
        for off, how in reads:
            w = writer_of.get(off)
            if w is not None:
                consumers.setdefault(w, []).append((i, how))
        if L.out_offset >= 0:
            writer_of[L.out_offset] = i
    q_out: set[int] = set()
    for w, cons in consumers.items():
        L = layers[w]
        if L.out_offset == output_offset and w == max(writer_of.values()):
            continue
        if not cons or any(how != "in" or layers[j].op != "CONV2D" for j, how in cons):
            continue
        if len({layers[j].precision for j, _ in cons}) != 1:
            continue
        if L.out_offset == output_offset:
            continue
        q_out.add(w)
    q_in = set()
    for w in q_out:
        for j, _ in consumers[w]:
            q_in.add(j)
    return q_in, q_out


@dataclass
class Estimate:
    """One network on one target: the v2 cost per layer for the kernel and the design, the v1 figures."""

    target: Target
    layers: list
    kernel: list  # LayerCost per layer, v2 kernel (this interface)
    design: list  # LayerCost per layer, v2 design
    v1: list  # V1Cost per layer
    validate_cycles: int  # the per-call program check of the v2 kernel
    effects: list = field(default_factory=list)  # (name, ms saved) per next step, in order
    precision: str = ""
    io_cycles: int = 0  # design with the arena on chip: the host's input in and the output out

    @property
    def board(self) -> Target:  # the old attribute name
        return self.target

    @property
    def clock_mhz(self) -> float:
        return self.target.npu.clock_mhz

    @property
    def macs(self) -> int:
        return sum(layer_macs(L) for L in self.layers)

    @property
    def cycles(self) -> list:
        return [c.cycles for c in self.design]

    @property
    def total_cycles(self) -> int:
        return sum(self.cycles) + self.io_cycles

    @property
    def kernel_cycles(self) -> int:
        return sum(c.cycles for c in self.kernel) + self.validate_cycles

    @property
    def latency_ms(self) -> float:
        """The v2 design."""
        return self.total_cycles / (self.clock_mhz * 1e3)

    @property
    def kernel_latency_ms(self) -> float:
        return self.kernel_cycles / (self.clock_mhz * 1e3)

    def v1_clock_mhz(self) -> float:
        b = BOARDS.get(self.target.board or "")
        return b.clock_mhz if b else self.clock_mhz

    @property
    def v1_as_coded_ms(self) -> float:
        return sum(c.cycles + c.validate_cycles for c in self.v1) / (self.v1_clock_mhz() * 1e3)

    @property
    def v1_idealised_ms(self) -> float:
        b = BOARDS.get(self.target.board or "") or replace(BOARDS["kv260"], clock_mhz=self.clock_mhz)
        return sum(v1_idealised_cycles(L, b) for L in self.layers) / (b.clock_mhz * 1e3)

    @property
    def v1_weight_bytes(self) -> int:
        return sum(c.weight_bytes for c in self.v1)

    def ddr_bytes(self, design: bool = True) -> int:
        costs = self.design if design else self.kernel
        io = 4 * (math.prod(self.layers[0].in_shape) + math.prod(self.layers[-1].out_shape)) \
            if design and self.io_cycles else 0
        return sum(c.ddr_bytes for c in costs) + io

    def by_op(self, design: bool = True) -> dict:
        out: dict[str, list] = {}
        for L, c in zip(self.layers, self.design if design else self.kernel):
            e = out.setdefault(L.op, [0, 0])
            e[0] += 1
            e[1] += c.cycles
        return out


def estimate_layers(layers: list[Layer], target: str | Target | Board, output_offset: int | None = None,
                    precision: str = "", arena_words: int | None = None) -> Estimate:
    if isinstance(target, Board):
        target = get_target(target.name)
    tgt = get_target(target) if isinstance(target, str) else target
    kvar, dvar = kernel_variant(tgt), design_variant(tgt)
    q_in, q_out = _quantized_tensors(layers, output_offset)
    total_w = sum(weight_bytes(L) for L in layers if L.op == "CONV2D")
    resident = dvar.weights_resident and total_w <= tgt.npu.weights_resident_bytes
    chip_arena = (dvar.arena_on_chip and arena_words is not None
                  and 4 * arena_words <= tgt.npu.arena_on_chip_bytes)

    def cost(L, i, var, quant, resident_w, on_chip):
        if L.op == "CONV2D":
            return v2_conv(L, tgt, var, quant and i in q_in, quant and i in q_out, resident_w, on_chip)
        return v2_vector_op(L, tgt, var, on_chip)

    kernel = [cost(L, i, kvar, False, False, False) for i, L in enumerate(layers)]
    design = [cost(L, i, dvar, True, resident, chip_arena) for i, L in enumerate(layers)]
    io_cycles = 0
    if chip_arena:  # the host's input in and the output back out through the ports
        io = 4 * (math.prod(layers[0].in_shape) + math.prod(layers[-1].out_shape))
        io_cycles = int(io / _ddr_bytes_per_cycle(tgt.npu)) + 2 * V2_INSN_OVERHEAD
    validate = sum(V2_VALIDATE_PER_INSN + (math.ceil(weight_blocks(L) / 16) + 1 if L.op == "CONV2D" else 0)
                   for L in layers)
    est = Estimate(tgt, layers, kernel, design, [v1_as_coded(L) for L in layers], validate, precision=precision,
                   io_cycles=io_cycles)
    # the next steps one at a time, in the order docs/hardware.md proposes them
    clock = tgt.npu.clock_mhz * 1e3
    steps = [("validate once, at load (no per-call exponent check)", replace(kvar, validate_per_call=False),
              False, False)]
    v = replace(kvar, validate_per_call=False, weight_ports=dvar.weight_ports, arena_ports=dvar.arena_ports,
                pooled_ports=True)
    steps.append((f"{dvar.weight_ports + dvar.arena_ports} memory ports, any stream on any port", v, False, False))
    steps.append(("activations stored quantized (conv-only tensors)", replace(v, quantized_storage=True),
                  True, False))
    if resident:
        steps.append(("weights resident in URAM across calls", replace(dvar, arena_on_chip=False), True, True))
    if chip_arena:
        steps.append(("arena in on-chip RAM (input in, output out)", dvar, True, resident))
    prev = est.kernel_cycles
    for name, var, quant, res in steps:
        chip = var.arena_on_chip and chip_arena
        cyc = sum(cost(L, i, var, quant, res, chip).cycles for i, L in enumerate(layers))
        if chip:
            cyc += io_cycles
        if var.validate_per_call:
            cyc += validate
        est.effects.append((name, (prev - cyc) / clock))
        prev = cyc
    return est


# ============================================================================================================
# resources


# The MAC array is built from PE lanes: one lane = one 16-lane chunk sum per cycle (16 MACs) + int->float32 +
# one float32 accumulate adder with interleaved accumulators (docs/hardware.md "PE lane (RTL)"). A bfp20 build
# has P x Kd lanes of 16 DSPs (one 12x16-bit product per DSP); a bfp16/bfp12 build P x Kd x 2 lanes of 8 DSPs
# (two 8-bit products per DSP48E2). The per-lane figures are Yosys counts of the RTL lanes when
# rtl/build/resources.json (or rtl/resources.json) exists, else these provisional ones.
PROVISIONAL_LANES = {
    "pe_lane_bfp20": {"dsp48e2": 16, "lut": 600, "ff": 550},
    "pe_lane_bfp16": {"dsp48e2": 8, "lut": 550, "ff": 450},
}
# Everything around the lanes (provisional, LUTs): quantizer (16 lanes), three m_axi masters, control and
# address generation, line-buffer read muxes, weight unpacking, pools and global pool (16 comparators, 4
# adders, a divider), the generic path's 16-lane MAC in fabric.
LUT_FIXED = {"quantizer": 1200, "axi_masters": 3000, "control_and_address": 4000, "line_buffer_muxes": 2000,
             "weight_unpack": 1000, "pools_gap": 3000, "generic_path": 3000}


def rtl_lane_figures() -> dict | None:
    """The RTL PE lanes' Yosys counts ({"path", "tool", "lanes": {name: {dsp48e2, lut, ff, ...}}}), if present."""
    for rel in ("rtl/resources.json", "rtl/build/resources.json"):
        path = REPO / rel
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        lanes = data.get("lanes") if isinstance(data, dict) else None
        if isinstance(lanes, dict) and all(k in lanes for k in PROVISIONAL_LANES):
            return {"path": rel, "tool": data.get("tool", ""), "lanes": lanes}
    return None


def resources(tgt: Target, precision: str | int = DEFAULT_PRECISION.label) -> dict:
    """DSP, URAM, BRAM36 and LUT of the v2 design built for one precision on a target."""
    c = tgt.npu
    prec = Precision[precision.upper()] if isinstance(precision, str) else Precision(precision)
    rtl = rtl_lane_figures()
    lanes_fig = rtl["lanes"] if rtl else PROVISIONAL_LANES
    source = (f"lanes: {rtl['tool'] or 'Yosys'} counts of the RTL PE lanes ({rtl['path']}); rest provisional"
              if rtl else "provisional per-lane figures (PROVISIONAL_LANES in brainwave/fpga/perf.py)")
    if prec == Precision.BFP20 or c.pack == 1:
        lane, n_lanes = lanes_fig["pe_lane_bfp20"], c.pixels * c.dsp_cols
    else:
        lane, n_lanes = lanes_fig["pe_lane_bfp16"], c.pixels * c.dsp_cols * c.pack
    dsp = n_lanes * int(lane["dsp48e2"])
    if c.pack == 1 and tgt.device.dsp_kind == "DSP48E1":
        dsp = c.pixels * c.dsp_cols * BLOCK
    uram_bytes = 32 * 1024  # a URAM used 64 bits wide: 4096 x 64
    lb_block_bits = BLOCK * 12 + 8
    if tgt.device.uram:
        # weight banks (two) + resident weights; the line buffer: P banks, a 200-bit block = 3 URAMs wide
        uram = (math.ceil(2 * c.wbuf_bytes / uram_bytes) + math.ceil(c.weights_resident_bytes / uram_bytes)
                + c.pixels * math.ceil(lb_block_bits / 72) * math.ceil(c.lb_blocks / c.pixels / 4096))
        bram_banks = 0
    else:
        uram = 0
        bram_banks = math.ceil(2 * c.wbuf_bytes / 4096) + math.ceil(c.lb_blocks * lb_block_bits / 36864)
    pool = 8 * math.ceil(c.pool_floats / BLOCK / 512)  # 16 floats wide = 8 BRAM36 at 72 bits
    arena_chip = math.ceil(c.arena_on_chip_bytes / 4096)
    bram = bram_banks + pool + arena_chip + 24  # + FIFOs, m_axi burst buffers, generic-path and GAP buffers
    lut = n_lanes * int(lane["lut"]) + sum(LUT_FIXED.values())
    return {"dsp": dsp, "uram": uram, "bram36": bram, "lut": int(lut), "lanes": n_lanes, "source": source,
            "device": {"dsp": tgt.device.dsp, "uram": tgt.device.uram, "bram36": tgt.device.bram36,
                       "lut": tgt.device.lut},
            "budget": None if tgt.budget is None else {"dsp": tgt.budget.dsp, "uram": tgt.budget.uram,
                                                       "bram36": tgt.budget.bram36, "lut": tgt.budget.lut}}


def within(res: dict, limits: dict | None) -> bool | None:
    if limits is None:
        return None
    return all(res[k] <= limits[k] for k in ("dsp", "uram", "bram36", "lut"))


# ============================================================================================================
# programs, models, output


def layers_from_program(program) -> list[Layer]:
    """The instructions of a compiled program (brainwave.npu.isa.Program, or its bytes) as layers."""
    from brainwave.npu.isa import Opcode, Program

    if isinstance(program, (bytes, bytearray)):
        header = struct.unpack_from("<16I", program)
        program = Program.from_bytes(program, bytes(header[4]))  # the estimate needs no weight values
    out = []
    for i, d in enumerate(program.instructions):
        op = Opcode(d.opcode).name if d.opcode in set(Opcode) else f"OP{d.opcode}"
        out.append(Layer(op, d.in_shape, d.out_shape, (d.kernel_h, d.kernel_w), (d.stride_h, d.stride_w),
                         (d.pad_top, d.pad_left, d.pad_bottom, d.pad_right), max(d.groups, 1),
                         d.precision or int(DEFAULT_PRECISION), name=d.name or f"insn{i}",
                         has_residual=d.has_residual, in_offset=d.in_offset, out_offset=d.out_offset,
                         residual_offset=d.residual_offset if d.has_residual else -1,
                         in2_offset=d.in2_offset if d.opcode == 2 else -1))
    return out


def _output_offset(program) -> int | None:
    if isinstance(program, (bytes, bytearray)):
        return struct.unpack_from("<16I", program)[9]
    return getattr(program, "output_offset", None)


def _arena_words(program) -> int | None:
    if isinstance(program, (bytes, bytearray)):
        return struct.unpack_from("<16I", program)[3]
    return getattr(program, "arena_words", None)


def estimate_program(program, target, precision: str = "") -> Estimate:
    return estimate_layers(layers_from_program(program), target, _output_offset(program), precision,
                           _arena_words(program))


def estimate_model(model, target: str | Target | Board, precision: str = DEFAULT_PRECISION.label) -> Estimate:
    """Estimate for a Keras featurizer, from the program the compiler makes of it."""
    from brainwave.npu.compiler import compile_keras

    return estimate_program(compile_keras(model, precision=precision), target, precision)


def _ms(cycles: float, est: Estimate) -> float:
    return cycles / (est.clock_mhz * 1e3)


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
        "validate_per_call_ms": round(_ms(est.validate_cycles, est), 3),
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
        "layers": [
            {"name": L.name, "op": L.op, "path": d.path, "in_shape": list(L.in_shape), "out_shape": list(L.out_shape),
             "macs": d.macs, "bands": d.bands, "k_tiles": d.tiles, "k": d.k, "steps": d.steps,
             "interleave": d.interleave, "units": d.units, "ii": 1 if d.path in ("dense", "depthwise") else None,
             "compute_cycles": d.compute_cycles, "cycles": d.cycles, "ms": round(_ms(d.cycles, est), 4),
             "bound": d.bound, "weight_bytes": d.weight_bytes, "act_read_bytes": d.act_read_bytes,
             "act_write_bytes": d.act_write_bytes, "ms_v2_kernel": round(_ms(k.cycles, est), 4),
             "bound_v2_kernel": k.bound, "ddr_bytes_v2_kernel": k.ddr_bytes}
            for L, d, k in zip(est.layers, est.design, est.kernel)
        ],
        "model": {"fill_cycles_per_band": V2_FILL, "control_cycles_per_instruction": V2_INSN_OVERHEAD,
                  "ddr_gbps": t.npu.ddr_gbps, "ddr_efficiency": t.npu.ddr_efficiency,
                  "port_bytes_per_cycle": t.npu.port_bits // 8, "pixels": t.npu.pixels, "dsp_cols": t.npu.dsp_cols,
                  "interleave": [t.npu.adder_latency, t.npu.interleave], "lb_blocks": t.npu.lb_blocks,
                  "weight_bank_bytes": t.npu.wbuf_bytes},
        "anchors": [{"system": who, "workload": what, "latency": lat} for who, what, lat in ANCHORS],
    }


def format_estimate(name: str, est: Estimate, per_layer: bool = False) -> str:
    t = est.target
    c = t.npu
    res = resources(t, est.precision or DEFAULT_PRECISION.label)
    v1_clock = est.v1_clock_mhz()
    lines = [
        f"{name} on {t.name} ({t.device.part}): {ESTIMATE_NOTE}",
        f"  {len(est.layers)} instructions, {est.macs / 1e9:.2f} GMAC; v2 engine P={c.pixels} x K={c.dsp_cols}"
        f" (bfp20) / {c.k_max} (bfp16, bfp12) x 16 lanes, L={c.interleave}, {c.clock_mhz:g} MHz",
        f"  {'v1 kernel, idealised (old model: one block per cycle)':<58} {est.v1_idealised_ms:10.1f} ms"
        f"  @ {v1_clock:g} MHz",
        f"  {'v1 kernel, as coded (port requests counted)':<58} {est.v1_as_coded_ms:10.1f} ms"
        f"  weights moved {est.v1_weight_bytes / 1e9:.2f} GB",
        f"  {'v2 kernel, this interface (hls/src/npu_kernel.cpp)':<58} {est.kernel_latency_ms:10.2f} ms"
        f"  DDR {est.ddr_bytes(False) / 1e6:.1f} MB, incl. validate_per_call {_ms(est.validate_cycles, est):.2f} ms",
    ]
    for n, s in est.effects:
        lines.append(f"    next step: {n:<52} -{s:7.2f} ms")
    lines.append(f"  {'v2 design (docs/hardware.md)':<58} {est.latency_ms:10.2f} ms"
                 f"  DDR {est.ddr_bytes(True) / 1e6:.1f} MB")
    budget = res["budget"]
    lines.append(f"  resources (v2 design, {res['lanes']} PE lanes): {res['dsp']} DSP, {res['uram']} URAM, {res['bram36']} BRAM36, "
                 f"{res['lut'] / 1e3:.0f}K LUT of {t.device.dsp} / {t.device.uram} / {t.device.bram36} / "
                 f"{t.device.lut / 1e3:.0f}K" + (f"; budget {budget['dsp']} / {budget['uram']} / {budget['bram36']}"
                                                f" / {budget['lut'] / 1e3:.0f}K"
                                                + (" (within)" if within(res, budget) else " (OVER BUDGET)")
                                                if budget else ""))
    lines.append(f"    ({res['source']})")
    for op, (n, cyc) in sorted(est.by_op().items(), key=lambda kv: -kv[1][1]):
        lines.append(f"  {op:<15} x{n:<4} {cyc / 1e6:10.3f} M cycles  {_ms(cyc, est):9.3f} ms (v2 design)")
    if per_layer:
        lines.append(f"  per layer (v2 design | v2 kernel): {'path':<9} {'bands':>5} {'tiles':>5} {'K':>3} "
                     f"{'steps':>5} {'ms':>8} bound    {'ms':>8} bound")
        for L, d, k in zip(est.layers, est.design, est.kernel):
            lines.append(f"    {(L.name or L.op)[:34]:<34} {d.path:<9} {d.bands:>5} {d.tiles:>5} {d.k:>3} {d.steps:>5} "
                         f"{_ms(d.cycles, est):8.3f} {d.bound:<8} {_ms(k.cycles, est):8.3f} {k.bound}")
    lines.append("  published batch-1 figures (other hardware and numerics, for scale):")
    for who, what, lat in ANCHORS:
        lines.append(f"    {lat:>9}  {what}: {who}")
    return "\n".join(lines)


def add_estimate_arguments(parser) -> None:
    """Arguments for `brainwave models --estimate BOARD`."""
    parser.add_argument("--estimate", metavar="BOARD", choices=sorted(TARGETS),
                        help="print the NPU latency ESTIMATE for BOARD (" + ", ".join(sorted(TARGETS)) + ")")
    parser.add_argument("--precision", choices=Precision.labels(), default=None,
                        help="NPU precision for --estimate (default: every precision)")
    parser.add_argument("--per-layer", action="store_true", help="with --estimate: one line per layer")
    parser.add_argument("--json", action="store_true", help="with --estimate: print JSON (one object per network "
                        "and precision)")


def print_estimate(name: str, model, board: str, precision: str = DEFAULT_PRECISION.label, per_layer: bool = False,
                   file=None) -> Estimate:
    est = estimate_model(model, board, precision)
    print(format_estimate(f"{name} ({precision})", est, per_layer), file=file)
    return est


def _precisions(arg) -> list[str]:
    return [arg] if arg else [DEFAULT_PRECISION.label] + [p.label for p in Precision if p != DEFAULT_PRECISION]


def run_estimate(args, console) -> int:
    """`brainwave models --estimate BOARD [--json]`: the estimate for every catalog network and precision."""
    from brainwave.models.catalog import catalog_entries

    records = []
    for spec in catalog_entries():
        with console.status(f"building {spec.model_ref} for the estimate..."):
            model = _catalog_model(spec.model_ref)
        for prec in _precisions(getattr(args, "precision", None)):
            if getattr(args, "json", False):
                with console.status(f"estimating {spec.model_ref} {prec}..."):
                    records.append(estimate_record(spec.model_ref, estimate_model(model, args.estimate, prec)))
            else:
                print_estimate(spec.model_ref, model, args.estimate, prec, getattr(args, "per_layer", False))
    if getattr(args, "json", False):
        print(json.dumps(records, indent=1))
    return 0


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="NPU latency estimate for the catalog featurizers (an ESTIMATE)")
    ap.add_argument("board", choices=sorted(TARGETS))
    ap.add_argument("--model", choices=("resnet50", "efficientnet-lite0", "all"), default="all")
    ap.add_argument("--precision", choices=Precision.labels(), default=None)
    ap.add_argument("--per-layer", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    records = []
    for name in (("resnet50", "efficientnet-lite0") if args.model == "all" else (args.model,)):
        model = _catalog_model(name)
        for prec in _precisions(args.precision):
            if args.json:
                records.append(estimate_record(name, estimate_model(model, args.board, prec)))
            else:
                print_estimate(name, model, args.board, prec, args.per_layer)
    if args.json:
        print(json.dumps(records, indent=1))
    return 0


def _catalog_model(name: str):
    from brainwave.models.catalog import build_featurizer, resolve_featurizer

    return build_featurizer(resolve_featurizer(name))


if __name__ == "__main__":
    raise SystemExit(main())
