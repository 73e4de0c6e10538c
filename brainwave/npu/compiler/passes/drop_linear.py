"""Drop linear activations nothing absorbed: they compute nothing (Keras Activation('linear'))."""
from __future__ import annotations

from ...isa import Activation
from ..ir import Graph, Node, activation_of


class DropLinear:
    name = "drop-linear"

    def match(self, graph: Graph, node: Node) -> bool | None:
        return True if node.op == "activation" and activation_of(node) == Activation.NONE else None

    def transform(self, graph: Graph, node: Node, found: bool) -> None:
        graph.bypass(node)
