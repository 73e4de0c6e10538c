"""Keras functional model -> graph IR (ir.py); `compile_keras` runs the passes and lowers it.

One IR node per layer, in the model's topological order, with the layer's weights in float64; layers that
compute nothing at inference (Dropout, ...) are not nodes at all. What the NPU cannot run is an
`UnsupportedLayerError` naming the layer, its type and the nearest supported layer.
"""
from __future__ import annotations


import numpy as np

from ..isa import Activation, Program
from ..numerics import DEFAULT_PRECISION, Precision
from .builder import CompileError, resolve_pads
from .errors import UnsupportedOpError, nearest
from .ir import Graph
from .lowering import lower
from .passes import run_passes

_PASS_THROUGH = ("Dropout", "SpatialDropout2D", "GaussianDropout", "GaussianNoise", "Identity",
                 "ActivityRegularization")
_SUPPORTED = ["Conv2D", "DepthwiseConv2D", "Dense", "BatchNormalization", "Add", "Concatenate", "ReLU", "Activation",
              "ZeroPadding2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
              "Reshape", "Flatten", *_PASS_THROUGH]
_INSTEAD = {"LeakyReLU": "ReLU", "PReLU": "ReLU", "ELU": "ReLU", "SeparableConv2D": "DepthwiseConv2D then a 1x1 Conv2D", "Conv2DTranspose": "Conv2D",
            "Multiply": "BatchNormalization (a per-channel scale)"}
_ACTIVATIONS = {"linear": Activation.NONE, "relu": Activation.RELU, "relu6": Activation.RELU6}


class UnsupportedLayerError(UnsupportedOpError):
    def __init__(self, layer, why: str, alternative: str | None = None) -> None:
        super().__init__("layer", layer.name, type(layer).__name__, why, alternative)

    @property
    def layer_name(self) -> str:
        return self.node_name


def _np(value) -> np.ndarray:
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64)


def _activation(layer) -> Activation:
    """The activation a ReLU, Activation, Conv or Dense layer applies (an error if the NPU has none like it)."""
    if type(layer).__name__ == "ReLU":
        cfg = layer.get_config()
        max_value = cfg.get("max_value")
        if not (cfg.get("negative_slope", 0) or cfg.get("threshold", 0)) and max_value in (None, 6.0, 6):
            return Activation.RELU if max_value is None else Activation.RELU6
        raise UnsupportedLayerError(layer, "the NPU has relu, relu6 and linear activations only "
                                           "(no slope, threshold or other max_value)", "ReLU or ReLU(6.0)")
    name = getattr(getattr(layer, "activation", None), "__name__", "?")
    if name not in _ACTIVATIONS:
        raise UnsupportedLayerError(layer, f"its activation {name!r} is not relu, relu6 or linear", "relu or relu6")
    return _ACTIVATIONS[name]


