"""One program on one target: the v2 cost of every instruction for the kernel and for the design, the v1
figures, and what each next step of docs/hardware.md saves."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from brainwave.npu.isa import Instruction, Opcode, Program
from brainwave.npu.numerics import DEFAULT_PRECISION, Precision
from brainwave.npu.ops import OPS, instruction_unit, program_macs

from ..boards import BOARDS, Board, Target, get_target
from .v1 import V1Cost, v1_as_coded, v1_idealised_cycles
from .v2 import (V2_INSN_OVERHEAD, LayerCost, Placement, Variant, ddr_bytes_per_cycle, design_variant,
                 kernel_variant, v2_cost)

V2_VALIDATE_PER_INSN = 40  # per instruction in the per-call check (32 words + field and bound checks)


@dataclass
class Estimate:
    """One network on one target: the v2 cost per instruction for the kernel and the design, the v1 figures."""

    target: Target
    program: Program
    kernel: list[LayerCost]  # per instruction, v2 kernel (this interface)
    design: list[LayerCost]  # per instruction, v2 design
    v1: list[V1Cost]  # per instruction
    validate_cycles: int  # the v2 kernel's program check (mode VALIDATE: once per program load, not per call)
    validate_per_call: bool = False  # whether the kernel's calls pay validate_cycles
    effects: list[tuple[str, float]] = field(default_factory=list)  # (name, ms saved) per next step, in order
    precision: str = ""
    io_cycles: int = 0  # design with the arena on chip: the host's input in and the output out

    @property
    def instructions(self) -> list[Instruction]:
        return self.program.instructions

    @property
    def clock_mhz(self) -> float:
        return self.target.npu.clock_mhz

    @property
    def macs(self) -> int:
        return program_macs(self.program)

    @property
    def cycles(self) -> list[int]:
        return [c.cycles for c in self.design]

    @property
    def total_cycles(self) -> int:
        return sum(self.cycles) + self.io_cycles

    @property
    def kernel_cycles(self) -> int:
        return sum(c.cycles for c in self.kernel) + (self.validate_cycles if self.validate_per_call else 0)

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
        return sum(v1_idealised_cycles(d, b) for d in self.instructions) / (b.clock_mhz * 1e3)

    @property
    def v1_weight_bytes(self) -> int:
        return sum(c.weight_bytes for c in self.v1)

    def ddr_bytes(self, design: bool = True) -> int:
        costs = self.design if design else self.kernel
        io = _host_io_bytes(self.program) if design and self.io_cycles else 0
        return sum(c.ddr_bytes for c in costs) + io

    def by_op(self, design: bool = True) -> dict[str, list[int]]:
        """Opcode name -> [instructions, cycles], in the order the opcodes first appear."""
        out: dict[str, list[int]] = {}
        for d, c in zip(self.instructions, self.design if design else self.kernel):
            e = out.setdefault(d.op.name, [0, 0])
            e[0] += 1
            e[1] += c.cycles
        return out


def estimate_program(program: Program, target: str | Target | Board, precision: str = "") -> Estimate:
    tgt = _target(target)
    kvar, dvar = kernel_variant(tgt), design_variant(tgt)
    insns = program.instructions
    q_in, q_out = quantized_tensors(program)
    # what the design keeps on chip must fit: all the weights, and the whole arena
    weights_fit = sum(_weight_bytes(d) for d in insns if d.op == Opcode.CONV2D) <= tgt.npu.weights_resident_bytes
    arena_fits = 4 * program.arena_words <= tgt.npu.arena_on_chip_bytes
    resident, chip_arena = dvar.weights_resident and weights_fit, dvar.arena_on_chip and arena_fits

    def costs(var: Variant) -> list[LayerCost]:
        quant = var.quantized_storage
        return [v2_cost(d, tgt, var, Placement(quant and i in q_in, quant and i in q_out,
                                               var.weights_resident and weights_fit, var.arena_on_chip and arena_fits))
                for i, d in enumerate(insns)]

    io_cycles = 0
    if chip_arena:  # the host's input in and the output back out through the ports
        io_cycles = int(_host_io_bytes(program) / ddr_bytes_per_cycle(tgt.npu)) + 2 * V2_INSN_OVERHEAD
    # per instruction its words and checks, and a CONV2D's exponents a beat (16 bytes) at a time
    validate = sum(V2_VALIDATE_PER_INSN + (math.ceil(d.weight_blocks / 16) + 1 if d.op == Opcode.CONV2D else 0)
                   for d in insns)
    est = Estimate(tgt, program, costs(kvar), costs(dvar), [v1_as_coded(d) for d in insns], validate,
                   validate_per_call=kvar.validate_per_call, precision=precision, io_cycles=io_cycles)
    prev = est.kernel_cycles
    for name, var in _next_steps(kvar, dvar, resident, chip_arena):
        cyc = (sum(c.cycles for c in costs(var)) + (io_cycles if var.arena_on_chip and chip_arena else 0)
               + (validate if var.validate_per_call else 0))
        est.effects.append((name, (prev - cyc) / (tgt.npu.clock_mhz * 1e3)))
        prev = cyc
    return est


def estimate_model(model, target: str | Target | Board, precision: str = DEFAULT_PRECISION.label) -> Estimate:
    """Estimate for a Keras featurizer, from the program the compiler makes of it."""
    from brainwave.npu.compiler import compile_keras

    return estimate_program(compile_keras(model, precision=precision), target, precision)


def _target(target: str | Target | Board) -> Target:
    if isinstance(target, Board):
        return get_target(target.name)
    return get_target(target) if isinstance(target, str) else target


def _weight_bytes(d: Instruction) -> int:
    """A CONV2D's share of the weights blob: mantissas, one exponent byte per block, float32 biases."""
    return d.weight_blocks * (Precision(d.precision).block_bytes + 1) + 4 * d.out_c


