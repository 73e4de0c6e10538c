"""A float64 reading of the compiler's graph IR (brainwave/npu/compiler/ir.py), for checking that a pass
leaves what a graph computes unchanged. Straightforward numpy, no quantization: the meaning, not the NPU."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from brainwave.npu.compiler.ir import Graph, Node, activation_of
from brainwave.npu.isa import Activation


def _act(node: Node, y: np.ndarray) -> np.ndarray:
    act = activation_of(node)
    if act == Activation.NONE:
        return y
    return np.clip(y, 0, 6 if act == Activation.RELU6 else None)


def _windows(x: np.ndarray, a: dict, kernel: tuple[int, int], fill: float) -> np.ndarray:
    """(out_h, out_w, C, KH, KW) windows of x padded with `fill`, strided."""
    t, l, b, r = a["pads"]
    padded = np.pad(x, ((t, b), (l, r), (0, 0)), constant_values=fill)
    sh, sw = a["strides"]
    return sliding_window_view(padded, kernel, axis=(0, 1))[::sh, ::sw]


def _conv(node: Node, x: np.ndarray, residual: np.ndarray | None = None) -> np.ndarray:
    a = node.attrs
    kh, kw, cg, cout = a["kernel"].shape
    win = _windows(x, a, (kh, kw), 0.0)
    groups = a["groups"]
    per_group = cout // groups
    outs = [np.einsum("hwcyx,yxco->hwo", win[:, :, g * cg:(g + 1) * cg], a["kernel"][..., g * per_group:(g + 1) * per_group])
            for g in range(groups)]
    y = np.concatenate(outs, axis=2) + a["bias"]
    return _act(node, y if residual is None else y + residual)


def _pool(node: Node, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    if node.op == "maxpool":
        return _windows(x, a, a["kernel_size"], -np.inf).max(axis=(3, 4))
    total = _windows(x, a, a["kernel_size"], 0.0).sum(axis=(3, 4))
    count = _windows(np.ones_like(x), a, a["kernel_size"], 0.0).sum(axis=(3, 4))
    return total / count  # padding cells are not counted


def _reshape(node: Node, x: np.ndarray) -> np.ndarray:
    flat = x.transpose(2, 0, 1).reshape(-1) if node.attrs["order"] == "chw" else x.reshape(-1)
    return flat.reshape(node.attrs["shape"])


def _dense(node: Node, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    n = a["kernel"].shape[0]
    rows = x.reshape(-1, n) if x.shape[2] == n else x.reshape(1, n)
    return _act(node, (rows @ a["kernel"] + a["bias"]).reshape(*(x.shape[:2] if x.shape[2] == n else (1, 1)), -1))


OPS = {
    "conv": _conv,
    "dense": _dense,
    "batchnorm": lambda n, x: (x - n.attrs["mean"]) * n.attrs["scale"] + n.attrs["offset"],
    "add": lambda n, *xs: _act(n, sum(xs)),
    "concat": lambda n, *xs: np.concatenate(xs, axis=-1),
    "activation": lambda n, x: _act(n, x),
    "maxpool": _pool,
    "avgpool": _pool,
    "global_avgpool": lambda n, x: x.mean(axis=(0, 1), keepdims=True),
    "pad": lambda n, x: np.pad(x, ((n.attrs["pads"][0], n.attrs["pads"][2]), (n.attrs["pads"][1], n.attrs["pads"][3]), (0, 0))),
    "reshape": _reshape,
}


def evaluate(graph: Graph, x: np.ndarray) -> list[np.ndarray]:
    """The graph's outputs for the H x W x C input `x`, in float64."""
    values = {graph.input: np.asarray(x, dtype=np.float64)}
    for node in graph.nodes:
        values[node.out] = OPS[node.op](node, *(values[v] for v in node.inputs))
        assert values[node.out].shape == graph.shapes[node.out], f"{node.name}: shape rule disagrees"
    return [values[v] for v in graph.outputs]
