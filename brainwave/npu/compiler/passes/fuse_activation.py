"""Fuse an activation into the convolution or add before it (CONV2D and ADD apply one on their output).

The absorbed node's name joins the instruction's even when it is linear, so the program says which layers an
instruction computes. Only one activation per instruction: a second one stays on its own.
"""
from __future__ import annotations

from ...isa import Activation
from ..ir import Graph, Node, activation_of


class FuseActivation:
    name = "fuse-activation"

    def match(self, graph: Graph, node: Node) -> Node | None:
        if node.op not in ("conv", "add") or activation_of(node) != Activation.NONE:
            return None
        act = graph.sole_consumer(node.out)
        return act if act is not None and act.op == "activation" else None

    def transform(self, graph: Graph, node: Node, act: Node) -> None:
        node.attrs["activation"] = activation_of(act)
        graph.absorb(node, act)
