"""The compiler's graph IR: what frontends produce, passes rewrite and `lowering` turns into a program.

A `Graph` is a list of `Node`s in topological order over named values. Every value is an H x W x C tensor
(batch 1, channels last: the NPU's layout), so frontends translate their framework's layout once, at the
graph's edges (`Layout`). Weights are float64 numpy arrays in node attributes: passes fold in float64 and
`lowering` rounds to float32 once, just before quantization (docs/numerics.md).

The ops (docs/compiler.md has the table with every attribute):

    conv            x [, residual]   kernel (KH, KW, C/groups, Cout), bias, strides, pads, groups, activation
    dense           x                kernel (N, Cout), bias, activation            (becomes a conv)
    batchnorm       x                scale, mean, offset: (x - mean) * scale + offset per channel
    add             x1 .. xn         activation
    concat          x1 .. xn         (along the channel axis)
    activation      x                activation (NONE, RELU, RELU6)
    maxpool/avgpool x                kernel, strides, pads (padding cells skipped)
    global_avgpool  x
    pad             x                pads (zeros)
    reshape         x                shape, order ("hwc", or "chw": a flatten in channels-first order)

Node order is instruction order: a pass that fuses nodes keeps the first node's place, so the arena layout
and the program bytes do not depend on how the graph was rewritten, only on what it ends up as.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..isa import Activation
from .builder import CompileError, output_size

Shape = tuple[int, int, int]
Pads = tuple[int, int, int, int]  # top, left, bottom, right


@dataclass(eq=False)
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # source layers/nodes it computes, in order ("+"-joined)
    source: str = ""  # the framework's op type of the first one, for error messages

    @property
    def name(self) -> str:
        return "+".join(self.names)

    @property
    def out(self) -> str:
        return self.outputs[0]

    def describe(self) -> str:
        return f"{self.names[0]!r} ({self.source or self.op})"


@dataclass(frozen=True)
class Layout:
    """How a framework tensor at the graph's edge maps onto the NPU's H x W x C tensor: `shape` is the
    framework's shape (with its batch axis of 1), `frame` the same data as a 4-D tensor in the framework's axis
    order, and `perm` the transpose that takes `frame` to (1, H, W, C)."""

    shape: tuple[int, ...]
    frame: tuple[int, int, int, int]
    perm: tuple[int, int, int, int]

    def to_npu(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(np.reshape(x, self.frame), self.perm)[0])

    def from_npu(self, y: np.ndarray) -> np.ndarray:
        return np.reshape(np.transpose(y[np.newaxis], np.argsort(self.perm)), self.shape)


def nhwc(shape: Shape) -> Layout:
    return Layout((1, *shape), (1, *shape), (0, 1, 2, 3))


# ---- shapes: one rule per op, from the input shapes and the attributes
def _window(shapes: list[Shape], a: dict) -> Shape:
    h, w, c = shapes[0]
    (kh, kw), (sh, sw), (t, l, b, r) = a["kernel_size"], a["strides"], a["pads"]
    return output_size(h, kh, sh, t, b), output_size(w, kw, sw, l, r), c


def _conv(shapes: list[Shape], a: dict) -> Shape:
    kh, kw, cg, cout = a["kernel"].shape
    oh, ow, cin = _window(shapes, {**a, "kernel_size": (kh, kw)})
    if a["groups"] < 1 or cin % a["groups"] or cout % a["groups"] or cin // a["groups"] != cg:
        raise CompileError(f"kernel {a['kernel'].shape} with groups={a['groups']} does not fit {cin} input channels")
    return oh, ow, cout


def _same(shapes: list[Shape], a: dict) -> Shape:
    if any(s != shapes[0] for s in shapes):
        raise CompileError(f"operand shapes {shapes} differ")
    return shapes[0]


def _concat(shapes: list[Shape], a: dict) -> Shape:
    if len(shapes) < 2 or any(s[:2] != shapes[0][:2] for s in shapes):
        raise CompileError(f"cannot concatenate {shapes} along the channels (height and width must agree)")
    return (*shapes[0][:2], sum(s[2] for s in shapes))


def _pad(shapes: list[Shape], a: dict) -> Shape:
    (h, w, c), (t, l, b, r) = shapes[0], a["pads"]
    return h + t + b, w + l + r, c


def _dense(shapes: list[Shape], a: dict) -> Shape:
    (h, w, c), (n, cout) = shapes[0], a["kernel"].shape
    if c == n:  # per pixel (on 1 x 1 x N: the usual classifier)
        return h, w, cout
    if h * w * c == n:  # over the whole tensor, as after a flatten
        return 1, 1, cout
    raise CompileError(f"kernel {a['kernel'].shape} does not fit input {shapes[0]}")


def _reshape(shapes: list[Shape], a: dict) -> Shape:
    if int(np.prod(a["shape"])) != int(np.prod(shapes[0])):
        raise CompileError(f"cannot reshape {shapes[0]} to {a['shape']}")
    return tuple(a["shape"])


SHAPE_RULES: dict[str, Callable[[list[Shape], dict], Shape]] = {
    "conv": _conv,
    "dense": _dense,
    "batchnorm": _same,
    "add": _same,
    "concat": _concat,
    "activation": _same,
    "maxpool": _window,
    "avgpool": _window,
    "global_avgpool": lambda s, a: (1, 1, s[0][2]),
    "pad": _pad,
    "reshape": _reshape,
}


class Graph:
    """Nodes in topological order over named H x W x C values; one input, one or more outputs."""

    def __init__(self, input_name: str, input_shape: Shape, name: str = "model") -> None:
        self.name = name
        self.input = input_name
        self.shapes: dict[str, Shape] = {input_name: tuple(int(s) for s in input_shape)}
        self.nodes: list[Node] = []
        self.outputs: list[str] = []
        self.input_layout: Layout = nhwc(self.shapes[input_name])
        self.output_layouts: list[Layout] = []
        self.output_names: list[str] = []  # the framework's names of the outputs (a program's OutputSlices)
        self._fresh = itertools.count()

    # ---- building
    def fresh(self, hint: str) -> str:
        """A value name not used yet."""
        while True:
            name = f"{hint}:{next(self._fresh)}"
            if name not in self.shapes:
                return name

    def add(self, op: str, inputs: list[str], attrs: dict | None = None, name: str = "", source: str = "") -> str:
        """Append a node, infer its output shape and return the output's value name."""
        node = Node(op, list(inputs), [self.fresh(name or op)], dict(attrs or {}), [name or op], source)
        try:
            shape = SHAPE_RULES[op]([self.shapes[v] for v in inputs], node.attrs)
        except CompileError as exc:
            raise CompileError(f"{node.describe()}: {exc}") from None
        self.shapes[node.out] = tuple(int(s) for s in shape)
        self.nodes.append(node)
        return node.out

    def set_outputs(self, outputs: list[str], layouts: list[Layout] | None = None,
                    names: list[str] | None = None) -> None:
        self.outputs = list(outputs)
        self.output_layouts = layouts or [nhwc(self.shapes[v]) for v in outputs]
        self.output_names = list(names) if names is not None else list(outputs)

    # ---- queries
    def producer(self, value: str) -> Node | None:
        return next((n for n in self.nodes if value in n.outputs), None)

    def consumers(self, value: str) -> list[Node]:
        return [n for n in self.nodes if value in n.inputs]

    def sole_consumer(self, value: str) -> Node | None:
        """The one node reading `value`, if exactly one does and `value` is not a graph output."""
        users = self.consumers(value)
        return users[0] if len(users) == 1 and value not in self.outputs else None

    def computed_before(self, value: str, node: Node) -> bool:
        """Whether `value` exists when `node` runs (the input, or made by an earlier node)."""
        made_by = self.producer(value)
        return made_by is None or self.nodes.index(made_by) < self.nodes.index(node)

    # ---- rewriting
    def absorb(self, head: Node, tail: Node) -> None:
        """`head` now also computes `tail` (which reads head's output): it takes over tail's output and name."""
        head.outputs = tail.outputs
        head.names += tail.names
        self.nodes.remove(tail)

    def bypass(self, node: Node) -> None:
        """Remove a node that passes its first input through: its readers (and the outputs) read that input."""
        self.replace_uses(node.out, node.inputs[0])
        self.nodes.remove(node)

    def replace_uses(self, old: str, new: str) -> None:
        for n in self.nodes:
            n.inputs = [new if v == old else v for v in n.inputs]
        self.outputs = [new if v == old else v for v in self.outputs]

    def prune(self) -> None:
        """Drop nodes nothing reads (e.g. a flatten a dense no longer needs)."""
        live = set(self.outputs)
        kept = []
        for node in reversed(self.nodes):
            if live.intersection(node.outputs):
                kept.append(node)
                live.update(node.inputs)
        self.nodes = kept[::-1]

    def __repr__(self) -> str:
        lines = [f"graph {self.name}: input {self.input} {self.shapes[self.input]}"]
        lines += [f"  {n.out} {self.shapes[n.out]} = {n.op}({', '.join(n.inputs)})  # {n.name}" for n in self.nodes]
        return "\n".join(lines + [f"  outputs: {', '.join(self.outputs)}"])


def activation_of(node: Node) -> Activation:
    return Activation(node.attrs.get("activation", Activation.NONE))
