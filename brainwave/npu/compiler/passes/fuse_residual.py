"""Fuse a two-operand add into the convolution feeding it: the other operand becomes the CONV2D's residual,
added to the accumulator before the activation (docs/isa.md, `has_residual`).

Only while the conv has no activation (the add comes first) and when the other operand already exists when
the conv runs: in ResNet's blocks the shortcut is computed before the last conv of the branch, so that conv
takes the add (and the ReLU after it, through fuse-activation).
"""
from __future__ import annotations

from ...isa import Activation
from ..ir import Graph, Node, activation_of


class FuseResidual:
    name = "fuse-residual"

    def match(self, graph: Graph, node: Node) -> tuple[Node, str] | None:
        if node.op != "conv" or len(node.inputs) != 1 or activation_of(node) != Activation.NONE:
            return None
        add = graph.sole_consumer(node.out)
        if add is None or add.op != "add" or len(add.inputs) != 2 or activation_of(add) != Activation.NONE:
            return None
        others = [v for v in add.inputs if v != node.out]
        if len(others) != 1 or not graph.computed_before(others[0], node):
            return None
        return add, others[0]

    def transform(self, graph: Graph, node: Node, found: tuple[Node, str]) -> None:
        add, other = found
        node.inputs.append(other)
        graph.absorb(node, add)
