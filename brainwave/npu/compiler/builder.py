"""ProgramBuilder: write an NPU program layer by layer; build() lays out the arena and packs the weights.

Tensors are symbolic until build(): then each gets an arena offset from a first-fit allocator that frees a
tensor after its last reader, so the arena holds only what is live (ResNet-50 needs ~2.4 M floats instead of
the ~11 M a tensor-per-layer layout would). An instruction's output is allocated before its inputs are
freed, so outputs never overlap inputs (the kernel streams outputs while reading inputs).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from brainwave.errors import BrainwaveError

from ..isa import Activation, Instruction, Opcode, OutputSlice, Program
from ..ops import validate
from ..numerics import DEFAULT_PRECISION, Precision
from .packing import WeightsBlob

Pads = tuple[int, int, int, int]  # top, left, bottom, right
_ARENA_ALIGN = 16  # floats: every tensor starts on a 64-byte boundary (one AXI beat of 512 bits)


class CompileError(BrainwaveError, ValueError):
    """The network cannot be expressed as an NPU program."""


@dataclass(eq=False)
class Tensor:
    """An HWC float32 tensor in the arena. Reshapes share `storage` (the arena is flat HWC, row-major)."""

    shape: tuple[int, int, int]
    storage: int
    source: "Tensor | None" = field(default=None, repr=False)  # what a flatten/reshape came from

    @property
    def size(self) -> int:
        h, w, c = self.shape
        return h * w * c


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow 'SAME': (output size, pad before, pad after); the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def output_size(size: int, kernel: int, stride: int, before: int, after: int) -> int:
    out = (size + before + after - kernel) // stride + 1
    if out < 1:
        raise CompileError(f"a {kernel}-wide window with stride {stride} does not fit {size} (+{before}+{after})")
    return out


def resolve_pads(shape: tuple[int, int, int], kernel: tuple[int, int], strides: tuple[int, int],
                 pads: "str | Pads") -> tuple[Pads, tuple[int, int]]:
    """'same' / 'valid' / explicit (top, left, bottom, right) -> (pads, (out_h, out_w))."""
    h, w, _ = shape
    if pads == "same":
        oh, t, b = same_pads(h, kernel[0], strides[0])
        ow, l, r = same_pads(w, kernel[1], strides[1])
        return (t, l, b, r), (oh, ow)
    if pads == "valid":
        pads = (0, 0, 0, 0)
    t, l, b, r = (int(p) for p in pads)
    return (t, l, b, r), (output_size(h, kernel[0], strides[0], t, b), output_size(w, kernel[1], strides[1], l, r))


def parse_activation(activation: "str | int | Activation | None") -> Activation:
    if activation is None:
        return Activation.NONE
    if isinstance(activation, str):
        key = {"linear": "none", "identity": "none"}.get(activation.lower(), activation.lower())
        try:
            return Activation[key.upper()]
        except KeyError:
            raise CompileError(f"the NPU has no activation {activation!r} (it has none, relu, relu6)") from None
    return Activation(activation)


@dataclass
class _Op:
    insn: Instruction
    reads: dict[str, Tensor]  # instruction field -> tensor ("in_offset", "in2_offset", "residual_offset")
    writes: Tensor


class ProgramBuilder:
    def __init__(self, precision: "str | Precision" = DEFAULT_PRECISION):
        self.precision = Precision.parse(precision)
        self._ops: list[_Op] = []
        self._weights = WeightsBlob()
        self._storage_ids = itertools.count()
        self._input: Tensor | None = None

    # ---- tensors
    def _new(self, shape) -> Tensor:
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise CompileError(f"tensor shape {shape} is not a non-empty H x W x C")
        return Tensor(shape, next(self._storage_ids))

    def input(self, shape: tuple[int, int, int]) -> Tensor:
        if self._input is not None:
            raise CompileError("an NPU program has exactly one input")
        self._input = self._new(shape)
        return self._input

    def reshape(self, x: Tensor, shape: tuple[int, int, int]) -> Tensor:
        """Free: same arena floats, new HWC view."""
        shape = tuple(int(s) for s in shape)
        if int(np.prod(shape)) != x.size:
            raise CompileError(f"cannot reshape {x.shape} to {shape}")
        return Tensor(shape, x.storage, source=x)

    def _emit(self, opcode: Opcode, x: Tensor, out_shape, name: str, reads: dict | None = None,
              **fields) -> Tensor:
        out = self._new(out_shape)
        insn = Instruction(opcode=int(opcode), in_h=x.shape[0], in_w=x.shape[1], in_c=x.shape[2],
                           out_h=out.shape[0], out_w=out.shape[1], out_c=out.shape[2], name=name, **fields)
        self._ops.append(_Op(insn, {"in_offset": x, **(reads or {})}, out))
        return out

    # ---- layers
    def conv2d(self, x: Tensor, kernel: np.ndarray, bias: np.ndarray | None = None, *, strides=(1, 1),
               pads: "str | Pads" = "valid", groups: int = 1, activation=None, residual: Tensor | None = None,
               name: str = "") -> Tensor:
        """kernel: (KH, KW, C/groups, Cout) float32 (Keras layout)."""
        kernel = np.asarray(kernel, dtype=np.float32)
        kh, kw, cg, cout = kernel.shape
        cin = x.shape[2]
        if groups < 1 or cin % groups or cout % groups or cin // groups != cg:
            raise CompileError(f"{name or 'conv2d'}: kernel {kernel.shape} with groups={groups} does not fit "
                               f"{cin} input channels")
        strides = (int(strides[0]), int(strides[1]))
        pad4, (oh, ow) = resolve_pads(x.shape, (kh, kw), strides, pads)
        bias = np.zeros(cout, np.float32) if bias is None else np.asarray(bias, dtype=np.float32).reshape(cout)
        if residual is not None and residual.shape != (oh, ow, cout):
            raise CompileError(f"{name or 'conv2d'}: residual {residual.shape} does not match output {(oh, ow, cout)}")
        packed = self._weights.add_conv(np.transpose(kernel, (3, 0, 1, 2)), bias, groups, cin, self.precision)
        reads = {"residual_offset": residual} if residual is not None else {}
        return self._emit(
            Opcode.CONV2D, x, (oh, ow, cout), name, reads, activation=int(parse_activation(activation)),
            precision=int(self.precision), kernel_h=kh, kernel_w=kw, stride_h=strides[0], stride_w=strides[1],
            pad_top=pad4[0], pad_left=pad4[1], pad_bottom=pad4[2], pad_right=pad4[3], groups=groups,
            weight_mant_offset=packed.mant_offset, weight_exp_offset=packed.exp_offset,
            bias_offset=packed.bias_offset, has_residual=int(residual is not None),
        )

    def dense(self, x: Tensor, kernel: np.ndarray, bias: np.ndarray | None = None, *, activation=None,
              residual: Tensor | None = None, name: str = "") -> Tensor:
        """kernel (N, Cout). On a flattened H x W x C tensor the kernel covers the whole unflattened input,
        so blocks stay per pixel as in every other MAC; otherwise it is a 1x1 conv on the channels."""
        kernel = np.asarray(kernel, dtype=np.float32)
        n = kernel.shape[0]
        src = x
        while src.source is not None and src.shape[:2] == (1, 1):  # undo flattens / reshapes to 1 x 1 x N
            src = src.source
        if src.size != n or x.shape[2] == n and x.shape[:2] != (1, 1):
            src = x  # Keras Dense on an H x W x C tensor: per pixel, a 1x1 conv
        if src.size == n:
            h, w, c = src.shape
        elif src.shape[2] == n:
            h, w, c = 1, 1, n
        else:
            raise CompileError(f"{name or 'dense'}: kernel {kernel.shape} does not fit input {x.shape}")
        return self.conv2d(src, kernel.reshape(h, w, c, -1), bias, activation=activation, residual=residual,
                           name=name)

    def add(self, a: Tensor, b: Tensor, activation=None, name: str = "") -> Tensor:
        if a.shape != b.shape:
            raise CompileError(f"{name or 'add'}: shapes {a.shape} and {b.shape} differ")
        return self._emit(Opcode.ADD, a, a.shape, name, {"in2_offset": b},
                          activation=int(parse_activation(activation)))

    def concat(self, a: Tensor, b: Tensor, name: str = "") -> Tensor:
        """a's channels, then b's (CONCAT: the second operand's channel count is out_c - in_c)."""
        if a.shape[:2] != b.shape[:2]:
            raise CompileError(f"{name or 'concat'}: shapes {a.shape} and {b.shape} differ in height or width")
        return self._emit(Opcode.CONCAT, a, (*a.shape[:2], a.shape[2] + b.shape[2]), name, {"in2_offset": b})

    def activation(self, x: Tensor, activation, name: str = "") -> Tensor:
        return self._emit(Opcode.ACTIVATION, x, x.shape, name, activation=int(parse_activation(activation)))

    def _pool(self, opcode: Opcode, x: Tensor, pool, strides, pads, name: str) -> Tensor:
        pool = (int(pool[0]), int(pool[1]))
        strides = pool if strides is None else (int(strides[0]), int(strides[1]))
        pad4, (oh, ow) = resolve_pads(x.shape, pool, strides, pads)
        return self._emit(opcode, x, (oh, ow, x.shape[2]), name, kernel_h=pool[0], kernel_w=pool[1],
                          stride_h=strides[0], stride_w=strides[1], pad_top=pad4[0], pad_left=pad4[1],
                          pad_bottom=pad4[2], pad_right=pad4[3])

    def maxpool(self, x: Tensor, pool, strides=None, pads: "str | Pads" = "valid", name: str = "") -> Tensor:
        """Padding cells are skipped (TensorFlow semantics)."""
        return self._pool(Opcode.MAXPOOL, x, pool, strides, pads, name)

    def avgpool(self, x: Tensor, pool, strides=None, pads: "str | Pads" = "valid", name: str = "") -> Tensor:
        """Padding cells are not counted (TensorFlow semantics)."""
        return self._pool(Opcode.AVGPOOL, x, pool, strides, pads, name)

    def global_avgpool(self, x: Tensor, name: str = "") -> Tensor:
        return self._emit(Opcode.GLOBAL_AVGPOOL, x, (1, 1, x.shape[2]), name)

    def pad(self, x: Tensor, pads: Pads, name: str = "") -> Tensor:
        t, l, b, r = (int(p) for p in pads)
        h, w, c = x.shape
        return self._emit(Opcode.PAD, x, (h + t + b, w + l + r, c), name, pad_top=t, pad_left=l, pad_bottom=b,
                          pad_right=r)

    # ---- program
    def build(self, output: Tensor, outputs: tuple[OutputSlice, ...] = ()) -> Program:
        """`outputs`: the named outputs packed in `output`, for a program with several (docs/isa.md)."""
        if self._input is None:
            raise CompileError("the program has no input")
        offsets = self._layout(output)
        insns = []
        for op in self._ops:
            insn = op.insn
            insn.out_offset = offsets[op.writes.storage]
            for fld, t in op.reads.items():
                setattr(insn, fld, offsets[t.storage])
            insns.append(insn)
        arena_words = max((offsets[s] + n for s, n in self._sizes().items() if s in offsets), default=0)
        program = Program(insns, self._weights.tobytes(), arena_words, offsets[self._input.storage],
                          self._input.shape, offsets[output.storage], output.shape, outputs=outputs)
        validate(program)
        return program

    def _sizes(self) -> dict[int, int]:
        sizes = {self._input.storage: self._input.size}
        for op in self._ops:
            sizes[op.writes.storage] = op.writes.size
        return sizes

    def _layout(self, output: Tensor) -> dict[int, int]:
        """First-fit arena allocation by liveness (storage id -> offset)."""
        last_read: dict[int, int] = {}
        for i, op in enumerate(self._ops):
            for t in op.reads.values():
                last_read[t.storage] = i
        last_read[output.storage] = len(self._ops)  # the host reads it after the run
        sizes = self._sizes()
        if output.storage not in sizes:
            raise CompileError("the output tensor is not produced by this program")
        free: list[tuple[int, int]] = []  # (offset, size) holes, sorted by offset
        top = 0
        offsets: dict[int, int] = {}

        def alloc(storage: int) -> None:
            nonlocal top
            need = -(-sizes[storage] // _ARENA_ALIGN) * _ARENA_ALIGN
            for k, (off, size) in enumerate(free):
                if size >= need:
                    offsets[storage] = off
                    free[k:k + 1] = [(off + need, size - need)] if size > need else []
                    return
            offsets[storage] = top
            top += need

        def release(storage: int) -> None:
            need = -(-sizes[storage] // _ARENA_ALIGN) * _ARENA_ALIGN
            free.append((offsets[storage], need))
            free.sort()
            merged: list[tuple[int, int]] = []
            for off, size in free:
                if merged and merged[-1][0] + merged[-1][1] == off:
                    merged[-1] = (merged[-1][0], merged[-1][1] + size)
                else:
                    merged.append((off, size))
            free[:] = merged

        alloc(self._input.storage)
        for i, op in enumerate(self._ops):
            alloc(op.writes.storage)
            if last_read.get(op.writes.storage, -1) < i:  # written but never read: free right away
                release(op.writes.storage)
            for s in {t.storage for t in op.reads.values()}:
                if last_read[s] == i:
                    release(s)
        return offsets
