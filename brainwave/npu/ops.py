"""The op table: one entry per opcode, holding its field rules, the tensors it reads, its weight checks, its
MAC count and the NPU unit that runs it. Validation (`validate`, the kernel's rules in the kernel's order) and
everything that counts work (`program_macs`, the performance model) go through it. The performance model
(brainwave/fpga/perf) costs an instruction by its unit: how many cycles a unit takes depends on the target, so
the cost functions live there, one per unit (`UNIT_COSTS` in brainwave/fpga/perf/v2.py and v1.py).

Adding an opcode touches: an `Opcode` value (isa.py, which regenerates hls/src/npu_isa.h), an entry here, its
case in the HLS kernel (hls/src/npu_kernel.cpp) and in the native executor (brainwave/npu/native/src), and
its reading of the spec (tests/support/spec_ref.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from .isa import ISA_VERSION, MAX_CHANNELS, Activation, Instruction, Opcode, Program, ProgramError, Status
from .numerics import EXP_MAX, EXP_MIN, Precision

Check = Callable[[Instruction], "str | None"]
Unit = Literal["mac", "vector"]
UNITS: tuple[Unit, ...] = ("mac", "vector")


@dataclass(frozen=True)
class Op:
    opcode: Opcode
    check_fields: Check  # why a field cannot be executed (status BAD_FIELD), or None
    operands: Callable[[Instruction], dict[str, tuple[int, int, int]]]  # arena offset field -> shape it must hold
    macs: Callable[[Instruction], int] = lambda d: 0
    check_weights: Callable[[Instruction, int], "str | None"] = lambda d, size: None  # bounds in the weights blob
    check_exponents: Callable[[Instruction, bytes], "str | None"] = lambda d, weights: None
    unit: Unit = "vector"  # the NPU unit that runs it: the MAC engine or the vector unit (docs/hardware.md)


# --- CONV2D --------------------------------------------------------------------------------------------
def _conv_fields(d: Instruction) -> str | None:
    if d.precision not in set(Precision):
        return f"precision code {d.precision}"
    if d.groups == 0 or d.in_c % d.groups or d.out_c % d.groups:
        return f"groups {d.groups} must divide in_c {d.in_c} and out_c {d.out_c}"
    if not (0 < d.in_c <= MAX_CHANNELS and 0 < d.out_c <= MAX_CHANNELS):
        return f"channels {d.in_c}->{d.out_c} outside 1..{MAX_CHANNELS}"
    if 0 in (d.kernel_h, d.kernel_w, d.stride_h, d.stride_w) or d.has_residual > 1:
        return "zero kernel/stride or has_residual > 1"
    if d.weight_mant_offset % 16 or d.bias_offset % 4:
        return "weight_mant_offset must be 16-aligned and bias_offset 4-aligned"
    return None


def _conv_weights(d: Instruction, weights_bytes: int) -> str | None:
    blocks = d.weight_blocks
    if (d.weight_mant_offset + blocks * Precision(d.precision).block_bytes > weights_bytes
            or d.weight_exp_offset + blocks > weights_bytes or d.bias_offset + 4 * d.out_c > weights_bytes):
        return "weights outside the weights blob"
    return None


def _conv_exponents(d: Instruction, weights: bytes) -> str | None:
    """Block exponents outside [EXP_MIN, EXP_MAX] would take the scale 2^(Ea+Ew-(Ma-1)-(Mw-1)) out of float32's
    normal range, where the kernel and the executors no longer agree (docs/numerics.md)."""
    exps = memoryview(weights)[d.weight_exp_offset:d.weight_exp_offset + d.weight_blocks].cast("b")
    if exps and not (EXP_MIN <= min(exps) and max(exps) <= EXP_MAX):
        return f"weight block exponent outside [{EXP_MIN}, {EXP_MAX}] (min {min(exps)}, max {max(exps)})"
    return None


def _conv_operands(d: Instruction) -> dict[str, tuple[int, int, int]]:
    return {"in_offset": d.in_shape, "out_offset": d.out_shape,
            **({"residual_offset": d.out_shape} if d.has_residual else {})}


def _conv_macs(d: Instruction) -> int:
    return d.out_h * d.out_w * d.out_c * d.kernel_h * d.kernel_w * (d.in_c // d.groups)


# --- the vector unit -----------------------------------------------------------------------------------
def _same_shape(d: Instruction) -> str | None:
    return None if d.out_shape == d.in_shape else f"output {d.out_shape} differs from input {d.in_shape}"


def _pool_fields(d: Instruction) -> str | None:
    if 0 in (d.kernel_h, d.kernel_w, d.stride_h, d.stride_w) or d.out_c != d.in_c:
        return "pool with zero kernel/stride or out_c != in_c"
    return None


def _global_pool_fields(d: Instruction) -> str | None:
    if (d.out_h, d.out_w, d.out_c) != (1, 1, d.in_c) or d.in_c > MAX_CHANNELS:
        return f"global average pool output must be 1x1x{d.in_c} (C <= {MAX_CHANNELS})"
    return None


def _pad_fields(d: Instruction) -> str | None:
    if (d.out_c != d.in_c or d.out_h != d.in_h + d.pad_top + d.pad_bottom
            or d.out_w != d.in_w + d.pad_left + d.pad_right):
        return f"pad output {d.out_shape} is not input {d.in_shape} plus the pads"
    return None


def _concat_fields(d: Instruction) -> str | None:
    if (d.out_h, d.out_w) != (d.in_h, d.in_w) or d.out_c <= d.in_c:
        return f"concat output {d.out_shape} is not input {d.in_shape} with more channels"
    return None


def _concat_operands(d: Instruction) -> dict[str, tuple[int, int, int]]:
    """The second operand has the output's pixels and the channels the first one lacks."""
    return {"in_offset": d.in_shape, "out_offset": d.out_shape, "in2_offset": (d.in_h, d.in_w, d.out_c - d.in_c)}


