"""Dense layers become convolutions: on H x W x N a 1x1 conv per pixel, after a flatten a conv whose kernel
covers the whole unflattened tensor (so weight blocks stay per pixel, as in every other CONV2D).

A flatten in channels-first order (ONNX Flatten of an N x C x H x W tensor) lists the dense kernel's rows as
(c, h, w); they are reordered to the NPU's (h, w, c) here, so the flatten itself costs nothing.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node


class DenseToConv:
    name = "dense-to-conv"

    def match(self, graph: Graph, node: Node) -> tuple[str, np.ndarray] | None:
        if node.op != "dense":
            return None
        kernel = node.attrs["kernel"]
        n, cout = kernel.shape
        x = node.inputs[0]
        src, order = x, "hwc"
        while (view := graph.producer(src)) is not None and view.op == "reshape" and graph.shapes[src][:2] == (1, 1):
            src, order = view.inputs[0], view.attrs["order"]  # look through flattens to 1 x 1 x N
        h, w, c = graph.shapes[src]
        if h * w * c == n and not (graph.shapes[x][2] == n and graph.shapes[x][:2] != (1, 1)):
            if order == "chw":
                return src, kernel.reshape(c, h, w, cout).transpose(1, 2, 0, 3)
            return src, kernel.reshape(h, w, c, cout)
        if graph.shapes[x][2] == n:
            return x, kernel.reshape(1, 1, n, cout)
        return None  # lowering reports the misfit

    def transform(self, graph: Graph, node: Node, found: tuple[str, np.ndarray]) -> None:
        src, kernel = found
        node.op = "conv"
        node.inputs = [src]
        node.attrs = {**node.attrs, "kernel": kernel, "strides": (1, 1), "pads": (0, 0, 0, 0), "groups": 1}
