"""What one instruction costs on the v2 engine (hls/src/npu_kernel.cpp), behind a given interface (`Variant`).

A CONV2D runs on the MAC engine, band by band: per band the flattened STEPS loop runs n_units * steps * L
iterations at II=1 plus one pipeline fill per K-tile and unpacks one weight beat per iteration (the next tile
into the idle bank; what does not fit is drained serially), the reader moves input rows and residuals through
the arena port, the vector unit handles one pixel every VEC_II cycles, the writer one port beat per cycle, all
sharing the DRAM bandwidth; the band takes the longest of them. Plus a per-instruction control overhead and the
exposed prologue (first tile, first rows). Every other opcode runs on the vector unit, one port beat of floats
per iteration. Which unit runs an opcode is the op table's (brainwave.npu.ops.OPS[...].unit); `v2_cost`
dispatches on it through `UNIT_COSTS`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from brainwave.npu.isa import Instruction, Opcode
from brainwave.npu.numerics import BLOCK, Precision
from brainwave.npu.ops import OPS, Unit, instruction_macs, instruction_unit

from ..boards import NpuConfig, Target, npu_ports_onto
from .plan import ConvPlan, band_input_rows, plan_conv
from .v1 import v1_as_coded
from .window import tap_count, touched_rows

# Depth of the STEPS loop's pipeline, paid once per (band, K-tile): line-buffer read 2, 16-DSP cascade with
# input/output registers 18, packed split 1, int->float32 3, exponent add 1, float32 add (fabric) 8, write 1.
V2_FILL = 34
V2_INSN_OVERHEAD = 200  # per instruction: 32 program words, decode, plan loop, dataflow start and drain
ONCHIP_BYTES_PER_CYCLE = 1024  # an on-chip arena (BRAM, hundreds of 72-bit ports): not a bound here


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
    """The kernel's interface is the same on every target: its m_axi masters onto the weights and onto the arena
    (hls/npu_ip.json: two each), each carrying its own streams; the program checked once, when the driver makes
    it resident (mode VALIDATE), and every request a TRUSTED_RUN."""
    return Variant("v2 kernel (this interface)", validate_per_call=False, weight_ports=npu_ports_onto("weights"),
                   arena_ports=npu_ports_onto("arena"))


def design_variant(tgt: Target) -> Variant:
    c, k = tgt.npu, kernel_variant(tgt)
    return Variant("v2 design (next-step interface)", validate_per_call=False, quantized_storage=True,
                   weight_ports=max(c.design_weight_ports, k.weight_ports),
                   arena_ports=max(c.design_arena_ports, k.arena_ports), pooled_ports=True,
                   weights_resident=c.weights_resident_bytes > 0, arena_on_chip=c.arena_on_chip_bytes > 0)


@dataclass(frozen=True)
class Placement:
    """Where one instruction's data lives in a run: which of its tensors are stored quantized, and what the
    design keeps on chip (the vector unit reads only `arena_on_chip`)."""

    in_quantized: bool = False
    out_quantized: bool = False
    weights_on_chip: bool = False
    arena_on_chip: bool = False


@dataclass
class LayerCost:
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


CostFn = Callable[[Instruction, Target, Variant, Placement], LayerCost]


def v2_cost(d: Instruction, tgt: Target, var: Variant, where: Placement = Placement()) -> LayerCost:
    return UNIT_COSTS[instruction_unit(d)](d, tgt, var, where)


def ddr_bytes_per_cycle(c: NpuConfig) -> float:
    return c.ddr_gbps * 1e9 * c.ddr_efficiency / (c.clock_mhz * 1e6)


def _stored_bytes_per_value(prec: Precision) -> float:
    """A quantized activation as stored: bfp20 mantissas in 16-bit lanes, bfp16 8-bit, bfp12 4-bit; one
    exponent byte per 16 values."""
    return {Precision.BFP20: 2.0, Precision.BFP16: 1.0, Precision.BFP12: 0.5}[prec] + 1 / 16


def _run_beats(first: int, n: int) -> int:
    """128-bit beats of an aligned run covering bytes [first, first + n)."""
    if n <= 0:
        return 0
    return (first + n + 15) // 16 - first // 16


# ============================================================================================================
# the MAC engine


def v2_conv(d: Instruction, tgt: Target, var: Variant, where: Placement = Placement()) -> LayerCost:
    p = plan_conv(d, tgt.npu)
    if p.path == "generic":  # the kernel's fallback runs the v1 loops
        v1 = v1_as_coded(d)
        return LayerCost("generic", v1.cycles + V2_INSN_OVERHEAD, v1.cycles, v1.weight_bytes, v1.arena_bytes, 0,
                         "generic", macs=instruction_macs(d))
    return _ConvRun(d, tgt.npu, var, where, p).cost()


def _tile_width(d: Instruction, p: ConvPlan, t: int) -> int:
    """Output channels K-tile t computes (the last tile of a group may be narrower)."""
    if p.path == "depthwise":
        return min(p.k, d.out_c - t * p.k)
    return min(p.k, d.out_c // d.groups - (t % p.kt_per_group) * p.k)


def _tile_load(d: Instruction, p: ConvPlan, bb: int, t: int) -> tuple[int, int]:
    """(beats, bytes) of K-tile t's weights: mantissas, exponents and biases. The blob's offsets are not known
    to the model: mantissas start 16-aligned, the other two runs are taken as one beat off on average."""
    if p.path == "depthwise":
        blk0, nblk, kc = 0, p.taps * p.nb_in, d.out_c
    else:
        g, j = divmod(t, p.kt_per_group)
        o0 = g * (d.out_c // d.groups) + j * p.k
        kc = _tile_width(d, p, t)
        blk0, nblk = o0 * p.steps, kc * p.steps
    mant, exps, bias = nblk * bb, nblk, 4 * kc
    beats = _run_beats(blk0 * bb, mant) + math.ceil(exps / 16) + 1 + math.ceil(bias / 16) + 1
    return beats, mant + exps + bias


@dataclass
class _WeightStream:
    """K-tile loads in the kernel's order: load 0 before the first band (exposed), then each load into the idle
    bank while the tile before it computes."""

    loads: list[tuple[int, int]]  # (beats, bytes) per load of a band
    total: int  # loads over the whole layer
    resident: bool  # one load serves the whole layer
    per_band: bool  # depthwise: one load serves every K-tile of a band
    computing: int = 0  # the load the engine computes from
    started: int = 1

    def next_load(self, b: int, t: int) -> tuple[int, int]:
        """What the idle bank takes while (band b, tile t) computes: the next load once its bank is free."""
        if not self.resident and (not self.per_band or t == 0) and (b, t) != (0, 0):
            self.computing += 1
        if self.started < self.total and self.started == self.computing + 1:
            load = self.loads[self.started % len(self.loads)]
            self.started += 1
            return load
        return 0, 0


@dataclass
class _Band:
    bound: str  # the part that takes longest
    cycles: float
    fetch_bytes: int  # weights fetched during the band
    read_bytes: float
    write_bytes: float
    iterations: int  # the STEPS loop's iterations per K-tile


class _ConvRun:
    """One CONV2D on the engine, band by band. The state carried from band to band: the weight loads in flight
    and the next band's input rows still to take. Cycles are summed band by band in this order (float sums:
    reordering them could move a printed figure in its last digit)."""

    def __init__(self, d: Instruction, c: NpuConfig, var: Variant, where: Placement, p: ConvPlan):
        self.d, self.c, self.var, self.where, self.p = d, c, var, where, p
        prec = Precision(d.precision)
        self.port = c.port_bits / 8
        self.read_bw = ONCHIP_BYTES_PER_CYCLE if where.arena_on_chip else self.port * var.arena_ports
        self.fetch_bw = self.port * var.weight_ports
        self.pooled = var.weight_ports + var.arena_ports if var.pooled_ports else 0
        self.ddr = ddr_bytes_per_cycle(c)
        self.pl = c.pixels * p.l_eff  # pixels per work unit
        self.out_value = _stored_bytes_per_value(prec) if where.out_quantized else 4.0
        if where.in_quantized:
            self.row_bytes = d.in_w * p.nb_in * BLOCK * _stored_bytes_per_value(prec)
        else:
            self.row_bytes = d.in_w * d.in_c * 4.0
        self.row_blocks = d.in_w * p.nb_in
        self.touched = touched_rows(d)
        self.widths = [_tile_width(d, p, t) for t in range(p.n_kt)]
        # beats per iteration the idle bank takes: one per weight port (the design: any of its pooled ports)
        self.unpack_rate = var.weight_ports + (var.arena_ports if var.pooled_ports else 0)
        self.weights = self._weight_stream(prec.block_bytes)
        self.loaded = 0  # input rows [0, loaded) belong to bands already started
        self.pending_next = 0.0  # line-buffer blocks of the next band's rows still to take

    def _weight_stream(self, bb: int) -> _WeightStream:
        d, p = self.d, self.p
        per_band = p.path == "depthwise"
        loads = [(0, 0) if self.where.weights_on_chip else _tile_load(d, p, bb, t)
                 for t in range(1 if per_band else p.n_kt)]
        total = 1 if p.resident else p.n_bands * len(loads)
        return _WeightStream(loads, total, p.resident, per_band)

    def cost(self) -> LayerCost:
        d, p = self.d, self.p
        beats0, bytes0 = self.weights.loads[0]
        cycles = V2_INSN_OVERHEAD
        cycles += max(beats0 / self.unpack_rate, bytes0 / self.fetch_bw)  # the first tile, exposed
        w_bytes, rd_total, wr_total, compute = bytes0, 0, 0, 0
        bounds: dict[str, int] = {}
        for b in range(p.n_bands):
            band = self._band(b)
            bounds[band.bound] = bounds.get(band.bound, 0) + 1
            cycles += band.cycles
            compute += band.iterations * p.n_kt
            w_bytes += band.fetch_bytes
            rd_total += band.read_bytes
            wr_total += band.write_bytes
        cycles += V2_FILL  # drain of the last unit through the vector unit and writer
        if self.where.weights_on_chip:
            w_bytes = 0
        if self.where.arena_on_chip:
            rd_total = wr_total = 0
        units = sum(math.ceil(self._band_pixels(b) / self.pl) for b in range(p.n_bands))
        return LayerCost(p.path, int(math.ceil(cycles)), compute, int(w_bytes), int(rd_total), int(wr_total),
                         max(bounds, key=bounds.get) if bounds else "compute", interleave=p.l_eff, units=units,
                         tiles=p.n_kt, bands=p.n_bands, k=p.k, steps=p.steps, macs=instruction_macs(d))

    def _band_pixels(self, b: int) -> int:
        oy0 = b * self.p.band_rows
        return (min(oy0 + self.p.band_rows, self.d.out_h) - oy0) * self.d.out_w

    def _new_rows(self, b: int) -> int:
        """Touched input rows band b's windows add to those of the bands before it."""
        lo, hi = band_input_rows(self.d, self.p, b)
        lo = max(lo, self.loaded)
        self.loaded = max(self.loaded, hi)
        return sum(self.touched[lo:hi]) if hi > lo else 0

    def _band(self, b: int) -> _Band:
        d, p = self.d, self.p
        pix = self._band_pixels(b)
        steps_total = p.steps + 1 + (1 if d.has_residual else 0)  # + bias, + residual (the vector unit)
        n_iter = math.ceil(pix / self.pl) * steps_total * p.l_eff
        # the first band reads its rows itself; a later band's came in with the band before (its look-ahead)
        rows_read = self._new_rows(0) if b == 0 else 0
        pending_cur = rows_read * self.row_blocks if b == 0 else self.pending_next
        next_blocks = (self._new_rows(b + 1) if b + 1 < p.n_bands else 0) * self.row_blocks
        self.pending_next = next_blocks
        engine, fetch_bytes = self._engine(b, n_iter, pending_cur)
        rd = (rows_read * self.row_bytes + (next_blocks / self.row_blocks if self.row_blocks else 0) * self.row_bytes
              + (pix * d.out_c * 4.0 if d.has_residual else 0.0))
        wr = pix * d.out_c * self.out_value
        parts = self._parts(engine, fetch_bytes, rd, wr, pix)
        worst = max(parts, key=parts.get)
        return _Band(worst, parts[worst], fetch_bytes, rd, wr, n_iter)

    def _engine(self, b: int, n_iter: int, pending_cur: float) -> tuple[float, int]:
        """The STEPS loop over the band's K-tiles: per tile its n_iter iterations, stretched when taking this
        band's rows and unpacking the next tile's beats need more; free iterations take the next band's rows."""
        absorb = self.c.absorb_blocks  # line-buffer blocks an iteration can take
        engine = float(V2_FILL)  # one pipeline fill per band
        fetch_bytes = 0
        for t in range(self.p.n_kt):
            beats, nbytes = self.weights.next_load(b, t)
            fetch_bytes += nbytes
            unpack_iters = math.ceil(beats / self.unpack_rate)
            cur_iters = math.ceil(pending_cur / absorb)
            pending_cur = 0
            n_t = max(n_iter, cur_iters + unpack_iters)
            free = n_t - cur_iters - unpack_iters
            if self.p.lookahead and self.pending_next:
                self.pending_next = max(0.0, self.pending_next - free * absorb)
            engine += n_t
        return engine, fetch_bytes

    def _parts(self, engine: float, fetch_bytes: int, rd: float, wr: float, pix: int) -> dict[str, float]:
        """Cycles each of the band's concurrent parts needs; the band takes the longest."""
        port, pooled, on_chip = self.port, self.pooled, self.where.arena_on_chip
        reader = rd / self.read_bw
        writer = sum(pix * math.ceil(kc * self.out_value / port) for kc in self.widths) / self.var.arena_ports
        fetch = fetch_bytes / self.fetch_bw
        dram = (fetch_bytes + (0 if on_chip else rd + wr)) / self.ddr
        if pooled and not on_chip:  # any stream on any port: reads and writes share the pool
            reader = (rd + fetch_bytes) / (port * pooled)
            writer = wr / (port * pooled)
            fetch = 0.0
        elif pooled:
            fetch = fetch_bytes / (port * pooled)
        return {"compute": engine, "reader": reader, "writer": writer, "fetch": fetch, "ddr": dram}


