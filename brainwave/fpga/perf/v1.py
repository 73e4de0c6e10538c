"""The kernel before the v2 rewrite (`git show e0d4466~2:hls/src/npu_kernel.cpp`), two ways.

- **As coded**: every loop at the II its port requests force. An m_axi port answers one request per cycle, and
  v1 read weights a byte at a time (II = 1 + block bytes: 17 in bfp16, 33 in bfp20), input pixels a float at a
  time per tap, biases as four byte reads, and checked every weight exponent with one byte read per cycle.
- **Idealised**: what the old model printed (one block per cycle), which ignored all of that.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from brainwave.npu.isa import Instruction, Opcode
from brainwave.npu.numerics import BLOCK, Precision
from brainwave.npu.ops import Unit, instruction_unit

from ..boards import Board
from .window import tap_count

V1_WEIGHT_PORT_BITS = 128  # the old kernel's widened weights port (gmem1)
V1_PIPE_DEPTH = 12  # assumed pipeline depth of a loop entry in the old model
V1_OLANES = 8


@dataclass
class V1Cost:
    cycles: int
    weight_bytes: int  # bytes the weights port moves (every byte a separate request)
    arena_bytes: int
    validate_cycles: int = 0


def v1_idealised_cycles(d: Instruction, board: Board) -> int:
    """The old model: one 16-wide block MAC per cycle, one block per cycle for quantization, one element per
    cycle elsewhere (what `brainwave models --estimate` printed before v2)."""
    return _IDEALISED[instruction_unit(d)](d, board)


def v1_as_coded(d: Instruction) -> V1Cost:
    """The old kernel with its port requests counted: one request per cycle per m_axi port."""
    return _AS_CODED[instruction_unit(d)](d)


# ---- idealised ---------------------------------------------------------------------------------------------
def _conv_idealised(d: Instruction, board: Board) -> int:
    D = V1_PIPE_DEPTH
    taps = tap_count(d)
    nb_in = math.ceil(d.in_c / BLOCK)
    quant = taps * (nb_in + D)
    port_bytes = min(board.hp_port_bits, V1_WEIGHT_PORT_BITS) // 8
    if d.is_depthwise and d.groups > 1:
        mac = taps * (nb_in + D)
    else:
        cg = d.in_c // d.groups
        nbw = math.ceil(cg / BLOCK)
        if cg % BLOCK == 0 or d.groups == 1:
            stretch = max(1.0, Precision(d.precision).block_bytes / port_bytes)
            mac = taps * (math.ceil(d.out_c / V1_OLANES) * V1_OLANES * nbw * stretch + D)
        else:
            chunks = nbw + (cg // BLOCK)
            mac = taps * d.out_c * chunks * (BLOCK // 2 + D)
    return int(d.out_h * d.out_w * (2 * d.out_c + 2 * D) + quant + mac)


def _vector_idealised(d: Instruction, _board: Board) -> int:
    D = V1_PIPE_DEPTH
    n_in = d.in_h * d.in_w * d.in_c
    match d.op:
        case Opcode.MAXPOOL | Opcode.AVGPOOL:
            return int(tap_count(d) * d.out_c + d.out_h * d.out_w * D)
        case Opcode.GLOBAL_AVGPOOL:
            return n_in + d.in_c + D
        case Opcode.ADD | Opcode.ACTIVATION:
            return n_in + D
        case Opcode.PAD | Opcode.CONCAT:
            return d.out_h * d.out_w * d.out_c + d.out_h * D
    raise ValueError(f"no v1 cost for opcode {d.opcode}")


# ---- as coded ----------------------------------------------------------------------------------------------
def _conv_as_coded(d: Instruction) -> V1Cost:
    D = V1_PIPE_DEPTH
    oc = d.out_c
    pix = d.out_h * d.out_w
    bb = Precision(d.precision).block_bytes
    taps = tap_count(d)  # valid (pixel, tap) pairs
    nb_in = math.ceil(d.in_c / BLOCK)
    cg = d.in_c // d.groups
    nbw = math.ceil(cg / BLOCK)
    quant = taps * (nb_in * BLOCK + D)  # QUANT: 16 single-float reads per block on gmem2
    if d.is_depthwise:
        mac = taps * (nb_in * (1 + bb) + D)  # DW_BLOCKS: exponent + mantissa bytes per block on gmem1
        wbytes = taps * nb_in * (1 + bb)
    elif d.groups == 1 or cg % BLOCK == 0:
        lanes = math.ceil(oc / V1_OLANES) * V1_OLANES
        mac = taps * (oc * nbw * (1 + bb) + (lanes - oc) * nbw + D * math.ceil(oc / V1_OLANES) * nbw)
        wbytes = taps * oc * nbw * (1 + bb)
    else:
        chunks = nbw + (cg // BLOCK) * (cg % BLOCK != 0)
        mac = taps * oc * (nbw * (1 + bb + D) + chunks * (BLOCK // 2 + D))
        wbytes = taps * oc * nbw * (1 + bb)
    clear = pix * (oc + D)
    vector = pix * (oc * 4 + D)  # bias as four byte reads on gmem1: II = 4
    wbytes += pix * oc * 4
    arena = taps * d.in_c * 4 + pix * oc * 4 * (1 + d.has_residual)
    validate = d.weight_blocks  # one exponent byte per cycle, every call
    return V1Cost(int(quant + mac + clear + vector), int(wbytes), int(arena), int(validate))


def _vector_as_coded(d: Instruction) -> V1Cost:
    D = V1_PIPE_DEPTH
    pix = d.out_h * d.out_w
    n_in, n_out = d.in_h * d.in_w * d.in_c, pix * d.out_c
    match d.op:
        case Opcode.MAXPOOL | Opcode.AVGPOOL:
            cells = tap_count(d) * d.out_c
            return V1Cost(int(cells + pix * d.out_c + pix * D), 0, 4 * (cells + n_out))
        case Opcode.GLOBAL_AVGPOOL:
            return V1Cost(n_in + 2 * d.in_c + 3 * D, 0, 4 * (n_in + d.in_c))
        case Opcode.ADD:
            return V1Cost(2 * n_in + D, 0, 12 * n_in)  # two reads per element on gmem2: II = 2
        case Opcode.ACTIVATION:
            return V1Cost(n_in + D, 0, 8 * n_in)
        case Opcode.PAD:
            return V1Cost(n_out + pix * D, 0, 4 * (n_in + n_out))
        case Opcode.CONCAT:  # the v1 kernel had no CONCAT: costed as the copy PAD's loop would make of it
            return V1Cost(n_out + pix * D, 0, 8 * n_out)
    raise ValueError(f"no v1 cost for opcode {d.opcode}")


_IDEALISED: dict[Unit, Callable[[Instruction, Board], int]] = {"mac": _conv_idealised, "vector": _vector_idealised}
_AS_CODED: dict[Unit, Callable[[Instruction], V1Cost]] = {"mac": _conv_as_coded, "vector": _vector_as_coded}
