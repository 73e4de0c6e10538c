"""Performance model of the NPU kernel on a board: cycles per instruction and latency per layer. AN ESTIMATE.

Derived from the kernel's structure (hls/src/npu_kernel.cpp, hls/README.md), not from a synthesis report:
- CONV2D, per output pixel: clear out_c accumulators (II=1), then for every valid tap: quantize the input pixel
  (one 16-channel block per cycle, QUANT at II=1) and run the MAC array: dense/16-aligned convs issue one
  16-wide block MAC per cycle (OUT_LANES: NPU_OLANES=8 output channels interleaved at II=1), so
  ceil(out_c/8)*8*ceil(Cg/16) cycles per tap; depthwise: one 16-channel block per cycle; groups that are not
  16-aligned walk chunks without pipelining (~len+depth cycles each). Then the vector unit: out_c cycles.
  Each pipelined loop entry pays its pipeline depth (PIPE_DEPTH cycles, assumed).
- The 128-bit weight port delivers one bfp16 block (16 bytes) per cycle; a wider block (bfp20: 32 bytes) or a
  board whose PS slave port is narrower (PYNQ-Z2: 64-bit HP) stretches the MAC loop by block_bytes/port_bytes.
- ADD / ACTIVATION / PAD / GLOBAL_AVGPOOL: one element per cycle; MAXPOOL/AVGPOOL: one window cell per cycle.
Not modelled: DDR latency and bandwidth contention (arena reads are single floats through a 32-bit port),
AXI burst efficiency, the achieved clock after place and route. Real latency will be higher; measure on
hardware (`brainwave models --estimate` says so next to every number).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from brainwave.npu.numerics import DEFAULT_PRECISION, Precision

from .boards import BOARDS, Board, get_board

WEIGHT_PORT_BITS = 128  # the kernel's widened weights port (hls/src/npu_kernel.cpp, gmem1)
PIPE_DEPTH = 12  # assumed pipeline depth of a loop entry (float adder + MAC tree + AXI read latency hidden)
OLANES = 8
BLOCK = 16

# Published batch-1 ResNet-50 latencies (for context only: different hardware, numerics and precision).
ANCHORS = [
    ("Microsoft Brainwave, Stratix 10 280 (ISCA 2018 / Hot Chips 2017)", "ResNet-50, batch 1", "< 2 ms"),
    ("AMD Vitis AI DPU, ZCU102, 3x B4096 @ 287 MHz (Vitis AI model zoo, resnet50, end to end)",
     "ResNet-50 INT8, batch 1", "12.85 ms"),
    ("FINN ResNet-50 w1a2, Alveo U250 (Xilinx/FINN, dataflow)", "ResNet-50, minimum latency", "2 ms"),
]


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


def _valid_taps(L: Layer, oy: int, ox: int) -> int:
    ih, iw, _ = L.in_shape
    n = 0
    for ky in range(L.kernel[0]):
        iy = oy * L.stride[0] - L.pads[0] + ky
        if not 0 <= iy < ih:
            continue
        for kx in range(L.kernel[1]):
            ix = ox * L.stride[1] - L.pads[1] + kx
            if 0 <= ix < iw:
                n += 1
    return n


def _tap_counts(L: Layer) -> int:
    """Sum over output pixels of valid taps (separable per axis)."""
    ih, iw, _ = L.in_shape
    oh, ow, _ = L.out_shape

    def axis(n_out, k, s, p, n_in):
        return [sum(1 for kk in range(k) if 0 <= o * s - p + kk < n_in) for o in range(n_out)]

    ys = axis(oh, L.kernel[0], L.stride[0], L.pads[0], ih)
    xs = axis(ow, L.kernel[1], L.stride[1], L.pads[1], iw)
    return sum(ys) * sum(xs)


def layer_cycles(L: Layer, board: Board) -> int:
    ih, iw, ic = L.in_shape
    oh, ow, oc = L.out_shape
    pix = oh * ow
    if L.op == "CONV2D":
        taps = _tap_counts(L)  # valid (pixel, tap) pairs
        nb_in = math.ceil(ic / BLOCK)
        quant = taps * (nb_in + PIPE_DEPTH)
        port_bytes = min(board.hp_port_bits, WEIGHT_PORT_BITS) // 8
        if L.groups == ic and oc == ic and L.groups > 1:  # depthwise
            mac = taps * (nb_in + PIPE_DEPTH)
        else:
            cg = ic // L.groups
            nbw = math.ceil(cg / BLOCK)
            if cg % BLOCK == 0 or L.groups == 1:
                block_bytes = Precision(L.precision).block_bytes
                stretch = max(1.0, block_bytes / port_bytes)
                mac = taps * (math.ceil(oc / OLANES) * OLANES * nbw * stretch + PIPE_DEPTH)
            else:
                chunks = nbw + (cg // BLOCK)
                mac = taps * oc * chunks * (BLOCK // 2 + PIPE_DEPTH)
        return int(pix * (2 * oc + 2 * PIPE_DEPTH) + quant + mac)
    if L.op in ("MAXPOOL", "AVGPOOL"):
        return int(_tap_counts(L) * oc + pix * PIPE_DEPTH)
    if L.op == "GLOBAL_AVGPOOL":
        return ih * iw * ic + ic + PIPE_DEPTH
    if L.op in ("ADD", "ACTIVATION"):
        return ih * iw * ic + PIPE_DEPTH
    if L.op == "PAD":
        return pix * oc + oh * PIPE_DEPTH
    raise ValueError(f"unknown op {L.op}")


def layer_macs(L: Layer) -> int:
    if L.op != "CONV2D":
        return 0
    ic = L.in_shape[2]
    return L.out_shape[0] * L.out_shape[1] * L.out_shape[2] * L.kernel[0] * L.kernel[1] * (ic // L.groups)


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
                         d.precision or int(DEFAULT_PRECISION), name=d.name or f"insn{i}"))
    return out


@dataclass
class Estimate:
    board: Board
    layers: list
    cycles: list

    @property
    def total_cycles(self) -> int:
        return sum(self.cycles)

    @property
    def latency_ms(self) -> float:
        return self.total_cycles / (self.board.clock_mhz * 1e3)

    @property
    def macs(self) -> int:
        return sum(layer_macs(L) for L in self.layers)

    def by_op(self) -> dict:
        out: dict[str, list] = {}
        for L, c in zip(self.layers, self.cycles):
            e = out.setdefault(L.op, [0, 0])
            e[0] += 1
            e[1] += c
        return out


def estimate_layers(layers: list[Layer], board: str | Board) -> Estimate:
    board = get_board(board) if isinstance(board, str) else board
    return Estimate(board, layers, [layer_cycles(L, board) for L in layers])


def estimate_model(model, board: str | Board, precision: str = DEFAULT_PRECISION.label) -> Estimate:
    """Estimate for a Keras featurizer, from the program the compiler makes of it."""
    from brainwave.npu.compiler import compile_keras

    return estimate_layers(layers_from_program(compile_keras(model, precision=precision)), board)


def format_estimate(name: str, est: Estimate, per_layer: bool = False) -> str:
    b = est.board
    lines = [f"{name} on {b.name} ({b.part}, NPU @ {b.clock_mhz:g} MHz): ESTIMATE from the kernel's "
             "documented parallelism, not a measurement",
             f"  {len(est.layers)} instructions, {est.macs / 1e9:.2f} GMAC, {est.total_cycles / 1e6:.1f} M cycles "
             f"-> {est.latency_ms:.1f} ms per image (batch 1, compute only; DDR stalls not modelled)"]
    for op, (n, c) in sorted(est.by_op().items(), key=lambda kv: -kv[1][1]):
        lines.append(f"  {op:<15} x{n:<4} {c / 1e6:10.2f} M cycles  {c / (b.clock_mhz * 1e3):9.2f} ms")
    if per_layer:
        lines.append("  per layer:")
        for L, c in zip(est.layers, est.cycles):
            lines.append(f"    {L.name or L.op:<28} {L.op:<15} {str(L.in_shape):>16} -> {str(L.out_shape):<16} "
                         f"{c / (b.clock_mhz * 1e3):8.3f} ms")
    lines.append("  published batch-1 ResNet-50 anchors (other hardware, for scale):")
    for who, what, lat in ANCHORS:
        lines.append(f"    {lat:>9}  {what}: {who}")
    return "\n".join(lines)


def add_estimate_arguments(parser) -> None:
    """Arguments for `brainwave models --estimate BOARD` (the lead wires this into the CLI)."""
    parser.add_argument("--estimate", metavar="BOARD", choices=sorted(BOARDS),
                        help="print the NPU latency ESTIMATE per layer for BOARD (" + ", ".join(sorted(BOARDS)) + ")")
    parser.add_argument("--precision", choices=Precision.labels(), default=DEFAULT_PRECISION.label,
                        help=f"NPU precision for --estimate (default {DEFAULT_PRECISION.label})")
    parser.add_argument("--per-layer", action="store_true", help="with --estimate: one line per layer")


def print_estimate(name: str, model, board: str, precision: str = DEFAULT_PRECISION.label, per_layer: bool = False,
                   file=None) -> Estimate:
    est = estimate_model(model, board, precision)
    print(format_estimate(f"{name} ({precision})", est, per_layer), file=file)
    return est


def run_estimate(args, console) -> int:
    """`brainwave models --estimate BOARD`: the estimate for every catalog network."""
    from brainwave.models.catalog import catalog_entries

    for spec in catalog_entries():
        with console.status(f"building {spec.model_ref} for the estimate..."):
            model = _catalog_model(spec.model_ref)
        print_estimate(spec.model_ref, model, args.estimate, args.precision, args.per_layer)
    return 0


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="NPU latency estimate for the catalog featurizers")
    ap.add_argument("board", choices=sorted(BOARDS))
    ap.add_argument("--model", choices=("resnet50", "efficientnet-lite0", "all"), default="all")
    ap.add_argument("--precision", choices=Precision.labels(), default=DEFAULT_PRECISION.label)
    ap.add_argument("--per-layer", action="store_true")
    args = ap.parse_args(argv)
    for name in (("resnet50", "efficientnet-lite0") if args.model == "all" else (args.model,)):
        print_estimate(name, _catalog_model(name), args.board, args.precision, args.per_layer)
    return 0


def _catalog_model(name: str):
    from brainwave.models.catalog import build_featurizer, resolve_featurizer

    return build_featurizer(resolve_featurizer(name))


if __name__ == "__main__":
    raise SystemExit(main())