# ============================================================================================================
# the vector unit

_STREAMING = (Opcode.PAD, Opcode.ACTIVATION, Opcode.ADD, Opcode.CONCAT)  # elementwise: an on-chip arena feeds them wider


def v2_vector_op(d: Instruction, tgt: Target, var: Variant, where: Placement = Placement()) -> LayerCost:
    """ADD, ACTIVATION, PAD, CONCAT, pools: a port beat of floats per port per iteration (the kernel: its arena
    ports; the design: every pooled port), float32 in and out."""
    c = tgt.npu
    on_chip = where.arena_on_chip
    ports = var.arena_ports + var.weight_ports if var.pooled_ports else var.arena_ports
    vw = c.port_bits // 32 * ports
    iters, rd, wr = _vector_work(d, c, vw)
    dram = 0 if on_chip else (rd + wr) / ddr_bytes_per_cycle(c)
    if on_chip and d.op in _STREAMING:
        iters = iters / max(1, ONCHIP_BYTES_PER_CYCLE // (4 * vw))
    cycles = V2_INSN_OVERHEAD + max(iters, dram) + V2_FILL
    return LayerCost("vector", int(math.ceil(cycles)), iters, 0, 0 if on_chip else rd, 0 if on_chip else wr,
                     "vector" if iters >= dram else "ddr")


def _vector_work(d: Instruction, c: NpuConfig, vw: int) -> tuple[float, int, int]:
    """(iterations, bytes read, bytes written) of a vector-unit instruction moving vw floats per port cycle."""
    n_in, n_out = d.in_h * d.in_w * d.in_c, d.out_h * d.out_w * d.out_c
    match d.op:
        case Opcode.ADD:  # two operands: twice the read beats, so vw / 2 sums per cycle
            return math.ceil(n_in / vw) * 2, 8 * n_in, 4 * n_out
        case Opcode.ACTIVATION:
            return math.ceil(n_in / vw), 4 * n_in, 4 * n_out
        case Opcode.PAD:
            return d.out_h * d.out_w * math.ceil(d.out_c / vw), 4 * n_in, 4 * n_out
        case Opcode.MAXPOOL | Opcode.AVGPOOL:
            iters, rd = _pool_reads(d, c, vw)
            return iters, rd, 4 * n_out
        case Opcode.GLOBAL_AVGPOOL:
            return d.in_h * d.in_w * math.ceil(d.in_c / vw) + 2 * d.in_c, 4 * n_in, 4 * d.in_c
        case Opcode.CONCAT:  # a copy: per pixel the first operand's beats, then the second's
            n_in2 = d.in_h * d.in_w * (d.out_c - d.in_c)
            return (d.out_h * d.out_w * (math.ceil(d.in_c / vw) + math.ceil((d.out_c - d.in_c) / vw)),
                    4 * (n_in + n_in2), 4 * n_out)
    raise ValueError(f"no vector-unit cost for opcode {d.opcode}")


def _pool_reads(d: Instruction, c: NpuConfig, vw: int) -> tuple[float, int]:
    """(iterations, bytes read) of a pool: with the row cache each touched row is read once and pool_lanes
    channels combine per cycle; without it (rows too long) every window cell is read again."""
    cells = tap_count(d)
    row_floats = d.in_w * d.in_c
    cap = c.pool_floats // row_floats if row_floats else 0
    if row_floats and cap >= min(d.kernel_h, d.in_h):
        rd = 4 * sum(touched_rows(d)) * row_floats
        return max(cells * math.ceil(d.in_c / c.pool_lanes), rd / (4 * vw)), rd
    return (cells + d.out_h * d.out_w) * math.ceil(d.out_c / vw), 4 * cells * d.out_c


UNIT_COSTS: dict[Unit, CostFn] = {"mac": v2_conv, "vector": v2_vector_op}
assert {op.unit for op in OPS.values()} <= set(UNIT_COSTS), "a unit of the op table without a cost"
