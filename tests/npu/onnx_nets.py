"""ONNX CNNs the catalog does not have, built here without downloads, for the ONNX frontend's tests and the
accuracy comparison with onnxruntime (benchmarks/onnx_accuracy.py).

- `resnet18()`: ResNet-18 as PyTorch exports it (N x C x H x W input, Conv with pads, BatchNormalization,
  MaxPool with pads, Flatten + Gemm(transB=1) classifier), written with onnx.helper. Seeded weights: He-normal
  convolutions and batch-norm statistics drawn so activations keep their scale (like the catalog's ResNet-50).
- `mobilenet_v2()`: Keras' MobileNetV2 exported by tf2onnx (N x H x W x C input and a Transpose, Pad + Conv,
  grouped Conv, Clip(0, 6), batch norms as Mul + Add, MatMul classifier).
- `efficientnet_lite2()`: the catalog's EfficientNet-Lite2 with its trained weights and ImageNet classifier,
  exported by tf2onnx: a trained MobileNet-style network through the ONNX path (260 x 260 N x H x W x C input).

Random weights make a degenerate classifier: the pooled features share a large common part, so every photo
gets the same top-1 and agreement would mean nothing. Given a batch of photos, both builders therefore set
what training would: batch norms from the statistics of their inputs (`calibrate` for ResNet-18, one
training-mode call with momentum 0 for MobileNetV2; both scale by the root mean square), and a classifier that
reads centred features.
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


def resnet18(seed: int = 0, classes: int = 1000, size: int = 224, calibration: np.ndarray | None = None):
    """ResNet-18 (basic blocks 2-2-2-2, widths 64-512) with a `classes`-way Gemm head; input 'input' (1, 3, size,
    size), output 'logits' (1, classes). `calibration`: a batch (N, 3, size, size) to `calibrate` it on."""
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="brainwave-tests")
    return model if calibration is None else calibrate(model, calibration)


def _standardized(kernel: np.ndarray, bias: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (N, classes), bias) of a classifier reading (features - mean) / s instead of the features, s their
    average standard deviation. One scale for all: dividing each feature by its own deviation would blow up
    near-constant features, and their rounding noise with them, as no trained classifier does."""
    mean = features.mean(0)
    kernel = kernel / features.std(0).mean()
    return kernel.astype(np.float32), (bias - mean @ kernel).astype(np.float32)


def calibrate(model, batch: np.ndarray):
    """Set each BatchNormalization's mean and variance from its input over `batch` (in graph order, so each sees
    the ones before it calibrated), and centre the features the final Gemm(transB=1) reads.

    The variance is set to the input's mean square, not its variance: a random channel that is nearly constant
    would otherwise be divided by its tiny deviation, which magnifies its rounding noise as trained batch norms
    (whose gamma shrinks such channels) do not."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}

    def observe(value: str) -> np.ndarray:
        probe = type(model)()
        probe.CopyFrom(model)
        probe.graph.output.append(helper.make_empty_tensor_value_info(value))
        probe.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # the whole batch in one run
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run([value], {session.get_inputs()[0].name: batch})[0]

    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            x = observe(node.input[0])
            for name, stat in ((node.input[3], x.mean((0, 2, 3))), (node.input[4], (x * x).mean((0, 2, 3)))):
                inits[name].CopyFrom(numpy_helper.from_array(stat.astype(np.float32), name))
    fc = model.graph.node[-1]
    kernel, bias = _standardized(numpy_helper.to_array(inits[fc.input[1]]).T, numpy_helper.to_array(inits[fc.input[2]]),
                                 observe(fc.input[0]))
    inits[fc.input[1]].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(kernel.T), fc.input[1]))
    inits[fc.input[2]].CopyFrom(numpy_helper.from_array(bias, fc.input[2]))
    return model


def mobilenet_v2(calibration: np.ndarray, alpha: float = 1.0, seed: int = 0):
    """Keras MobileNetV2 (logits, no softmax) through tf2onnx; `calibration` is a batch of (N, 224, 224, 3)
    inputs in [-1, 1] that sets the batch-norm statistics and centres the classifier's features."""
    from brainwave.tf_runtime import keras, tf  # first: TensorFlow loads quietly (tf2onnx imports it too)
    import tf2onnx

    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=alpha, weights=None,
                                           classifier_activation=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # the one training-mode call below sets the moving statistics to the batch's
    batch = tf.constant(calibration, tf.float32)
    model(batch, training=True)
    for layer in model.layers:  # divide by the root mean square, not the deviation: see `calibrate`
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, mean, var + mean ** 2])
    head = model.layers[-1]
    features = keras.Model(model.input, head.input)(batch, training=False).numpy()
    head.set_weights(list(_standardized(*head.get_weights(), features)))
    spec = (tf.TensorSpec((1, 224, 224, 3), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    return proto


def efficientnet_lite2():
    """EfficientNet-Lite2 (trained featurizer + ImageNet classifier, logits) through tf2onnx; input (1, 260, 260, 3)
    in [-1, 1]."""
    from brainwave.tf_runtime import keras, tf  # first: TensorFlow loads quietly (tf2onnx imports it too)
    import tf2onnx

    from brainwave.models.efficientnet_lite import LITE2

    size = LITE2.size
    images = keras.Input(LITE2.input_shape, batch_size=1)
    logits = keras.layers.Dense(1000, name="fc")(keras.layers.Flatten()(LITE2.build(None, 0)(images)))
    model = keras.Model(images, logits)
    model.get_layer("fc").set_weights(list(LITE2.classifier_weights()))
    spec = (tf.TensorSpec((1, size, size, 3), tf.float32, name="images"),)
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
