"""Keras functional model -> NPU program.

Walks the layers in topological order and fuses what the NPU does in one instruction: a convolution (or
Dense) with the batch norm after it (folded into weights and bias in float64, rounded to float32 before
quantization), a residual Add whose other operand is ready, and a ReLU/ReLU6. A ZeroPadding2D feeding a
valid convolution becomes the convolution's padding. Anything else the NPU cannot run is an error that
names the layer.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..isa import Activation, Program
from ..numerics import DEFAULT_PRECISION, Precision
from .builder import CompileError, ProgramBuilder, Tensor, resolve_pads


class UnsupportedLayerError(CompileError):
    def __init__(self, layer, why: str):
        self.layer_name = layer.name
        super().__init__(f"layer {layer.name!r} ({type(layer).__name__}) cannot run on the NPU: {why}")


def _np(value) -> np.ndarray | None:
    if value is None:
        return None
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64)


def _activation_of(layer) -> Activation | None:
    """The activation a layer applies, or None if the NPU has no such activation."""
    kind = type(layer).__name__
    if kind == "ReLU":
        cfg = layer.get_config()
        if cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
            return None
        max_value = cfg.get("max_value")
        if max_value is None:
            return Activation.RELU
        return Activation.RELU6 if float(max_value) == 6.0 else None
    fn = getattr(layer, "activation", None)
    name = getattr(fn, "__name__", None)
    return {"linear": Activation.NONE, "relu": Activation.RELU, "relu6": Activation.RELU6}.get(name)


_CONVS = ("Conv2D", "DepthwiseConv2D", "Dense")
_PASS_THROUGH = ("InputLayer", "Dropout", "SpatialDropout2D", "GaussianDropout", "GaussianNoise", "Identity",
                 "ActivityRegularization")


class _Graph:
    def __init__(self, model):
        self.model = model
        self.layers = list(model.operations)
        self.inputs: dict[int, list] = {}
        self.outputs: dict[int, list] = {}
        self.consumers: dict[int, list] = defaultdict(list)
        for layer in self.layers:
            nodes = layer._inbound_nodes
            if len(nodes) != 1:
                raise UnsupportedLayerError(layer, f"it is called {len(nodes)} times (shared layers are not supported)")
            self.inputs[id(layer)] = list(nodes[0].input_tensors)
            self.outputs[id(layer)] = list(nodes[0].output_tensors)
            for t in self.inputs[id(layer)]:
                self.consumers[id(t)].append(layer)
        self.model_outputs = {id(t) for t in model.outputs}

    def sole_consumer(self, tensor):
        """The one layer reading `tensor`, if exactly one does and the tensor is not a model output."""
        users = self.consumers.get(id(tensor), [])
        if len(users) == 1 and id(tensor) not in self.model_outputs:
            return users[0]
        return None

    def out(self, layer):
        return self.outputs[id(layer)][0]


class _Lowering:
    def __init__(self, model, precision: Precision):
        self.g = _Graph(model)
        self.b = ProgramBuilder(precision)
        self.values: dict[int, Tensor] = {}  # id(KerasTensor) -> NPU tensor
        self.done: set[int] = set()  # layers already folded into an earlier instruction
        self.pending_pads: dict[int, tuple[int, int, int, int]] = {}  # ZeroPadding2D output -> pads to fold

    def run(self) -> Program:
        model = self.g.model
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise CompileError(f"model {model.name!r} must have one input and one output for the NPU")
        shape = tuple(model.inputs[0].shape[1:])
        if len(shape) != 3 or any(s is None for s in shape):
            raise CompileError(f"model input {model.inputs[0].shape} must be (batch, H, W, C) with known sizes")
        self.values[id(model.inputs[0])] = self.b.input(shape)
        for layer in self.g.layers:
            if id(layer) not in self.done:
                self.lower(layer)
        return self.b.build(self.values[id(model.outputs[0])])

    def x(self, layer, i: int = 0) -> Tensor:
        t = self.g.inputs[id(layer)][i]
        if id(t) in self.pending_pads:
            pads = self.pending_pads.pop(id(t))  # a folded padding whose consumer turned out not to fold it
            self.values[id(t)] = self.b.pad(self.values[id(t)], pads)
        return self.values[id(t)]

    def set(self, layer, value: Tensor) -> None:
        self.values[id(self.g.out(layer))] = value

    def lower(self, layer) -> None:
        kind = type(layer).__name__
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise UnsupportedLayerError(layer, "only channels_last data is supported")
        if kind in _PASS_THROUGH:
            if kind != "InputLayer":
                self.set(layer, self.x(layer))
        elif kind in _CONVS:
            self.lower_mac(layer)
        elif kind == "BatchNormalization":
            self.lower_mac(layer)  # a batch norm on its own is a 1x1 depthwise convolution
        elif kind in ("ReLU", "Activation"):
            act = _activation_of(layer)
            if act is None:
                raise UnsupportedLayerError(layer, "the NPU has relu, relu6 and linear activations only")
            self.set(layer, self.x(layer) if act == Activation.NONE else self.b.activation(self.x(layer), act, layer.name))
        elif kind == "Add":
            self.lower_add(layer)
        elif kind == "ZeroPadding2D":
            self.lower_zero_padding(layer)
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            pool = self.b.maxpool if kind == "MaxPooling2D" else self.b.avgpool
            self.set(layer, pool(self.x(layer), layer.pool_size, layer.strides, layer.padding, layer.name))
        elif kind == "GlobalAveragePooling2D":
            self.set(layer, self.b.global_avgpool(self.x(layer), layer.name))
        elif kind == "GlobalMaxPooling2D":
            src = self.x(layer)
            self.set(layer, self.b.maxpool(src, src.shape[:2], (1, 1), "valid", layer.name))
        elif kind in ("Reshape", "Flatten"):
            src = self.x(layer)
            shape = tuple(self.g.out(layer).shape[1:])
            hwc = shape if len(shape) == 3 else (1, 1, int(np.prod(shape)))
            self.set(layer, self.b.reshape(src, hwc))
        else:
            raise UnsupportedLayerError(layer, "no NPU lowering for this layer type")

    # ---- MAC instructions with fusion
    def _conv_weights(self, layer) -> tuple[np.ndarray, np.ndarray, int, tuple, str, Activation]:
        """(kernel KH,KW,Cg,Cout float64, bias float64, groups, strides, padding, own activation)."""
        kind = type(layer).__name__
        cin = self.g.inputs[id(layer)][0].shape[-1]
        if kind == "BatchNormalization":
            if layer.axis not in (-1, 3, [3], [-1]):
                raise UnsupportedLayerError(layer, "batch norm must normalize the channel axis")
            ones = np.ones(cin)
            return ones.reshape(1, 1, 1, cin), np.zeros(cin), cin, (1, 1), "valid", Activation.NONE
        act = _activation_of(layer)
        if act is None:
            raise UnsupportedLayerError(layer, f"its activation {getattr(layer.activation, '__name__', '?')!r} "
                                               "is not relu, relu6 or linear")
        kernel = _np(layer.kernel)
        if kind == "Dense":
            bias = _np(layer.bias) if layer.use_bias else np.zeros(kernel.shape[1])
            return kernel, bias, 1, (1, 1), "valid", act
        if tuple(layer.dilation_rate) != (1, 1):
            raise UnsupportedLayerError(layer, f"dilation {tuple(layer.dilation_rate)} (the NPU convolves densely)")
        if kind == "DepthwiseConv2D":
            kh, kw, c, dm = kernel.shape
            kernel = kernel.reshape(kh, kw, 1, c * dm)  # output channel c*dm + j reads input channel c
            groups = c
        else:
            groups = int(getattr(layer, "groups", 1))
        bias = _np(layer.bias) if layer.use_bias else np.zeros(kernel.shape[-1])
        return kernel, bias, groups, tuple(layer.strides), layer.padding, act

    def lower_mac(self, layer) -> None:
        kernel, bias, groups, strides, padding, act = self._conv_weights(layer)
        names = [layer.name]
        tail = layer
        if type(layer).__name__ == "BatchNormalization":
            kernel, bias = self._fold_bn(layer, kernel, bias, groups)
        else:
            nxt = self.g.sole_consumer(self.g.out(tail))
            if act == Activation.NONE and type(nxt).__name__ == "BatchNormalization":
                kernel, bias = self._fold_bn(nxt, kernel, bias, groups)
                tail = nxt
                names.append(nxt.name)
                self.done.add(id(nxt))
        residual = None
        nxt = self.g.sole_consumer(self.g.out(tail))
        if act == Activation.NONE and type(nxt).__name__ == "Add" and len(self.g.inputs[id(nxt)]) == 2:
            others = [t for t in self.g.inputs[id(nxt)] if t is not self.g.out(tail)]
            if len(others) == 1 and id(others[0]) in self.values and id(others[0]) not in self.pending_pads:
                residual = self.values[id(others[0])]
                tail = nxt
                names.append(nxt.name)
                self.done.add(id(nxt))
        nxt = self.g.sole_consumer(self.g.out(tail))
        if act == Activation.NONE and type(nxt).__name__ in ("ReLU", "Activation"):
            fused = _activation_of(nxt)
            if fused is not None:
                act = fused
                tail = nxt
                names.append(nxt.name)
                self.done.add(id(nxt))
        kernel32 = kernel.astype(np.float32)  # folded in float64, rounded once, then quantized by the packer
        bias32 = bias.astype(np.float32)
        name = "+".join(names)  # every Keras layer this instruction computes; the last one's output is its output
        if type(layer).__name__ == "Dense":
            out = self.b.dense(self.x(layer), kernel32, bias32, activation=act, residual=residual, name=name)
        else:
            src, pads = self._conv_input(layer, kernel.shape[:2], strides, padding)
            out = self.b.conv2d(src, kernel32, bias32, strides=strides, pads=pads, groups=groups,
                                activation=act, residual=residual, name=name)
        self.values[id(self.g.out(tail))] = out

    def _conv_input(self, layer, ksize, strides, padding) -> tuple[Tensor, tuple[int, int, int, int]]:
        """The conv's input and explicit pads, with a pending ZeroPadding2D folded in."""
        t = self.g.inputs[id(layer)][0]
        extra = self.pending_pads.pop(id(t), (0, 0, 0, 0))
        src = self.values[id(t)]
        h, w, c = src.shape
        padded = (h + extra[0] + extra[2], w + extra[1] + extra[3], c)
        own, _ = resolve_pads(padded, ksize, strides, padding)
        return src, tuple(a + b for a, b in zip(extra, own))

    def _fold_bn(self, bn, kernel, bias, groups):
        if bn.axis not in (-1, 3, [3], [-1]):
            raise UnsupportedLayerError(bn, "batch norm must normalize the channel axis")
        var = _np(bn.moving_variance)
        gamma = _np(bn.gamma) if bn.scale else np.ones_like(var)
        beta = _np(bn.beta) if bn.center else np.zeros_like(var)
        scale = gamma / np.sqrt(var + float(bn.epsilon))
        return kernel * scale, (bias - _np(bn.moving_mean)) * scale + beta

    def lower_add(self, layer) -> None:
        operands = [self.x(layer, i) for i in range(len(self.g.inputs[id(layer)]))]
        act = Activation.NONE
        tail = layer
        nxt = self.g.sole_consumer(self.g.out(layer))
        if type(nxt).__name__ in ("ReLU", "Activation") and _activation_of(nxt) is not None:
            act = _activation_of(nxt)
            tail = nxt
            self.done.add(id(nxt))
        out = operands[0]
        for i, other in enumerate(operands[1:]):
            last = i == len(operands) - 2
            name = f"{layer.name}+{tail.name}" if last and tail is not layer else layer.name
            out = self.b.add(out, other, act if last else Activation.NONE, name)
        self.values[id(self.g.out(tail))] = out

    def lower_zero_padding(self, layer) -> None:
        (t, b), (l, r) = layer.padding
        src = self.x(layer)
        nxt = self.g.sole_consumer(self.g.out(layer))
        if type(nxt).__name__ in ("Conv2D", "DepthwiseConv2D"):
            self.values[id(self.g.out(layer))] = src
            self.pending_pads[id(self.g.out(layer))] = (t, l, b, r)  # the convolution takes it as its padding
        else:
            self.set(layer, self.b.pad(src, (t, l, b, r), layer.name))


def compile_keras(model, precision: "str | Precision" = DEFAULT_PRECISION) -> Program:
    """Compile a Keras functional featurizer to an NPU program (batch 1, channels-last)."""
    if not hasattr(model, "operations"):  # a Sequential: its graph, as a functional model over the same layers
        from brainwave.tf_runtime import keras

        try:
            model = keras.Model(model.inputs, model.outputs, name=model.name)
        except (AttributeError, ValueError) as exc:
            raise CompileError(f"model {model.name!r} has no graph yet; build it with keras.Input first") from exc
    return _Lowering(model, Precision.parse(precision)).run()
