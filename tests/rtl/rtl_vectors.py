"""Chunk sequences for the RTL PE lanes, with the expected float32 sums taken from the NPU's own executor.

A PE lane computes, for one output element of a CONV2D, `acc = +0.0; acc = acc + partial` over the chunks in
order (docs/numerics.md). To get the NPU's value of `acc` for a sequence, the sequence is made the dot
product of one output element of a real CONV2D program, run with zero bias, no residual and no activation:
its output is `acc + 0.0 = acc` (acc is never -0.0). Chunks are read back from that program the way the
hardware would see them: activation blocks through `numerics.quantize_blocks`, weight blocks unpacked from
the program's weights blob.

A *job* is two sequences p and q of equal length that share their weight blocks (two output pixels of one
output channel), the unit pe_lane_bfp16 computes at once; pe_lane_bfp20 runs p and q in separate slots.
`VectorSet.write` produces the file rtl/tb/pe_lane_tb.cpp reads.
"""
from __future__ import annotations

import functools
import re
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainwave.npu.executor import Executor, create_executor
from brainwave.npu.isa import Instruction, Opcode, Program
from brainwave.npu.numerics import BLOCK, EXP_MIN, Precision, pack_mantissas, quantize_blocks, unpack_mantissas

F32 = np.float32
RTL = Path(__file__).resolve().parents[2] / "rtl"


@functools.cache
def _executor() -> Executor:
    return create_executor("native")


def run_npu(program: Program, x: np.ndarray) -> np.ndarray:
    """The NPU's output for `program` on `x`: the one place these tests ask an executor for expected values
    (the native executor; tests/npu/test_executors.py shows that every executor computes the same bytes)."""
    executor = _executor()
    try:
        return executor.run(program, x)
    finally:
        executor.unload(program)  # some programs here hold hundreds of MB of weights


def accumulator_program(program: Program) -> Program:
    """`program` (one CONV2D) with its bias zeroed, no residual and no activation: its output is `acc`."""
    (d,) = program.instructions
    assert d.opcode == Opcode.CONV2D
    weights = bytearray(program.weights)
    weights[d.bias_offset:d.bias_offset + 4 * d.out_c] = bytes(4 * d.out_c)
    insn = Instruction(**{**vars(d), "activation": 0, "has_residual": 0, "residual_offset": 0})
    return Program([insn], bytes(weights), program.arena_words, program.input_offset, program.input_shape,
                   program.output_offset, program.output_shape)