class KerasFrontend:
    def __init__(self, model) -> None:
        self.model = model
        self.values: dict[int, str] = {}  # id(KerasTensor) -> IR value
        if len(model.inputs) != 1:
            raise CompileError(f"model {model.name!r} must have one input for the NPU")
        shape = tuple(model.inputs[0].shape[1:])
        if len(shape) != 3 or any(s is None for s in shape):
            raise CompileError(f"model input {model.inputs[0].shape} must be (batch, H, W, C) with known sizes")
        self.graph = Graph("input", shape, model.name)
        self.values[id(model.inputs[0])] = "input"

    def run(self) -> Graph:
        for layer in self.model.operations:
            nodes = layer._inbound_nodes
            if len(nodes) != 1:
                raise UnsupportedLayerError(layer, f"it is called {len(nodes)} times (shared layers are not supported)")
            if type(layer).__name__ != "InputLayer":
                self.layer(layer, list(nodes[0].input_tensors), nodes[0].output_tensors[0])
        self.graph.set_outputs([self.values[id(t)] for t in self.model.outputs],
                               names=list(self.model.output_names))
        return self.graph

    def layer(self, layer, inputs: list, output) -> None:
        kind = type(layer).__name__
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise UnsupportedLayerError(layer, "only channels_last data is supported")
        x = [self.values[id(t)] for t in inputs]
        if kind in _PASS_THROUGH:
            self.values[id(output)] = x[0]
            return
        convert = getattr(self, f"convert_{kind}", None)
        if convert is None:
            raise UnsupportedLayerError(layer, "no NPU lowering for this layer type", nearest(kind, _SUPPORTED, _INSTEAD))
        op, attrs = convert(layer, x)
        self.values[id(output)] = self.graph.add(op, x, attrs, layer.name, kind)

    # ---- one converter per layer type: (IR op, attributes)
    def convert_Conv2D(self, layer, x):
        if tuple(layer.dilation_rate) != (1, 1):
            raise UnsupportedLayerError(layer, f"dilation {tuple(layer.dilation_rate)} (the NPU convolves densely)",
                                        "Conv2D with dilation_rate 1")
        kernel = _np(layer.kernel)
        groups = int(getattr(layer, "groups", 1))
        if type(layer).__name__ == "DepthwiseConv2D":
            kh, kw, c, dm = kernel.shape
            kernel, groups = kernel.reshape(kh, kw, 1, c * dm), c  # output channel c*dm + j reads input channel c
        bias = _np(layer.bias) if layer.use_bias else np.zeros(kernel.shape[-1])
        pads, _ = resolve_pads(self.graph.shapes[x[0]], kernel.shape[:2], tuple(layer.strides), layer.padding)
        return "conv", dict(kernel=kernel, bias=bias, strides=tuple(layer.strides), pads=pads, groups=groups,
                            activation=_activation(layer))

    convert_DepthwiseConv2D = convert_Conv2D

    def convert_Dense(self, layer, x):
        kernel = _np(layer.kernel)
        bias = _np(layer.bias) if layer.use_bias else np.zeros(kernel.shape[1])
        return "dense", dict(kernel=kernel, bias=bias, activation=_activation(layer))

    def convert_BatchNormalization(self, layer, x):
        if layer.axis not in (-1, 3, [3], [-1]):
            raise UnsupportedLayerError(layer, "batch norm must normalize the channel axis", "BatchNormalization(axis=-1)")
        var = _np(layer.moving_variance)
        gamma = _np(layer.gamma) if layer.scale else np.ones_like(var)
        beta = _np(layer.beta) if layer.center else np.zeros_like(var)
        return "batchnorm", dict(scale=gamma / np.sqrt(var + float(layer.epsilon)), mean=_np(layer.moving_mean),
                                 offset=beta)

    def convert_ReLU(self, layer, x):
        return "activation", dict(activation=_activation(layer))

    convert_Activation = convert_ReLU

    def convert_Add(self, layer, x):
        return "add", dict(activation=Activation.NONE)

    def convert_Concatenate(self, layer, x):
        if layer.axis not in (-1, 3):
            raise UnsupportedLayerError(layer, "the NPU concatenates along the channel axis only",
                                        "Concatenate(axis=-1)")
        return "concat", {}

    def convert_ZeroPadding2D(self, layer, x):
        (t, b), (l, r) = layer.padding
        return "pad", dict(pads=(t, l, b, r))

    def convert_MaxPooling2D(self, layer, x):
        pads, _ = resolve_pads(self.graph.shapes[x[0]], layer.pool_size, layer.strides, layer.padding)
        op = "maxpool" if type(layer).__name__ == "MaxPooling2D" else "avgpool"
        return op, dict(kernel_size=tuple(layer.pool_size), strides=tuple(layer.strides), pads=pads)

    convert_AveragePooling2D = convert_MaxPooling2D

    def convert_GlobalAveragePooling2D(self, layer, x):
        return "global_avgpool", {}

    def convert_GlobalMaxPooling2D(self, layer, x):
        return "maxpool", dict(kernel_size=self.graph.shapes[x[0]][:2], strides=(1, 1), pads=(0, 0, 0, 0))

    def convert_Reshape(self, layer, x):
        shape = tuple(layer.output.shape[1:])
        return "reshape", dict(shape=shape if len(shape) == 3 else (1, 1, int(np.prod(shape))), order="hwc")

    convert_Flatten = convert_Reshape


def keras_graph(model) -> Graph:
    """The IR of a Keras functional (or built Sequential) channels-last model, before any pass."""
    if not hasattr(model, "operations"):  # a Sequential: its graph, as a functional model over the same layers
        from brainwave.tf_runtime import keras

        try:
            model = keras.Model(model.inputs, model.outputs, name=model.name)
        except (AttributeError, ValueError) as exc:
            raise CompileError(f"model {model.name!r} has no graph yet; build it with keras.Input first") from exc
    return KerasFrontend(model).run()


def compile_keras(model, precision: "str | Precision" = DEFAULT_PRECISION) -> Program:
    """Compile a Keras functional featurizer to an NPU program (batch 1, channels-last)."""
    return lower(run_passes(keras_graph(model)), precision)
