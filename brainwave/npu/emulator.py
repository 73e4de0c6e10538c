"""Runs NPU programs in numpy, byte for byte equal to the HLS kernel (docs/numerics.md).

Speed comes from one observation: once both operands of a MAC are dequantized (m * 2^(E-(M-1)), exact in
float32), the dot product of one *chunk* (<= 16 lanes sharing both exponents) is an exact float32 sum in any
order, so BLAS may compute every chunk partial. Only the float32 accumulation *across* chunks rounds, and
that is done here one chunk at a time in the order the spec fixes (taps row-major, then chunks by
ascending channel), as whole-tensor vector adds. In bfp20 a chunk's integer sum can need 31 bits: BLAS then
works in float64 (still exact) and each partial is rounded once to float32, as the kernel's (float)isum is.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from .isa import Activation, Instruction, Opcode, Program
from .ops import validate
from .numerics import BLOCK, Precision, canonicalize_nan, dequantize_blocks, quantize_dequantize, unpack_mantissas

F32 = np.float32
Step = Callable[[np.ndarray], None]


def apply_activation(y: np.ndarray, activation: int) -> np.ndarray:
    """ReLU is `y > 0 ? y : +0.0` (so NaN -> +0.0) and ReLU6 then `r < 6 ? r : 6`, exactly as the kernel."""
    if activation == Activation.NONE:
        return y
    r = np.where(y > F32(0), y, F32(0))
    if activation == Activation.RELU6:
        r = np.where(r < F32(6), r, F32(6))
    return r


def _view(arena: np.ndarray, offset: int, shape: tuple[int, int, int]) -> np.ndarray:
    h, w, c = shape
    return arena[offset:offset + h * w * c].reshape(h, w, c)


def _store(arena: np.ndarray, offset: int, y: np.ndarray) -> None:
    y = np.asarray(y, dtype=F32)
    arena[offset:offset + y.size] = canonicalize_nan(np.array(y, dtype=F32, copy=True)).reshape(-1)


def _windows(x: np.ndarray, d: Instruction, fill: float = 0.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each kernel tap (row-major): the input values under it for every output pixel, shape
    (out_h, out_w, C), and which output pixels see a real input cell there (out_h, out_w) bool.
    Cells outside the input read `fill`."""
    H, W, C = x.shape
    oh, ow = d.out_h, d.out_w
    top, left = d.pad_top, d.pad_left
    bottom = max(0, (oh - 1) * d.stride_h - top + d.kernel_h - H)
    right = max(0, (ow - 1) * d.stride_w - left + d.kernel_w - W)
    if top or left or bottom or right:
        padded = np.full((H + top + bottom, W + left + right, C), F32(fill), dtype=F32)
        padded[top:top + H, left:left + W] = x
    else:
        padded = x
    oy = np.arange(oh) * d.stride_h - top
    ox = np.arange(ow) * d.stride_w - left
    for ky in range(d.kernel_h):
        rows = (oy + ky >= 0) & (oy + ky < H)
        for kx in range(d.kernel_w):
            cols = (ox + kx >= 0) & (ox + kx < W)
            cells = padded[ky:ky + d.stride_h * (oh - 1) + 1:d.stride_h, kx:kx + d.stride_w * (ow - 1) + 1:d.stride_w]
            yield cells, rows[:, None] & cols[None, :]