def conv_program(precision: Precision, in_shape: tuple[int, int, int], w_mant: np.ndarray, w_exp: np.ndarray,
                 *, out_c: int, kernel: tuple[int, int] = (1, 1)) -> Program:
    """A CONV2D (stride 1, no padding, groups 1, zero bias, no activation) whose weight blocks are given as
    mantissas (out_c * KH * KW * nb, 16) and exponents, in the blob's block order (isa.md, "Weights blob")."""
    h, w, c = in_shape
    kh, kw = kernel
    out_shape = (h - kh + 1, w - kw + 1, out_c)
    mant = pack_mantissas(w_mant, precision)
    exps = np.asarray(w_exp, dtype=np.int8).tobytes()
    bias_off = -(-(len(mant) + len(exps)) // 4) * 4
    weights = mant + exps + bytes(bias_off - len(mant) - len(exps)) + bytes(4 * out_c)
    n_in = h * w * c
    out_off = -(-n_in // BLOCK) * BLOCK
    insn = Instruction(opcode=Opcode.CONV2D, precision=int(precision), in_offset=0, in_h=h, in_w=w, in_c=c,
                       out_offset=out_off, out_h=out_shape[0], out_w=out_shape[1], out_c=out_c, kernel_h=kh,
                       kernel_w=kw, stride_h=1, stride_w=1, groups=1, weight_mant_offset=0,
                       weight_exp_offset=len(mant), bias_offset=bias_off)
    return Program([insn], weights, out_off + int(np.prod(out_shape)), 0, in_shape, out_off, out_shape)


def activation_blocks(x: np.ndarray, precision: Precision) -> tuple[np.ndarray, np.ndarray]:
    """What the MAC unit reads of an (H, W, C) input: mantissas (H, W, nb, 16) and exponents (H, W, nb)."""
    h, w, c = x.shape
    nb = -(-c // BLOCK)
    padded = np.zeros((h, w, nb * BLOCK), dtype=F32)
    padded[..., :c] = x
    return quantize_blocks(padded.reshape(h, w, nb, BLOCK), precision.mantissa_bits)


def weight_blocks(program: Program) -> tuple[np.ndarray, np.ndarray]:
    """The CONV2D's weight blocks as stored in the blob: mantissas (blocks, 16) and exponents (blocks,)."""
    (d,) = program.instructions
    n = d.weight_blocks
    mant = unpack_mantissas(memoryview(program.weights)[d.weight_mant_offset:], n, Precision(d.precision))
    exps = np.frombuffer(program.weights, dtype=np.int8, count=n, offset=d.weight_exp_offset)
    return mant, exps


@dataclass
class VectorSet:
    """Block tables, jobs and the expected results, in the layout of the test bench's vector file."""

    a_mant: list[np.ndarray] = field(default_factory=list)
    a_exp: list[np.ndarray] = field(default_factory=list)
    w_mant: list[np.ndarray] = field(default_factory=list)
    w_exp: list[np.ndarray] = field(default_factory=list)
    n_a: int = 0
    n_w: int = 0
    job_prec: list[np.ndarray] = field(default_factory=list)
    job_len: list[np.ndarray] = field(default_factory=list)
    chunks: list[np.ndarray] = field(default_factory=list)    # (n, 4) uint32: w, ap, aq, repeat
    expected: list[np.ndarray] = field(default_factory=list)  # (jobs, 2) uint32 bit patterns
    checked: list[np.ndarray] = field(default_factory=list)   # (jobs, 2) bool: False for filler sequences
    labels: list[tuple[str, int]] = field(default_factory=list)  # (source, jobs) in order, for messages

    def add_a(self, mant: np.ndarray, exp: np.ndarray) -> int:
        """Append activation blocks (n, 16) / (n,); returns the index of the first."""
        base = self.n_a
        self.a_mant.append(np.asarray(mant, dtype=np.int16).reshape(-1, BLOCK))
        self.a_exp.append(np.asarray(exp, dtype=np.int8).reshape(-1))
        self.n_a += self.a_exp[-1].size
        return base

    def add_w(self, mant: np.ndarray, exp: np.ndarray) -> int:
        base = self.n_w
        self.w_mant.append(np.asarray(mant, dtype=np.int16).reshape(-1, BLOCK))
        self.w_exp.append(np.asarray(exp, dtype=np.int8).reshape(-1))
        self.n_w += self.w_exp[-1].size
        return base

    def zero_block(self) -> int:
        """An all-zero activation block (E = -50): a pixel's chunk where its tap lies outside the input."""
        return self.add_a(np.zeros(BLOCK), np.array([EXP_MIN]))

    def add_jobs(self, label: str, precision: Precision, chunks: np.ndarray, expected: np.ndarray,
                 checked: np.ndarray | None = None) -> None:
        """Jobs of equal length: chunks (jobs, n, 3 or 4) block indices (w, ap, aq[, repeat]);
        expected (jobs, 2) float32 results of p and q."""
        chunks = np.asarray(chunks, dtype=np.int64)
        jobs, n = chunks.shape[:2]
        if chunks.shape[2] == 3:
            chunks = np.concatenate([chunks, np.ones((jobs, n, 1), dtype=np.int64)], axis=2)
        self.chunks.append(chunks.reshape(-1, 4).astype(np.uint32))
        self.job_len.append(np.full(jobs, n, dtype=np.uint32))
        self.job_prec.append(np.full(jobs, int(precision), dtype=np.uint32))
        self.expected.append(np.ascontiguousarray(expected, dtype=F32).view(np.uint32).reshape(jobs, 2))
        self.checked.append(np.ones((jobs, 2), dtype=bool) if checked is None else np.asarray(checked, dtype=bool))
        self.labels.append((label, jobs))

    @property
    def jobs(self) -> int:
        return sum(n for _, n in self.labels)

    def sequences_checked(self) -> int:
        return int(sum(c.sum() for c in self.checked))

    def write(self, path: Path) -> None:
        lengths = np.concatenate(self.job_len)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.uint32)
        jobs = np.stack([starts, lengths, np.concatenate(self.job_prec)], axis=1).astype("<u4")
        chunks = np.concatenate(self.chunks).astype("<u4")
        with open(path, "wb") as f:
            f.write(b"PELANE1\0")
            f.write(struct.pack("<4I", self.n_a, self.n_w, len(jobs), len(chunks)))
            for part in (self.a_mant, self.a_exp, self.w_mant, self.w_exp):
                f.write(np.concatenate(part).astype(part[0].dtype.newbyteorder("<")).tobytes())
            f.write(jobs.tobytes())
            f.write(chunks.tobytes())

    def mismatches(self, results: np.ndarray) -> list[str]:
        """Messages for every checked sequence whose result bits differ from the expected bits."""
        expected = np.concatenate(self.expected).reshape(-1)
        checked = np.concatenate(self.checked).reshape(-1)
        bad = np.flatnonzero((results != expected) & checked)
        owners = np.repeat(np.arange(len(self.labels)), [2 * n for _, n in self.labels])
        first = np.concatenate([[0], np.cumsum([2 * n for _, n in self.labels])])
        out = []
        for i in bad[:20]:
            label = self.labels[owners[i]][0]
            job, pixel = divmod(int(i - first[owners[i]]), 2)
            got, want = results[i], expected[i]
            out.append(f"{label} job {job} {'pq'[pixel]}: lane 0x{got:08x} ({got.view(F32)!r}), "
                       f"NPU 0x{want:08x} ({want.view(F32)!r})")
        if bad.size > 20:
            out.append(f"... {bad.size} mismatches in all")
        return out


@dataclass
class BenchRun:
    results: np.ndarray  # uint32 float32 bit patterns, p then q for every job
    latency: int         # cycles from a sequence's last chunk to its result, as the bench measured it
    cycles: int


def run_bench(bench: Path, vs: VectorSet, workdir: Path, *, bubbles: int = 0) -> BenchRun:
    """Stream `vs` through a lane's test bench (rtl/tb/pe_lane_tb.cpp); `bubbles` percent of slot turns idle."""
    vectors, results = workdir / "vectors.bin", workdir / "results.bin"
    vs.write(vectors)
    proc = subprocess.run([str(bench), str(vectors), str(results), "--bubbles", str(bubbles)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{bench.name} failed: {proc.stdout}{proc.stderr}"
    stats = dict(re.findall(r"(\w+)=(-?\d+)", proc.stdout))
    out = np.fromfile(results, dtype=np.uint32)
    assert out.size == 2 * vs.jobs
    return BenchRun(out, int(stats["latency"]), int(stats["cycles"]))


def documented_timing(lane: str) -> dict[str, int]:
    """LATENCY and INTERLEAVE as rtl/pe_lane_<lane>.sv states them (LATENCY is the sum of its stages')."""
    text = (RTL / f"pe_lane_{lane}.sv").read_text()
    params = {name: int(value) for name, value in re.findall(r"localparam int (\w+) = (\d+);", text)}
    return {"latency": params["MAC_LATENCY"] + params["CONVERT_LATENCY"] + params["ACC_LATENCY"],
            "interleave": params["INTERLEAVE"]}


# ---- jobs from a dense program: output pixels (2i, 2i+1) of every channel -----------------------------------

def add_dense_program(vs: VectorSet, label: str, precision: Precision, x: np.ndarray, w_mant: np.ndarray,
                      w_exp: np.ndarray, *, out_c: int, kernel: tuple[int, int] = (1, 1)) -> Program:
    """Run a stride-1 unpadded CONV2D on the NPU and add its output elements as jobs: pixels are taken in pairs
    along the (single-row) output, so p and q share every weight block and have every tap inside the input.
    Chunk order is the spec's: taps row-major, then channel blocks."""
    program = conv_program(precision, x.shape, w_mant, w_exp, out_c=out_c, kernel=kernel)
    y = run_npu(program, x)
    am, ae = activation_blocks(x, precision)
    wm, we = weight_blocks(program)
    h, w, _ = x.shape
    nb = am.shape[2]
    kh, kw = kernel
    oh, ow = y.shape[:2]
    assert oh == 1 and ow % 2 == 0, "pairs are taken along one output row"
    a0 = vs.add_a(am.reshape(-1, BLOCK), ae.reshape(-1))
    w0 = vs.add_w(wm, we)
    # activation block of output pixel (0, ox) at tap (ky, kx), block b: input pixel (ky, ox + kx)
    ky, kx, b = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(nb), indexing="ij")
    ky, kx, b = ky.reshape(-1), kx.reshape(-1), b.reshape(-1)
    ox = np.arange(0, ow, 2)[:, None]
    ap = a0 + (ky * w + ox + kx) * nb + b                      # (pairs, chunks)
    aq = ap + nb                                               # the next pixel to the right
    o = np.arange(out_c)
    wb = w0 + ((o[:, None] * kh * kw + ky * kw + kx) * nb + b)  # (out_c, chunks)
    pairs = ap.shape[0]
    chunks = np.stack(np.broadcast_arrays(wb[None], ap[:, None], aq[:, None]), axis=-1)  # (pairs, out_c, n, 3)
    expected = np.stack([y[0, 0::2, :], y[0, 1::2, :]], axis=-1)                       # (pairs, out_c, 2)
    vs.add_jobs(label, precision, chunks.reshape(pairs * out_c, -1, 3), expected.reshape(-1, 2))
    return program


# ---- jobs from any CONV2D program (the HLS sweep's): every output element, chunks as the spec cuts them ----

def conv_chunks(d: Instruction, oy: int, ox: int, o: int) -> list[tuple[int, int, int, int, int, int]]:
    """The chunks of output element (oy, ox, o), in order: (tap, iy, ix, first channel, channels, weight
    block). iy/ix may lie outside the input: the caller decides what such a tap means."""
    cg = d.in_c // d.groups
    g = o // (d.out_c // d.groups)
    nb_w = -(-cg // BLOCK)
    out = []
    for ky in range(d.kernel_h):
        for kx in range(d.kernel_w):
            t = ky * d.kernel_w + kx
            iy, ix = oy * d.stride_h - d.pad_top + ky, ox * d.stride_w - d.pad_left + kx
            if d.is_depthwise:
                out.append((t, iy, ix, o, 1, t * -(-d.in_c // BLOCK) + o // BLOCK))
                continue
            base = g * cg
            c = base
            while c < base + cg:  # cut where either the activation or the weight block ends
                n = min(BLOCK - c % BLOCK, BLOCK - (c - base) % BLOCK, base + cg - c)
                out.append((t, iy, ix, c, n, (o * d.kernel_h * d.kernel_w + t) * nb_w + (c - base) // BLOCK))
                c += n
    return out


def add_conv_program(vs: VectorSet, label: str, program: Program, x_flat: np.ndarray) -> int:
    """Add every output element of a one-CONV2D program (as the HLS sweep packs them: the input is the first
    in_h*in_w*in_c values of a flat tensor) as jobs; returns how many sequences are checked.

    Each chunk becomes one activation block holding the chunk's channels in the weight block's lanes (so lane l
    multiplies the right pair; the other lanes are zero) and the weight block itself. Pixels of one channel
    are paired in raster order; where a tap lies outside the input for one pixel of a pair but not the other,
    that pixel gets an all-zero chunk, which adds +0.0 to its acc and so changes nothing, exactly like the
    skipped tap. An odd pixel out is paired with an all-zero filler that is not checked."""
    acc_program = accumulator_program(program)
    (d,) = acc_program.instructions
    y = run_npu(acc_program, x_flat)
    x = np.asarray(x_flat, dtype=F32).reshape(-1)[:d.in_h * d.in_w * d.in_c].reshape(d.in_shape)
    precision = Precision(d.precision)
    am, ae = activation_blocks(x, precision)
    wm, we = weight_blocks(acc_program)
    w0 = vs.add_w(wm, we)
    zero = vs.zero_block()
    cg = d.in_c // d.groups

    def chunk_block(iy: int, ix: int, c: int, n: int) -> int:
        if not (0 <= iy < d.in_h and 0 <= ix < d.in_w):
            return zero
        lanes = np.zeros(BLOCK, dtype=np.int16)
        first_lane = c % BLOCK if d.is_depthwise else (c - (c // cg) * cg) % BLOCK
        lanes[first_lane:first_lane + n] = am[iy, ix, c // BLOCK, c % BLOCK:c % BLOCK + n]
        return vs.add_a(lanes, ae[iy, ix, c // BLOCK])

    pixels = [(oy, ox) for oy in range(d.out_h) for ox in range(d.out_w)]
    checked = 0
    for o in range(d.out_c):
        for i in range(0, len(pixels), 2):
            p = pixels[i]
            q = pixels[i + 1] if i + 1 < len(pixels) else None
            cp = conv_chunks(d, *p, o)
            cq = conv_chunks(d, *q, o) if q else [(t, -1, -1, c, n, wb) for t, _, _, c, n, wb in cp]
            rows = []
            for (t, py, px, c, n, wb), (_, qy, qx, _, _, _) in zip(cp, cq):
                inside = [0 <= yy < d.in_h and 0 <= xx < d.in_w for yy, xx in ((py, px), (qy, qx))]
                if any(inside):  # a tap outside the input for both pixels is skipped by both
                    rows.append((w0 + wb, chunk_block(py, px, c, n), chunk_block(qy, qx, c, n)))
            exp_q = y[q[0], q[1], o] if q else F32(0)
            if not rows:  # no tap inside the input at all: acc stays +0.0, nothing for the lane to do
                assert y[p[0], p[1], o].view(np.uint32) == 0
                continue
            vs.add_jobs(f"{label} o={o} p={p} q={q}", precision, np.array([rows]),
                        np.array([[y[p[0], p[1], o], exp_q]]), np.array([[True, q is not None]]))
            checked += 1 + (q is not None)
    return checked
