"""Fold a batch norm into the convolution before it: kernel * scale, (bias - mean) * scale + offset.

Only while the conv has neither an activation nor a residual yet (both come after the batch norm in the
arithmetic). Folding happens in float64 and is rounded to float32 once, at lowering, then quantized
(docs/numerics.md "Where quantization happens"). A batch norm here is any per-channel (x - mean) * scale +
offset: frontends express inference batch norms and constant per-channel Mul/Add/Sub/Div this way, so a
chain of them folds one after the other.
"""
from __future__ import annotations

import numpy as np

from ...isa import Activation
from ..ir import Graph, Node, activation_of


def fold(kernel: np.ndarray, bias: np.ndarray, bn: dict) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of a MAC followed by the batch norm `bn`; the output channel is the kernel's last axis."""
    scale = bn["scale"]
    return kernel * scale, (bias - bn["mean"]) * scale + bn["offset"]


class FoldBatchNorm:
    name = "fold-batchnorm"

    def match(self, graph: Graph, node: Node) -> Node | None:
        if node.op != "conv" or len(node.inputs) != 1 or activation_of(node) != Activation.NONE:
            return None
        bn = graph.sole_consumer(node.out)
        return bn if bn is not None and bn.op == "batchnorm" else None

    def transform(self, graph: Graph, node: Node, bn: Node) -> None:
        node.attrs["kernel"], node.attrs["bias"] = fold(node.attrs["kernel"], node.attrs["bias"], bn.attrs)
        graph.absorb(node, bn)
