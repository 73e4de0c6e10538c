"""compile_keras on small networks that use every supported layer: the program, run on the kernel (C-sim), stays
close to float Keras, keeps its arena safe, and an unsupported layer is an error that names it. (That every
executor runs a program to the same bytes is tests/npu/test_executors.py.)"""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
layers = keras.layers

from brainwave.npu.compiler import CompileError, ProgramBuilder, UnsupportedLayerError, compile_keras  # noqa: E402
from brainwave.npu.csim import CsimExecutor  # noqa: E402
from brainwave.npu.isa import Opcode  # noqa: E402


def _randomize(model: keras.Model, seed: int) -> keras.Model:
    """Non-trivial weights everywhere, including batch-norm statistics (so folding matters)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, layers.BatchNormalization):
            c = weights[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                               rng.uniform(0.5, 2.0, c)])
        elif weights:
            fan_in = max(int(np.prod(weights[0].shape[:-1])), 1)  # kernel first, then bias
            layer.set_weights([rng.normal(0, 1 / np.sqrt(fan_in), w.shape) for w in weights])
    return model


def everything_net() -> keras.Model:
    inp = keras.Input((12, 11, 5))
    x = layers.ZeroPadding2D(1)(inp)
    x = layers.Conv2D(20, 3, strides=2, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    dw = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False, name="dw")(x)
    dw = layers.BatchNormalization(name="dw_bn")(dw)
    dw = layers.ReLU(6.0, name="dw_relu6")(dw)
    g = layers.Conv2D(40, 1, groups=4, name="grouped")(dw)
    g = layers.BatchNormalization(name="grouped_bn")(g)
    x = layers.Add(name="residual")([g, dw])
    x = layers.Activation("relu", name="residual_relu")(x)
    x = layers.MaxPooling2D(3, 2, padding="same", name="maxpool")(x)
    x = layers.ReLU(name="pool_relu")(x)
    x = layers.AveragePooling2D(2, padding="same", name="avgpool")(x)
    x = layers.BatchNormalization(name="lonely_bn")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="dw2")(x)
    x = layers.Activation("relu6", name="act_relu6")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(10, activation="relu", name="fc1")(x)
    out = layers.Dense(5, name="fc2")(x)
    return _randomize(keras.Model(inp, out), 1)


def flatten_net() -> keras.Model:
    inp = keras.Input((4, 4, 6))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = layers.Flatten()(x)
    return _randomize(keras.Model(inp, layers.Dense(7)(x)), 2)


def sequential_net() -> keras.Model:
    return _randomize(keras.Sequential([
        keras.Input((9, 9, 3)),
        layers.ZeroPadding2D(((1, 0), (0, 1))),
        layers.MaxPooling2D(2),
        layers.Conv2D(17, 3, padding="valid", activation="relu"),
        layers.GlobalMaxPooling2D(),
    ]), 3)


def three_way_add_net() -> keras.Model:
    inp = keras.Input((5, 5, 16))
    a = layers.Conv2D(16, 1, name="a")(inp)
    b = layers.Conv2D(16, 3, padding="same", name="b")(inp)
    x = layers.Add(name="sum3")([a, b, inp])
    return _randomize(keras.Model(inp, layers.ReLU(name="out")(x)), 4)


NETS = {"everything": everything_net, "flatten": flatten_net, "sequential": sequential_net,
        "three_way_add": three_way_add_net}


@pytest.mark.parametrize("precision", ["bfp20", "bfp16", "bfp12"])
@pytest.mark.parametrize("net", sorted(NETS))
def test_compiled_network_on_the_kernel_is_close_to_float(net, precision):
    model = NETS[net]()
    program = compile_keras(model, precision=precision)
    x = np.random.default_rng(5).normal(0, 1, (1, *model.inputs[0].shape[1:])).astype(np.float32)
    want = np.asarray(model(x, training=False)).reshape(-1)
    got = CsimExecutor().run(program, x).reshape(-1)
    assert got.shape == want.shape
    cosine = float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want)))
    assert cosine > {"bfp20": 0.99999, "bfp16": 0.999, "bfp12": 0.95}[precision], cosine


def test_fusion_and_layer_names():
    program = compile_keras(everything_net())
    ops = [(Opcode(i.opcode).name, i.name) for i in program.instructions]
    names = [n for _, n in ops]
    assert "stem+stem_bn+stem_relu" in names  # padding folded, BN folded, ReLU fused
    assert "grouped+grouped_bn+residual+residual_relu" in names  # residual add fused into the conv
    assert not any(op == "PAD" for op, _ in ops)
    assert ("CONV2D", "lonely_bn") in ops  # a batch norm on its own: a 1x1 depthwise conv
    conv = {i.name: i for i in program.instructions}["grouped+grouped_bn+residual+residual_relu"]
    assert conv.groups == 4 and conv.has_residual == 1 and conv.activation == 1
    assert ("ACTIVATION", "pool_relu") in ops  # nothing to fuse into: its own instruction
    assert "dw2+act_relu6" in names


def test_flatten_dense_covers_the_whole_input():
    program = compile_keras(flatten_net())
    dense = program.instructions[-1]
    assert (dense.kernel_h, dense.kernel_w, dense.in_c, dense.out_c) == (4, 4, 8, 7)


def test_arena_is_reused_and_outputs_never_overlap_inputs():
    program = compile_keras(everything_net())
    written = 0
    for d in program.instructions:
        out = (d.out_offset, d.out_offset + d.out_h * d.out_w * d.out_c)
        written += out[1] - out[0]
        reads = [(d.in_offset, d.in_h * d.in_w * d.in_c)]
        if d.opcode == Opcode.ADD:
            reads.append((d.in2_offset, d.in_h * d.in_w * d.in_c))
        if d.opcode == Opcode.CONCAT:
            reads.append((d.in2_offset, d.in_h * d.in_w * (d.out_c - d.in_c)))
        for start, n in reads:
            assert start >= out[1] or start + n <= out[0], f"{d.name}: output overlaps an input"
    assert program.arena_words < written


@pytest.mark.parametrize("build, culprit, why", [
    (lambda i: layers.Conv2D(4, 3, dilation_rate=2, name="dilated")(i), "dilated", "dilation"),
    (lambda i: layers.LeakyReLU(name="leaky")(i), "leaky", "no NPU lowering"),
    (lambda i: layers.Conv2D(4, 1, activation="sigmoid", name="sig")(i), "sig", "sigmoid"),
    (lambda i: layers.ReLU(max_value=4.0, name="relu4")(i), "relu4", "relu, relu6"),
    (lambda i: layers.Concatenate(axis=1, name="cat")([i, i]), "cat", "channel axis only"),
])
def test_unsupported_layers_are_named(build, culprit, why):
    inp = keras.Input((8, 8, 4))
    model = keras.Model(inp, build(inp))
    with pytest.raises(UnsupportedLayerError, match=why) as err:
        compile_keras(model)
    assert err.value.layer_name == culprit and repr(culprit) in str(err.value)


def test_builder_errors():
    b = ProgramBuilder("bfp16")
    x = b.input((4, 4, 6))
    with pytest.raises(CompileError, match="groups=4 does not fit 6 input channels"):
        b.conv2d(x, np.zeros((1, 1, 1, 8), np.float32), groups=4)
    with pytest.raises(CompileError, match="does not fit"):
        b.maxpool(x, (5, 5))
    with pytest.raises(CompileError, match="one input"):
        b.input((1, 1, 1))
    with pytest.raises(ValueError, match="choose one of"):
        ProgramBuilder("int8")
