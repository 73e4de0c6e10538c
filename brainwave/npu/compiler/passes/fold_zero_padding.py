"""Fold a zero padding into the convolution that is its only reader: the conv's pads grow by the padding's.

The NPU skips window cells outside its input, which is what multiplying by padded zeros gives, so
`pad(x) -> conv` becomes one CONV2D reading x (Keras ZeroPadding2D + 'valid' Conv2D; ONNX Pad + Conv). Pools
are left alone: they skip padding cells instead of counting zeros, so a padded maxpool is not the same thing.
"""
from __future__ import annotations

from ..ir import Graph, Node


class FoldZeroPadding:
    name = "fold-zero-padding"

    def match(self, graph: Graph, node: Node) -> Node | None:
        if node.op != "pad":
            return None
        conv = graph.sole_consumer(node.out)
        if conv is None or conv.op != "conv" or conv.inputs.count(node.out) != 1 or conv.inputs[0] != node.out:
            return None  # a padded residual operand is a tensor, not padding
        return conv

    def transform(self, graph: Graph, node: Node, conv: Node) -> None:
        conv.attrs["pads"] = tuple(a + b for a, b in zip(node.attrs["pads"], conv.attrs["pads"]))
        conv.inputs[0] = node.inputs[0]
        graph.nodes.remove(node)
