"""Graph IR -> NPU program through `ProgramBuilder`: one instruction per node, in node order.

By the time a graph gets here the passes have turned dense layers and batch norms into convs and fused what
fuses; a node that is still not something the NPU runs is an error naming it.
"""
from __future__ import annotations

import numpy as np

from ..isa import OutputSlice, Program
from ..numerics import Precision
from .builder import CompileError, ProgramBuilder, Tensor
from .ir import Graph, Node, activation_of


class Lowering:
    def __init__(self, graph: Graph, precision: Precision) -> None:
        self.graph = graph
        self.b = ProgramBuilder(precision)
        self.values: dict[str, Tensor] = {}

    def run(self) -> Program:
        g = self.graph
        self.values[g.input] = self.b.input(g.shapes[g.input])
        for node in g.nodes:
            lower = getattr(self, f"lower_{node.op}", None)
            if lower is None:
                raise CompileError(f"{node.describe()}: no NPU instruction for IR op {node.op!r} (a pass should "
                                   "have rewritten it)")
            self.values[node.out] = lower(node, *(self.values[v] for v in node.inputs))
        if len(g.outputs) == 1:
            return self.b.build(self.values[g.outputs[0]])
        return self.packed_outputs()

    def packed_outputs(self) -> Program:
        """Several outputs: an NPU program has one output tensor, so each output is flattened (a free view) and
        they are concatenated in order; the program's `outputs` say where each one lies (docs/isa.md)."""
        g = self.graph
        flat = [self.b.reshape(self.values[v], (1, 1, int(np.prod(g.shapes[v])))) for v in g.outputs]
        packed, slices, start = flat[0], [], 0
        for value, name, tensor in zip(g.outputs, g.output_names, flat):
            slices.append(OutputSlice(name, g.shapes[value], start))
            start += tensor.size
            if tensor is not flat[0]:
                packed = self.b.concat(packed, tensor, f"outputs+{name}")
        return self.b.build(packed, tuple(slices))

    def lower_conv(self, node: Node, x: Tensor, residual: Tensor | None = None) -> Tensor:
        a = node.attrs
        kernel = a["kernel"].astype(np.float32)  # folded in float64, rounded once, then quantized by the packer
        return self.b.conv2d(x, kernel, a["bias"].astype(np.float32), strides=a["strides"], pads=a["pads"],
                             groups=a["groups"], activation=activation_of(node), residual=residual, name=node.name)

    def lower_dense(self, node: Node, x: Tensor) -> Tensor:
        raise CompileError(f"{node.describe()}: kernel {node.attrs['kernel'].shape} does not fit input {x.shape}")

    def lower_add(self, node: Node, *operands: Tensor) -> Tensor:
        """n operands: n - 1 ADDs, the activation on the last."""
        out = operands[0]
        for i, other in enumerate(operands[1:]):
            last = i == len(operands) - 2
            out = self.b.add(out, other, activation_of(node) if last else None,
                             node.name if last else node.names[0])
        return out

    def lower_concat(self, node: Node, *operands: Tensor) -> Tensor:
        """n operands: n - 1 CONCATs, each appending the next operand's channels."""
        out = operands[0]
        for i, other in enumerate(operands[1:]):
            out = self.b.concat(out, other, node.name if i == len(operands) - 2 else node.names[0])
        return out

    def lower_activation(self, node: Node, x: Tensor) -> Tensor:
        return self.b.activation(x, activation_of(node), node.name)

    def lower_maxpool(self, node: Node, x: Tensor) -> Tensor:
        return self.b.maxpool(x, node.attrs["kernel_size"], node.attrs["strides"], node.attrs["pads"], node.name)

    def lower_avgpool(self, node: Node, x: Tensor) -> Tensor:
        return self.b.avgpool(x, node.attrs["kernel_size"], node.attrs["strides"], node.attrs["pads"], node.name)

    def lower_global_avgpool(self, node: Node, x: Tensor) -> Tensor:
        return self.b.global_avgpool(x, node.name)

    def lower_pad(self, node: Node, x: Tensor) -> Tensor:
        return self.b.pad(x, node.attrs["pads"], node.name)

    def lower_reshape(self, node: Node, x: Tensor) -> Tensor:
        h, w, c = x.shape
        if node.attrs["order"] == "chw" and h * w > 1 and c > 1:
            raise CompileError(f"{node.describe()}: flattening a {c} x {h} x {w} tensor channels-first reorders "
                               "it on the NPU's channels-last layout; only a Gemm/MatMul right after it can take "
                               "that order (in its weights)")
        return self.b.reshape(x, node.attrs["shape"])


def lower(graph: Graph, precision: "str | Precision") -> Program:
    return Lowering(graph, Precision.parse(precision)).run()
