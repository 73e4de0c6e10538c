"""A batch norm with no convolution to fold into is a 1x1 depthwise convolution (one weight per channel)."""
from __future__ import annotations

import numpy as np

from ...isa import Activation
from ..ir import Graph, Node
from .fold_batchnorm import fold


class BatchNormToDepthwise:
    name = "batchnorm-to-depthwise"

    def match(self, graph: Graph, node: Node) -> bool | None:
        return True if node.op == "batchnorm" else None

    def transform(self, graph: Graph, node: Node, found: bool) -> None:
        channels = graph.shapes[node.inputs[0]][2]
        kernel, bias = fold(np.ones((1, 1, 1, channels)), np.zeros(channels), node.attrs)
        node.op = "conv"
        node.attrs = {"kernel": kernel, "bias": bias, "strides": (1, 1), "pads": (0, 0, 0, 0), "groups": channels,
                      "activation": Activation.NONE}
