"""ONNX model (opsets 13-21) -> graph IR; `compile_onnx` runs the passes and lowers it.

Each ONNX node becomes at most one IR node. Layout changes (Transpose, no-op Reshape/Flatten/Squeeze) and
inference no-ops (Identity, Dropout) become none: onnx_layout.py keeps track of where each ONNX tensor sits in
the NPU's channels-last arena, and `OnnxProgram` converts the model's input and output at the edges. A
constant per-channel Mul/Add/Sub/Div is a batch norm (exporters write inference batch norms that way), so it
folds into the convolution before it. Anything else is an `UnsupportedOpError` naming the node, its op type and
the nearest supported op.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..isa import Activation, Program
from ..numerics import DEFAULT_PRECISION, Precision
from .builder import CompileError, resolve_pads
from .errors import UnsupportedOpError, nearest
from .ir import Graph, Layout
from .lowering import lower
from .onnx_layout import channel_axis, is_nchw, keeps_order, nchw, physical, transposed
from .passes import run_passes

OPSETS = range(13, 22)
_NO_OPS = ("Identity", "Dropout")
_INSTEAD = {"Sigmoid": "Relu or Clip(0, 6)",
            "HardSigmoid": "Clip(0, 6)", "HardSwish": "Clip(0, 6)", "LeakyRelu": "Relu", "PRelu": "Relu",
            "Elu": "Relu", "Selu": "Relu", "Gelu": "Relu", "Softmax": "end the featurizer before Softmax and run "
            "it in a CPU stage (type: onnx)", "ConvTranspose": "Conv", "Resize": "none on the NPU (a CPU stage)",
            "ReduceMean": "GlobalAveragePool", "ReduceMax": "GlobalMaxPool", "Sum": "Add", "MatMulInteger": "MatMul",
            "QLinearConv": "Conv (float weights; the NPU quantizes them itself)"}


@dataclass(frozen=True)
class OnnxProgram:
    """An NPU program with the layouts of the ONNX model's input and output: `run` takes and returns arrays
    shaped as the ONNX model's."""

    program: Program
    input: Layout
    output: Layout

    def run(self, executor, x: np.ndarray) -> np.ndarray:
        return self.output.from_npu(executor.run(self.program, self.input.to_npu(x)))


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class OnnxFrontend:
    def __init__(self, model) -> None:
        from onnx import numpy_helper

        self.model = model
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if opset not in OPSETS:
            raise CompileError(f"ONNX opset {opset}: the NPU compiler reads opsets {OPSETS[0]}-{OPSETS[-1]} "
                               "(re-export, or convert with onnx.version_converter)")
        g = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.tensors: dict[str, tuple[str, Layout]] = {}  # ONNX value -> (IR value, layout)
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1 or len(g.output) != 1:
            raise CompileError(f"the model has {len(inputs)} inputs and {len(g.output)} outputs; an NPU featurizer "
                               "has one of each")
        source = inputs[0]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in source.type.tensor_type.shape.dim]
        if len(dims) != 4 or dims[0] not in (None, 1) or any(not d for d in dims[1:]):
            raise CompileError(f"input {source.name!r} has shape {dims}; the NPU needs (1, C, H, W) or (1, H, W, C) "
                               "with fixed sizes (export with a fixed image size)")
        shape = (1, *dims[1:])
        readers = [n for n in g.node if source.name in n.input]
        from_nhwc = readers and all(n.op_type == "Transpose" and list(_attrs(n).get("perm", [])) == [0, 3, 1, 2]
                                    for n in readers)  # an NHWC model (tf2onnx) transposes its input first
        layout = Layout(shape, shape, (0, 1, 2, 3)) if from_nhwc else nchw(shape)
        self.graph = Graph(source.name, physical(layout), g.name or "onnx")
        self.graph.input_layout = layout
        self.tensors[source.name] = (source.name, layout)

    def run(self) -> Graph:
        for index, node in enumerate(self.model.graph.node):
            self.convert(node, node.name or f"{node.op_type}_{index}")
        out = self.model.graph.output[0].name
        value, layout = self.tensor(out, "the graph output")
        self.graph.set_outputs([value], [layout])
        return self.graph

    # ---- helpers
    def fail(self, node, name: str, why: str, alternative: str | None = None) -> UnsupportedOpError:
        return UnsupportedOpError("node", name, node.op_type, why, alternative)

    def tensor(self, value: str, what: str) -> tuple[str, Layout]:
        if value not in self.tensors:
            raise CompileError(f"{what} {value!r} is not computed from the model input (a constant or a missing "
                               "value: the NPU runs a chain of ops on one input)")
        return self.tensors[value]

    def const(self, node, name: str, i: int, what: str) -> np.ndarray | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        if node.input[i] not in self.consts:
            raise self.fail(node, name, f"its {what} must be a constant (an initializer or Constant node)")
        return self.consts[node.input[i]]

    def spatial(self, node, name: str) -> str:
        value, layout = self.tensor(node.input[0], f"{name}: input")
        if not is_nchw(layout):
            raise self.fail(node, name, f"it reads a tensor of shape {layout.shape} that is not N x C x H x W here")
        return value

    def emit(self, node, name: str, op: str, inputs: list[str], attrs: dict) -> None:
        value = self.graph.add(op, inputs, attrs, name, node.op_type)
        h, w, c = self.graph.shapes[value]
        self.tensors[node.output[0]] = (value, nchw((1, c, h, w)))

    def keep(self, node, value: str, layout: Layout) -> None:
        self.tensors[node.output[0]] = (value, layout)

    def convert(self, node, name: str) -> None:
        if node.domain not in ("", "ai.onnx"):
            raise self.fail(node, name, f"custom op domain {node.domain!r}")
        if node.op_type == "Constant":
            from onnx import numpy_helper

            attrs = _attrs(node)
            if "value" not in attrs:
                raise self.fail(node, name, "only tensor constants are supported", "Constant with a 'value' tensor")
            self.consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
        elif node.op_type in _NO_OPS:
            self.keep(node, *self.tensor(node.input[0], f"{name}: input"))
        elif (convert := getattr(self, f"op_{node.op_type}", None)) is not None:
            convert(node, name, _attrs(node))
        else:
            raise self.fail(node, name, "no NPU lowering for this op type",
                            nearest(node.op_type, [m[3:] for m in dir(self) if m.startswith("op_")], _INSTEAD))

    # ---- window ops
    def pads(self, node, name: str, a: dict, shape, kernel, strides) -> tuple[int, int, int, int]:
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.fail(node, name, f"dilations {a['dilations']} (the NPU convolves densely)", "dilations 1")
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            (t, l, b, r), _ = resolve_pads(shape, kernel, strides, "same")
            return (b, r, t, l) if auto == "SAME_LOWER" else (t, l, b, r)
        if auto == "VALID":
            return 0, 0, 0, 0
        t, l, b, r = a.get("pads", [0, 0, 0, 0])
        return t, l, b, r

    def op_Conv(self, node, name: str, a: dict) -> None:
        x = self.spatial(node, name)
        weight = self.const(node, name, 1, "weight")
        bias = self.const(node, name, 2, "bias")
        if weight is None or weight.ndim != 4:
            raise self.fail(node, name, "only 2-D convolutions are supported")
        kernel = weight.astype(np.float64).transpose(2, 3, 1, 0)  # O, I/g, KH, KW -> KH, KW, I/g, O
        strides = tuple(a.get("strides", [1, 1]))
        pads = self.pads(node, name, a, self.graph.shapes[x], kernel.shape[:2], strides)
        self.emit(node, name, "conv", [x], dict(
            kernel=kernel, bias=np.zeros(kernel.shape[3]) if bias is None else bias.astype(np.float64),
            strides=strides, pads=pads, groups=int(a.get("group", 1)), activation=Activation.NONE))

    def op_MaxPool(self, node, name: str, a: dict) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise self.fail(node, name, "the NPU returns no argmax indices", "MaxPool with one output")
        self.pool(node, name, a, "maxpool")

    def op_AveragePool(self, node, name: str, a: dict) -> None:
        self.pool(node, name, a, "avgpool")

    def pool(self, node, name: str, a: dict, op: str) -> None:
        x = self.spatial(node, name)
        kernel, strides = tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1]))
        h, w, _ = self.graph.shapes[x]
        t, l, b, r = self.pads(node, name, a, (h, w, 0), kernel, strides)
        if a.get("count_include_pad", 0) and any((t, l, b, r)):
            if a.get("ceil_mode", 0):
                raise self.fail(node, name, "count_include_pad with ceil_mode", "AveragePool with one of them")
            x = self.graph.add("pad", [x], dict(pads=(t, l, b, r)), f"{name}/pad", node.op_type)
            h, w, t, l, b, r = h + t + b, w + l + r, 0, 0, 0, 0  # padded zeros are counted: pad them for real
        if a.get("ceil_mode", 0):  # extra bottom/right cells, skipped like padding, give the ceil window count
            b += _ceil_extra(h, t, b, kernel[0], strides[0])
            r += _ceil_extra(w, l, r, kernel[1], strides[1])
        self.emit(node, name, op, [x], dict(kernel_size=kernel, strides=strides, pads=(t, l, b, r)))

    def op_GlobalAveragePool(self, node, name: str, a: dict) -> None:
        self.emit(node, name, "global_avgpool", [self.spatial(node, name)], {})

    def op_GlobalMaxPool(self, node, name: str, a: dict) -> None:
        x = self.spatial(node, name)
        self.emit(node, name, "maxpool", [x], dict(kernel_size=self.graph.shapes[x][:2], strides=(1, 1),
                                                   pads=(0, 0, 0, 0)))

    def op_Pad(self, node, name: str, a: dict) -> None:
        x = self.spatial(node, name)
        pads = self.const(node, name, 1, "pads")
        value = self.const(node, name, 2, "constant_value")
        axes = self.const(node, name, 3, "axes")
        if a.get("mode", b"constant") not in (b"constant", "constant") or (value is not None and np.any(value != 0)):
            raise self.fail(node, name, "only zero padding is supported", "Pad with mode 'constant' and value 0")
        full = np.zeros(8, dtype=np.int64)
        for i, axis in enumerate([0, 1, 2, 3] if axes is None else [int(x) % 4 for x in axes]):
            full[axis], full[axis + 4] = pads[i], pads[i + len(pads) // 2]
        if np.any(full < 0) or np.any(full[[0, 1, 4, 5]]):
            raise self.fail(node, name, "only non-negative padding of H and W is supported", "Pad on axes 2 and 3")
        self.emit(node, name, "pad", [x], dict(pads=(int(full[2]), int(full[3]), int(full[6]), int(full[7]))))

    # ---- dense
    def op_Gemm(self, node, name: str, a: dict) -> None:
        if a.get("transA", 0):
            raise self.fail(node, name, "transA=1", "Gemm with transA=0")
        weight = self.const(node, name, 1, "B")
        bias = self.const(node, name, 2, "C")
        kernel = weight.astype(np.float64) * a.get("alpha", 1.0)
        kernel = kernel.T if a.get("transB", 0) else kernel
        bias = np.zeros(kernel.shape[1]) if bias is None else np.broadcast_to(bias.astype(np.float64) * a.get("beta", 1.0),
                                                                              (kernel.shape[1],))
        self.dense(node, name, kernel, bias)

    def op_MatMul(self, node, name: str, a: dict) -> None:
        weight = self.const(node, name, 1, "second operand")
        if weight.ndim != 2:
            raise self.fail(node, name, f"a {weight.ndim}-D weight", "MatMul by a 2-D constant")
        self.dense(node, name, weight.astype(np.float64), np.zeros(weight.shape[1]))

    def dense(self, node, name: str, kernel: np.ndarray, bias: np.ndarray) -> None:
        x, layout = self.tensor(node.input[0], f"{name}: input")
        if len(layout.shape) != 2 or layout.shape[0] != 1:
            raise self.fail(node, name, f"it multiplies a tensor of shape {layout.shape}", "Flatten before it")
        value = self.graph.add("dense", [x], dict(kernel=kernel, bias=bias.copy(), activation=Activation.NONE), name,
                               node.op_type)
        self.keep(node, value, nchw((1, kernel.shape[1])))

    def op_BatchNormalization(self, node, name: str, a: dict) -> None:
        if a.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
            raise self.fail(node, name, "training mode", "BatchNormalization in inference mode")
        gamma, beta, mean, var = (self.const(node, name, i, what).astype(np.float64)
                                  for i, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
        x = self.spatial(node, name)
        self.emit(node, name, "batchnorm", [x], dict(scale=gamma / np.sqrt(var + a.get("epsilon", 1e-5)),
                                                     mean=mean, offset=beta))

    # ---- elementwise
    def op_Relu(self, node, name: str, a: dict) -> None:
        self.activation(node, name, Activation.RELU)

    def op_Clip(self, node, name: str, a: dict) -> None:
        low, high = (self.const(node, name, i, what) for i, what in ((1, "min"), (2, "max")))
        low = -np.inf if low is None else float(low)
        high = np.inf if high is None else float(high)
        if low != 0 or high not in (6, np.inf):
            raise self.fail(node, name, f"Clip({low}, {high}): the NPU has relu and relu6", "Relu or Clip(0, 6)")
        self.activation(node, name, Activation.RELU6 if high == 6 else Activation.RELU)

    def activation(self, node, name: str, act: Activation) -> None:
        x, layout = self.tensor(node.input[0], f"{name}: input")
        self.keep(node, self.graph.add("activation", [x], dict(activation=act), name, node.op_type), layout)

    def op_Add(self, node, name: str, a: dict) -> None:
        if all(v in self.tensors for v in node.input):
            (x, lx), (y, ly) = (self.tensor(v, f"{name}: input") for v in node.input)
            if lx != ly:
                raise self.fail(node, name, f"operands {lx.shape} and {ly.shape} are laid out differently "
                                            "(broadcasting or transposed operands)", "Add of two same-shaped tensors")
            self.keep(node, self.graph.add("add", [x, y], dict(activation=Activation.NONE), name, node.op_type), lx)
        else:
            self.per_channel(node, name, lambda c: dict(offset=c))

    def op_Concat(self, node, name: str, a: dict) -> None:
        """Concatenation along the channels (the NPU's CONCAT): every operand a 4-D tensor laid out alike."""
        operands = [self.tensor(v, f"{name}: input") for v in node.input]
        layout = operands[0][1]
        axis = a.get("axis", 1) % max(len(layout.shape), 1)
        if len(layout.shape) != 4 or layout.frame != layout.shape or channel_axis(layout) != axis:
            raise self.fail(node, name, f"a concatenation along axis {a.get('axis', 1)} of a tensor of shape "
                                        f"{layout.shape} (the NPU concatenates channels only)", "Concat on the channel axis")
        if any(other.perm != layout.perm for _, other in operands):
            raise self.fail(node, name, "its operands are laid out differently", "Concat of alike tensors")
        shape = list(layout.shape)
        shape[axis] = sum(other.shape[axis] for _, other in operands)
        value = self.graph.add("concat", [v for v, _ in operands], {}, name, node.op_type)
        self.keep(node, value, Layout(tuple(shape), tuple(shape), layout.perm))

    def op_Mul(self, node, name: str, a: dict) -> None:
        self.per_channel(node, name, lambda c: dict(scale=c))

    def op_Sub(self, node, name: str, a: dict) -> None:
        self.per_channel(node, name, lambda c: dict(mean=c), commutes=False)

    def op_Div(self, node, name: str, a: dict) -> None:
        self.per_channel(node, name, lambda c: dict(scale=1.0 / c), commutes=False)

    def per_channel(self, node, name: str, terms, commutes: bool = True) -> None:
        """x (op) constant, the constant the same for every pixel of a channel: a batch norm."""
        if node.input[0] not in self.tensors and not commutes:
            raise self.fail(node, name, "a constant minus or divided by a tensor", "Sub/Div of a tensor by a constant")
        first, second = node.input if node.input[0] in self.tensors else node.input[::-1]
        (x, layout), c = self.tensor(first, f"{name}: input"), self.consts.get(second)
        axis = channel_axis(layout)
        if c is None or axis is None or np.broadcast_shapes(c.shape, layout.shape) != layout.shape:
            raise self.fail(node, name, "only an operation with a per-channel constant is supported",
                            "BatchNormalization, or Add of two same-shaped tensors")
        full = np.moveaxis(np.broadcast_to(c.astype(np.float64), layout.shape), axis, -1).reshape(-1, layout.shape[axis])
        if np.any(full != full[0]):
            raise self.fail(node, name, "its constant varies within a channel", "a per-channel constant")
        channels = layout.shape[axis]
        attrs = {"scale": np.ones(channels), "mean": np.zeros(channels), "offset": np.zeros(channels), **terms(full[0])}
        self.keep(node, self.graph.add("batchnorm", [x], attrs, name, node.op_type), layout)

    # ---- layout only
    def op_Transpose(self, node, name: str, a: dict) -> None:
        x, layout = self.tensor(node.input[0], f"{name}: input")
        perm = tuple(a.get("perm", range(len(layout.shape))[::-1]))
        if len(layout.shape) != 4:
            raise self.fail(node, name, f"a transpose of a {len(layout.shape)}-D tensor", "Transpose of a 4-D tensor")
        self.keep(node, x, transposed(layout, perm))

    def op_Reshape(self, node, name: str, a: dict) -> None:
        _, layout = self.tensor(node.input[0], f"{name}: input")
        shape = [int(d) for d in self.const(node, name, 1, "shape")]
        shape = [layout.shape[i] if d == 0 and not a.get("allowzero", 0) else d for i, d in enumerate(shape)]
        if -1 in shape:
            shape[shape.index(-1)] = int(np.prod(layout.shape)) // -int(np.prod(shape))
        self.reshape(node, name, tuple(shape))

    def op_Flatten(self, node, name: str, a: dict) -> None:
        _, layout = self.tensor(node.input[0], f"{name}: input")
        axis = a.get("axis", 1) + (len(layout.shape) if a.get("axis", 1) < 0 else 0)
        self.reshape(node, name, (int(np.prod(layout.shape[:axis])), int(np.prod(layout.shape[axis:]))))

    def op_Squeeze(self, node, name: str, a: dict) -> None:
        _, layout = self.tensor(node.input[0], f"{name}: input")
        axes = self.const(node, name, 1, "axes")
        rank = len(layout.shape)
        drop = {int(x) % rank for x in axes} if axes is not None else {i for i, d in enumerate(layout.shape) if d == 1}
        self.reshape(node, name, tuple(d for i, d in enumerate(layout.shape) if i not in drop))

    def op_Unsqueeze(self, node, name: str, a: dict) -> None:
        _, layout = self.tensor(node.input[0], f"{name}: input")
        axes = self.const(node, name, 1, "axes")
        rank = len(layout.shape) + len(axes)
        shape = list(layout.shape)
        for axis in sorted(int(x) % rank for x in axes):
            shape.insert(axis, 1)
        self.reshape(node, name, tuple(shape))

    def reshape(self, node, name: str, shape: tuple[int, ...]) -> None:
        """A reshape is free when the arena already holds the elements in the new shape's order."""
        x, layout = self.tensor(node.input[0], f"{name}: input")
        target = nchw(shape)
        if int(np.prod(shape)) != int(np.prod(layout.shape)) or shape[:1] not in ((1,), ()) or not keeps_order(target):
            raise self.fail(node, name, f"reshaping {layout.shape} to {shape} moves data on the NPU",
                            "Flatten/Reshape to (1, N), or Reshape that keeps N x C x H x W order")
        if not keeps_order(layout):  # channels-first flatten: only a dense layer right after can take it
            if len(shape) != 2:
                raise self.fail(node, name, f"reshaping {layout.shape} to {shape} moves data on the NPU",
                                "Flatten before a Gemm/MatMul")
            value = self.graph.add("reshape", [x], dict(shape=physical(target), order="chw"), name, node.op_type)
        elif physical(target) != self.graph.shapes[x]:
            value = self.graph.add("reshape", [x], dict(shape=physical(target), order="hwc"), name, node.op_type)
        else:
            value = x
        self.keep(node, value, target)


def _ceil_extra(size: int, before: int, after: int, kernel: int, stride: int) -> int:
    """Cells to add after the input so that floor division counts the windows ceil_mode counts (ONNX and
    PyTorch drop a last window that would start in the end padding)."""
    span = size + before + after - kernel
    windows = -(-span // stride) + 1
    if (windows - 1) * stride >= size + before:
        windows -= 1
    return max((windows - 1) * stride + kernel - (size + before + after), 0)


def onnx_graph(model) -> Graph:
    """The IR of an ONNX model (a ModelProto), before any pass."""
    return OnnxFrontend(model).run()


def compile_onnx(model, precision: "str | Precision" = DEFAULT_PRECISION) -> OnnxProgram:
    """Compile an ONNX CNN featurizer to an NPU program and the layouts of its input and output."""
    graph = onnx_graph(model)
    program = lower(run_passes(graph), precision)
    return OnnxProgram(program, graph.input_layout, graph.output_layouts[0])