class _Conv:
    """CONV2D with weights unpacked once. Three paths with the same arithmetic: dense-channel (groups 1,
    every chunk is a whole block), depthwise (every chunk is one channel) and general grouped."""

    def __init__(self, d: Instruction, weights: bytes):
        self.d = d
        self.precision = Precision(d.precision)
        nblocks = d.weight_blocks
        m = unpack_mantissas(memoryview(weights)[d.weight_mant_offset:], nblocks, self.precision)
        e = np.frombuffer(weights, dtype=np.int8, count=nblocks, offset=d.weight_exp_offset)
        deq = dequantize_blocks(m, e, self.precision.weight_mantissa_bits)
        self.bias = np.frombuffer(weights, dtype="<f4", count=d.out_c, offset=d.bias_offset).astype(F32)
        taps = d.kernel_h * d.kernel_w
        # dtype of the chunk products: float32 is exact while a chunk sum fits 24 bits, float64 always is
        self.blas = F32 if self.precision.chunk_sum_exact_in_float32 else np.float64
        if d.is_depthwise:
            # One product per chunk: the float32 multiply rounds it once to nearest even (only in bfp20, where it
            # can need 26 bits), exactly as the kernel's (float)isum does.
            self.mode = "depthwise"
            self.w = deq.reshape(taps, -1)[:, :d.in_c]  # (taps, C)
        elif d.groups == 1:
            self.mode = "dense"
            nb = -(-d.in_c // BLOCK)
            w = deq.reshape(d.out_c, taps, nb, BLOCK)
            self.w = np.ascontiguousarray(w.transpose(1, 2, 3, 0), dtype=self.blas)  # (taps, nb, 16, out_c)
        else:
            self.mode = "grouped"
            cg = d.in_c // d.groups
            self.w = deq.reshape(d.out_c, taps, -1)[:, :, :cg].astype(self.blas)  # (out_c, taps, cg) group-local

    def __call__(self, arena: np.ndarray) -> None:
        d = self.d
        x = quantize_dequantize(_view(arena, d.in_offset, d.in_shape), self.precision)
        if self.mode != "depthwise":
            x = x.astype(self.blas, copy=False)
        acc = np.zeros((d.out_h * d.out_w, d.out_c), dtype=F32)
        if self.mode == "dense":  # one BLAS output buffer, and its float32 rounding when BLAS runs in float64
            partial = np.empty(acc.shape, dtype=self.blas)
            rounded = partial if self.blas is F32 else np.empty_like(acc)
        for t, (cells, _) in enumerate(_windows(x, d)):
            # Out-of-input taps read zeros: their partial is +-0.0, and acc (which starts at +0.0 and so is
            # never -0.0) is unchanged by adding it, exactly like the kernel skipping the tap.
            a = cells.reshape(d.out_h * d.out_w, -1)
            if self.mode == "dense":
                for b, w in enumerate(self.w[t]):  # one BLAS call per block, then the ordered float32 add
                    np.matmul(a[:, b * BLOCK:(b + 1) * BLOCK], w, out=partial)
                    if rounded is not partial:
                        np.copyto(rounded, partial, casting="same_kind")  # float64 -> float32, nearest even
                    np.add(acc, rounded, out=acc)
            elif self.mode == "depthwise":
                np.add(acc, a[:, :d.in_c] * self.w[t], out=acc)
            else:
                self._grouped_tap(acc, a, t)
        y = acc.reshape(d.out_shape) + self.bias
        if d.has_residual:
            y = y + _view(arena, d.residual_offset, d.out_shape)
        _store(arena, d.out_offset, apply_activation(y, d.activation))

    def _grouped_tap(self, acc: np.ndarray, a: np.ndarray, t: int) -> None:
        d = self.d
        cg = d.in_c // d.groups
        opg = d.out_c // d.groups
        for g in range(d.groups):
            base, outs = g * cg, slice(g * opg, (g + 1) * opg)
            c = base
            while c < base + cg:  # chunks end at activation-block and weight-block boundaries
                n = min(BLOCK - c % BLOCK, BLOCK - (c - base) % BLOCK, base + cg - c)
                part = (a[:, c:c + n] @ self.w[outs, t, c - base:c - base + n].T).astype(F32)
                np.add(acc[:, outs], part, out=acc[:, outs])
                c += n


def _add(d: Instruction) -> Step:
    def run(arena: np.ndarray) -> None:
        y = _view(arena, d.in_offset, d.in_shape) + _view(arena, d.in2_offset, d.in_shape)
        _store(arena, d.out_offset, apply_activation(y, d.activation))
    return run


def _activation(d: Instruction) -> Step:
    def run(arena: np.ndarray) -> None:
        _store(arena, d.out_offset, apply_activation(_view(arena, d.in_offset, d.in_shape), d.activation))
    return run


def _maxpool(d: Instruction) -> Step:
    def run(arena: np.ndarray) -> None:
        best = np.zeros(d.out_shape, dtype=F32)  # a window with no input cell writes +0.0
        seen = np.zeros((d.out_h, d.out_w), dtype=bool)
        for cells, valid in _windows(_view(arena, d.in_offset, d.in_shape), d):
            take = valid[..., None] & (~seen[..., None] | (cells > best))  # first cell, then `v > m`
            best = np.where(take, cells, best)
            seen |= valid
        _store(arena, d.out_offset, best)
    return run


def _avgpool(d: Instruction) -> Step:
    def run(arena: np.ndarray) -> None:
        total = np.zeros(d.out_shape, dtype=F32)
        count = np.zeros((d.out_h, d.out_w), dtype=np.int64)
        for cells, valid in _windows(_view(arena, d.in_offset, d.in_shape), d):
            # padding cells read +0.0; adding it never changes `total`, which is never -0.0
            total = total + cells
            count += valid
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(count[..., None] > 0, total / count[..., None].astype(F32), F32(0))
        _store(arena, d.out_offset, y)
    return run


def _global_avgpool(d: Instruction) -> Step:
    def run(arena: np.ndarray) -> None:
        pixels = _view(arena, d.in_offset, d.in_shape).reshape(-1, d.in_c)
        total = np.zeros(d.in_c, dtype=F32)
        for row in pixels:  # row-major, one float32 add per pixel: the order the spec fixes
            np.add(total, row, out=total)
        _store(arena, d.out_offset, total / F32(d.in_h * d.in_w))
    return run


def _pad(d: Instruction) -> Step:
    def run(arena: np.ndarray) -> None:
        y = np.zeros(d.out_shape, dtype=F32)
        y[d.pad_top:d.pad_top + d.in_h, d.pad_left:d.pad_left + d.in_w] = _view(arena, d.in_offset, d.in_shape)
        _store(arena, d.out_offset, y)
    return run


_VECTOR_OPS = {Opcode.ADD: _add, Opcode.ACTIVATION: _activation, Opcode.MAXPOOL: _maxpool,
                   Opcode.AVGPOOL: _avgpool, Opcode.GLOBAL_AVGPOOL: _global_avgpool, Opcode.PAD: _pad}


class Emulator:
    """A validated program, ready to run any number of inputs (thread-safe: each run has its own arena)."""

    def __init__(self, program: Program):
        validate(program)
        self.program = program
        self._steps: list[Step] = [
            _Conv(d, program.weights) if d.opcode == Opcode.CONV2D else _VECTOR_OPS[Opcode(d.opcode)](d)
            for d in program.instructions
        ]

    def _arena(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        p = self.program
        x = np.asarray(x, dtype=F32)
        batched = x.ndim == 4
        if batched:
            if x.shape[0] != 1:
                raise ValueError(f"the NPU runs batch size 1; got a batch of {x.shape[0]}")
            x = x[0]
        if x.shape != tuple(p.input_shape):
            raise ValueError(f"input has shape {x.shape}, the program reads {tuple(p.input_shape)}")
        arena = np.zeros(p.arena_words, dtype=F32)
        arena[p.input_offset:p.input_offset + x.size] = x.reshape(-1)
        return arena, batched

    def run(self, x: np.ndarray) -> np.ndarray:
        """x: (H, W, C) or (1, H, W, C) float32 -> the program output (same batch convention), float32."""
        arena, batched = self._arena(x)
        with np.errstate(all="ignore"):  # overflow to inf and NaN are defined results (canonical NaN)
            for step in self._steps:
                step(arena)
        out = _view(arena, self.program.output_offset, self.program.output_shape).copy()
        return out[np.newaxis] if batched else out

    def trace(self, x: np.ndarray) -> Iterator[tuple[Instruction, np.ndarray]]:
        """Run step by step, yielding each instruction with a copy of the tensor it wrote."""
        arena, _ = self._arena(x)
        for d, step in zip(self.program.instructions, self._steps):
            with np.errstate(all="ignore"):
                step(arena)
            yield d, _view(arena, d.out_offset, d.out_shape).copy()