def _host_io_bytes(program: Program) -> int:
    """float32 bytes of the first instruction's input and the last one's output (what the host moves)."""
    first, last = program.instructions[0], program.instructions[-1]
    return 4 * (math.prod(first.in_shape) + math.prod(last.out_shape))


def _next_steps(kvar: Variant, dvar: Variant, resident: bool, chip_arena: bool) -> list[tuple[str, Variant]]:
    """(name, variant) per next step, in the order docs/hardware.md proposes them; each step's variant includes
    the steps before it, the last is the design (the steps for weights and arena on chip only where they fit)."""
    v = replace(kvar, validate_per_call=False)
    steps = [("validate once, at load (no per-call exponent check)", v)] if kvar.validate_per_call else []
    v = replace(v, weight_ports=dvar.weight_ports, arena_ports=dvar.arena_ports, pooled_ports=True)
    steps.append((f"any stream on any of {dvar.weight_ports + dvar.arena_ports} memory ports", v))
    steps.append(("activations stored quantized (conv-only tensors)", replace(v, quantized_storage=True)))
    if resident:
        steps.append(("weights resident in URAM across calls", replace(dvar, arena_on_chip=False)))
    if chip_arena:
        steps.append(("arena in on-chip RAM (input in, output out)", dvar))
    return steps


def quantized_tensors(program: Program) -> tuple[set[int], set[int]]:
    """Which CONV2D inputs and which outputs could be stored quantized: a tensor whose every consumer is a
    CONV2D reading it as its input, all of one precision (not a residual, not an ADD or pool operand), and
    which is not the program's output. The program's input comes from the host as float32."""
    insns = program.instructions
    writer_of: dict[int, int] = {}  # arena offset -> index of the instruction that last wrote it
    consumers: dict[int, list[tuple[int, str]]] = {}  # writer -> (reader, operand field) per read
    for i, d in enumerate(insns):
        for operand in (f for f in OPS[d.opcode].operands(d) if f != "out_offset"):
            w = writer_of.get(getattr(d, operand))
            if w is not None:
                consumers.setdefault(w, []).append((i, operand))
        writer_of[d.out_offset] = i
    q_out = {w for w, cons in consumers.items()
             if insns[w].out_offset != program.output_offset
             and all(operand == "in_offset" and instruction_unit(insns[j]) == "mac" for j, operand in cons)
             and len({insns[j].precision for j, _ in cons}) == 1}
    q_in = {j for w in q_out for j, _ in consumers[w]}
    return q_in, q_out
