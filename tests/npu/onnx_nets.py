"""ONNX CNNs the catalog does not have, built here without downloads, for the ONNX frontend's tests and the
accuracy comparison with onnxruntime (benchmarks/onnx_accuracy.py).

- `resnet18()`: ResNet-18 as PyTorch exports it (N x C x H x W input, Conv with pads, BatchNormalization,
  MaxPool with pads, Flatten + Gemm(transB=1) classifier), written with onnx.helper. Seeded weights: He-normal
  convolutions and batch-norm statistics drawn so activations keep their scale (like the catalog's ResNet-50).
- `mobilenet_v2()`: Keras' MobileNetV2 exported by tf2onnx (N x H x W x C input and a Transpose, Pad + Conv,
  grouped Conv, Clip(0, 6), batch norms as Mul + Add, MatMul classifier). Its batch norms are set from the
  statistics of a batch of photos (one training-mode call with momentum 0), so activations are realistic.
"""
from __future__ import annotations

import numpy as np

OPSET = 17


def _he(rng, shape) -> np.ndarray:
    return rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape).astype(np.float32)


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv_bn(self, x: str, cin: int, cout: int, k: int, stride: int, damp: float = 1.0, relu: bool = True) -> str:
        w = self.const("w", _he(self.rng, (cout, cin, k, k)))
        y = self.node("Conv", [x, w], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)
        gamma = self.rng.uniform(0.7, 1.1, cout) * damp
        stats = [gamma, self.rng.normal(0, 0.05, cout), self.rng.normal(0, 0.05, cout), self.rng.uniform(0.8, 1.2, cout)]
        y = self.node("BatchNormalization", [y, *(self.const("bn", s.astype(np.float32)) for s in stats)])
        return self.node("Relu", [y]) if relu else y


def resnet18(seed: int = 0, classes: int = 1000, size: int = 224):
    """ResNet-18 (basic blocks 2-2-2-2, widths 64-512) with a `classes`-way Gemm head; input 'input' (1, 3, size,
    size), output 'logits' (1, classes)."""
    from onnx import TensorProto, helper

    b = _Builder(seed)
    x = b.conv_bn("input", 3, 64, 7, 2)
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage and not block else 1
            y = b.conv_bn(x, cin, width, 3, stride)
            y = b.conv_bn(y, width, width, 3, 1, damp=0.3, relu=False)  # damped: the shortcut dominates
            short = b.conv_bn(x, cin, width, 1, stride, relu=False) if stride != 1 or cin != width else x
            x = b.node("Relu", [b.node("Add", [y, short])])
            cin = width
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
    w = b.const("fc_w", b.rng.normal(0, 1 / np.sqrt(512), (classes, 512)).astype(np.float32))
    fc = b.const("fc_b", b.rng.normal(0, 0.01, classes).astype(np.float32))
    b.nodes.append(helper.make_node("Gemm", [x, w, fc], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(b.nodes, "resnet18", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                  [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], b.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="brainwave-tests")


def mobilenet_v2(calibration: np.ndarray, alpha: float = 1.0, seed: int = 0):
    """Keras MobileNetV2 (logits, no softmax) through tf2onnx; `calibration` is a batch of (N, 224, 224, 3)
    inputs in [-1, 1] that sets the batch-norm statistics."""
    import tf2onnx

    from brainwave.tf_runtime import keras, tf

    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=alpha, weights=None,
                                           classifier_activation=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # the one training-mode call below sets the moving statistics to the batch's
    model(tf.constant(calibration, tf.float32), training=True)
    spec = (tf.TensorSpec((1, 224, 224, 3), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    return proto


def preprocessing(layout: str = "nchw", size: int = 224):
    """RGB 0..255 (1, size, size, 3) -> the network's input: 'nchw' ImageNet mean/std in N x C x H x W (the
    PyTorch convention, for `resnet18`), 'nhwc' (x / 127.5 - 1) as MobileNetV2 wants. Input 'image', output 'x'."""
    from onnx import TensorProto, helper

    b = _Builder(0)
    if layout == "nchw":
        x = b.node("Transpose", ["image"], perm=[0, 3, 1, 2])
        x = b.node("Sub", [x, b.const("mean", np.array([123.675, 116.28, 103.53], np.float32).reshape(1, 3, 1, 1))])
        b.nodes.append(helper.make_node("Div", [x, b.const("std", np.array([58.395, 57.12, 57.375], np.float32)
                                                        .reshape(1, 3, 1, 1))], ["x"]))
        out = [1, 3, size, size]
    else:
        x = b.node("Div", ["image", b.const("half", np.float32(127.5))])
        b.nodes.append(helper.make_node("Sub", [x, b.const("one", np.float32(1.0))], ["x"]))
        out = [1, size, size, 3]
    graph = helper.make_graph(b.nodes, "preprocessing", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                                       [1, size, size, 3])],
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, out)], b.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def softmax(classes: int):
    """Logits (N, classes) 'logits' -> probabilities 'probabilities', for a CPU stage after the featurizer."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)], "softmax",
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