def _in_out(d: Instruction) -> dict[str, tuple[int, int, int]]:
    return {"in_offset": d.in_shape, "out_offset": d.out_shape}


def _add_operands(d: Instruction) -> dict[str, tuple[int, int, int]]:
    return {"in_offset": d.in_shape, "out_offset": d.out_shape, "in2_offset": d.in_shape}


OPS: dict[int, Op] = {op.opcode: op for op in (
    Op(Opcode.CONV2D, _conv_fields, _conv_operands, _conv_macs, _conv_weights, _conv_exponents, unit="mac"),
    Op(Opcode.ADD, _same_shape, _add_operands),
    Op(Opcode.MAXPOOL, _pool_fields, _in_out),
    Op(Opcode.AVGPOOL, _pool_fields, _in_out),
    Op(Opcode.GLOBAL_AVGPOOL, _global_pool_fields, _in_out),
    Op(Opcode.ACTIVATION, _same_shape, _in_out),
    Op(Opcode.PAD, _pad_fields, _in_out),
    Op(Opcode.CONCAT, _concat_fields, _concat_operands),
)}
assert set(OPS) == set(Opcode), "every opcode needs an entry in the op table"
assert all(op.unit in UNITS for op in OPS.values()), "every op runs on a unit the performance model costs"


_OPERAND_NAMES = {"in_offset": "input tensor", "out_offset": "output tensor", "in2_offset": "second operand",
                  "residual_offset": "residual tensor"}


def _tensor_fits(offset: int, shape: tuple[int, int, int], limit: int) -> bool:
    h, w, c = shape
    return offset + h * w * c <= limit


def validate(program: Program) -> None:
    """Raise ProgramError with the kernel's status for the first problem, in the kernel's order (docs/isa.md
    "Status codes and validation"): version, the header's tensors, then per instruction its opcode, its
    fields, its memory and its weight exponents."""
    if program.isa_version != ISA_VERSION:
        raise ProgramError(Status.BAD_VERSION, f"ISA version {program.isa_version}, expected {ISA_VERSION}")
    aw = program.arena_words
    if not (_tensor_fits(program.input_offset, program.input_shape, aw)
            and _tensor_fits(program.output_offset, program.output_shape, aw)):
        raise ProgramError(Status.OUT_OF_BOUNDS, "program input or output outside the arena")
    for i, d in enumerate(program.instructions):
        where = f"instruction {i}" + (f" ({d.name})" if d.name else "")
        op = OPS.get(d.opcode)
        if op is None:
            raise ProgramError(Status.BAD_OPCODE, f"{where}: opcode {d.opcode}")
        problem = f"activation code {d.activation}" if d.activation > Activation.RELU6 else op.check_fields(d)
        if problem:
            raise ProgramError(Status.BAD_FIELD, f"{where}: {problem}")
        outside = [field for field, shape in op.operands(d).items() if not _tensor_fits(getattr(d, field), shape, aw)]
        problem = f"{_OPERAND_NAMES[outside[0]]} outside the arena" if outside else op.check_weights(d, len(program.weights))
        if problem:
            raise ProgramError(Status.OUT_OF_BOUNDS, f"{where}: {problem}")
        problem = op.check_exponents(d, program.weights)
        if problem:
            raise ProgramError(Status.BAD_FIELD, f"{where}: {problem}")


def instruction_macs(d: Instruction) -> int:
    return OPS[d.opcode].macs(d)


def program_macs(program: Program) -> int:
    return sum(instruction_macs(d) for d in program.instructions)


def instruction_unit(d: Instruction) -> Unit:
    return OPS[d.opcode].unit
