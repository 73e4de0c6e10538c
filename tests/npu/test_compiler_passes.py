"""Each compiler pass on a graph of about three nodes: what it rewrites, what it must leave alone, and that the
graph computes the same thing afterwards (a float64 reading of the IR, tests/npu/ir_reference.py)."""
from __future__ import annotations

import numpy as np
import pytest

from brainwave.npu.compiler import CompileError
from brainwave.npu.compiler.ir import Graph
from brainwave.npu.compiler.lowering import lower
from brainwave.npu.compiler.passes import (BatchNormToDepthwise, DenseToConv, DropLinear, FoldBatchNorm,
                                           FoldZeroPadding, FuseActivation, FuseResidual, apply, run_passes)
from brainwave.npu.isa import Activation, Opcode
from tests.npu.ir_reference import evaluate

RNG = np.random.default_rng(7)


def conv_attrs(kh: int, cin: int, cout: int, groups: int = 1, pads=(0, 0, 0, 0), act=Activation.NONE) -> dict:
    return dict(kernel=RNG.normal(size=(kh, kh, cin // groups, cout)), bias=RNG.normal(size=cout), strides=(1, 1),
                pads=pads, groups=groups, activation=act)


def bn_attrs(c: int) -> dict:
    return dict(scale=RNG.uniform(0.5, 1.5, c), mean=RNG.normal(size=c), offset=RNG.normal(size=c))


def rewritten(graph: Graph, rewrite, shape) -> tuple[bool, list[np.ndarray], list[np.ndarray]]:
    """(changed, outputs before, outputs after) of applying `rewrite` once to fixpoint."""
    x = RNG.normal(size=shape)
    before = evaluate(graph, x)
    changed = apply(graph, rewrite)
    return changed, before, evaluate(graph, x)


def assert_same(before, after):
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


# ---- fold-zero-padding
def test_fold_zero_padding_grows_the_conv_pads():
    g = Graph("x", (5, 6, 3))
    p = g.add("pad", ["x"], dict(pads=(1, 2, 0, 1)), "pad")
    c = g.add("conv", [p], conv_attrs(3, 3, 4, pads=(1, 0, 1, 0)), "conv")
    g.set_outputs([g.add("activation", [c], dict(activation=Activation.RELU), "relu")])
    changed, before, after = rewritten(g, FoldZeroPadding(), (5, 6, 3))
    assert changed and ops(g) == ["conv", "activation"]
    assert g.nodes[0].attrs["pads"] == (2, 2, 1, 1) and g.nodes[0].inputs == ["x"]
    assert_same(before, after)


@pytest.mark.parametrize("reader", ["maxpool", "residual"])
def test_fold_zero_padding_leaves_pools_and_residual_operands(reader):
    g = Graph("x", (4, 4, 2))
    p = g.add("pad", ["x"], dict(pads=(1, 1, 1, 1)), "pad")
    if reader == "maxpool":  # a pool skips padding cells instead of counting zeros: not the same
        out = g.add("maxpool", [p], dict(kernel_size=(3, 3), strides=(1, 1), pads=(0, 0, 0, 0)), "pool")
    else:
        c = g.add("conv", ["x"], conv_attrs(1, 2, 2, pads=(1, 1, 1, 1)), "conv")
        out = g.add("conv", [c, p], conv_attrs(1, 2, 2), "conv_with_residual")
    g.set_outputs([out])
    assert not apply(g, FoldZeroPadding()) and "pad" in ops(g)


# ---- dense-to-conv
@pytest.mark.parametrize("order", ["hwc", "chw"])
def test_dense_after_flatten_covers_the_whole_input(order):
    g = Graph("x", (3, 2, 5))
    f = g.add("reshape", ["x"], dict(shape=(1, 1, 30), order=order), "flatten")
    d = g.add("dense", [f], dict(kernel=RNG.normal(size=(30, 4)), bias=RNG.normal(size=4), activation=Activation.NONE),
              "fc")
    g.set_outputs([g.add("activation", [d], dict(activation=Activation.RELU6), "relu6")])
    changed, before, after = rewritten(g, DenseToConv(), (3, 2, 5))
    assert changed and ops(g) == ["conv", "activation"]  # the flatten is gone: nothing reads it
    assert g.nodes[0].attrs["kernel"].shape == (3, 2, 5, 4) and g.nodes[0].inputs == ["x"]
    assert_same(before, after)


def test_dense_per_pixel_is_a_1x1_conv():
    g = Graph("x", (2, 3, 6))
    g.set_outputs([g.add("dense", ["x"], dict(kernel=RNG.normal(size=(6, 4)), bias=np.zeros(4),
                                              activation=Activation.RELU), "fc")])
    changed, before, after = rewritten(g, DenseToConv(), (2, 3, 6))
    assert changed and g.nodes[0].attrs["kernel"].shape == (1, 1, 6, 4) and g.shapes[g.outputs[0]] == (2, 3, 4)
    assert_same(before, after)


# ---- fold-batchnorm
def test_fold_batchnorm_into_the_conv_before_it():
    g = Graph("x", (5, 5, 4))
    c = g.add("conv", ["x"], conv_attrs(3, 4, 8, groups=2, pads=(1, 1, 1, 1)), "conv")
    b = g.add("batchnorm", [c], bn_attrs(8), "bn")
    g.set_outputs([g.add("activation", [b], dict(activation=Activation.RELU), "relu")])
    changed, before, after = rewritten(g, FoldBatchNorm(), (5, 5, 4))
    assert changed and ops(g) == ["conv", "activation"] and g.nodes[0].name == "conv+bn"
    assert_same(before, after)


@pytest.mark.parametrize("blocker", ["activation", "residual", "output"])
def test_fold_batchnorm_only_into_a_bare_conv(blocker):
    g = Graph("x", (4, 4, 4))
    c = g.add("conv", ["x"], conv_attrs(1, 4, 4, act=Activation.RELU if blocker == "activation" else Activation.NONE),
              "conv")
    if blocker == "residual":
        c = g.add("conv", [c, "x"], conv_attrs(1, 4, 4), "conv_res")
    b = g.add("batchnorm", [c], bn_attrs(4), "bn")
    g.set_outputs([b, c] if blocker == "output" else [b])  # the conv's own output is wanted as it is
    changed, before, after = rewritten(g, FoldBatchNorm(), (4, 4, 4))
    assert not changed and "batchnorm" in ops(g)


# ---- batchnorm-to-depthwise
def test_lone_batchnorm_becomes_a_1x1_depthwise_conv():
    g = Graph("x", (6, 6, 3))
    p = g.add("maxpool", ["x"], dict(kernel_size=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0)), "pool")
    b = g.add("batchnorm", [p], bn_attrs(3), "bn")
    g.set_outputs([g.add("activation", [b], dict(activation=Activation.RELU), "relu")])
    changed, before, after = rewritten(g, BatchNormToDepthwise(), (6, 6, 3))
    assert changed and ops(g) == ["maxpool", "conv", "activation"]
    conv = g.nodes[1]
    assert conv.attrs["groups"] == 3 and conv.attrs["kernel"].shape == (1, 1, 1, 3) and conv.name == "bn"
    assert_same(before, after)


# ---- fuse-residual
def test_fuse_residual_takes_the_operand_computed_earlier():
    g = Graph("x", (4, 4, 8))
    short = g.add("conv", ["x"], conv_attrs(1, 8, 8), "shortcut")
    branch = g.add("conv", ["x"], conv_attrs(3, 8, 8, pads=(1, 1, 1, 1)), "branch")
    g.set_outputs([g.add("add", [short, branch], dict(activation=Activation.NONE), "add")])
    changed, before, after = rewritten(g, FuseResidual(), (4, 4, 8))
    assert changed and ops(g) == ["conv", "conv"]
    assert g.nodes[1].name == "branch+add" and g.nodes[1].inputs == ["x", short]  # not the shortcut: its operand
    assert_same(before, after)                                                  # did not exist yet


@pytest.mark.parametrize("blocker", ["activation", "three_operands", "same_operand"])
def test_fuse_residual_needs_a_bare_conv_and_a_two_operand_add(blocker):
    g = Graph("x", (3, 3, 4))
    c = g.add("conv", ["x"], conv_attrs(1, 4, 4, act=Activation.RELU if blocker == "activation" else Activation.NONE),
              "conv")
    operands = {"activation": [c, "x"], "three_operands": [c, "x", "x"], "same_operand": [c, c]}[blocker]
    g.set_outputs([g.add("add", operands, dict(activation=Activation.NONE), "add")])
    assert not apply(g, FuseResidual()) and ops(g) == ["conv", "add"]


# ---- fuse-activation
@pytest.mark.parametrize("head", ["conv", "add"])
def test_fuse_activation_into_conv_or_add(head):
    g = Graph("x", (3, 3, 4))
    y = g.add("conv", ["x"], conv_attrs(1, 4, 4), "conv") if head == "conv" else \
        g.add("add", ["x", "x"], dict(activation=Activation.NONE), "add")
    a = g.add("activation", [y], dict(activation=Activation.RELU6), "relu6")
    g.set_outputs([g.add("activation", [a], dict(activation=Activation.RELU), "relu")])  # a second one stays
    changed, before, after = rewritten(g, FuseActivation(), (3, 3, 4))
    assert changed and ops(g) == [head, "activation"] and g.nodes[0].name == f"{head}+relu6"
    assert g.nodes[0].attrs["activation"] == Activation.RELU6
    assert_same(before, after)


# ---- drop-linear
def test_drop_linear_activation_reconnects_its_readers_and_the_output():
    g = Graph("x", (3, 3, 2))
    c = g.add("conv", ["x"], conv_attrs(1, 2, 2, act=Activation.RELU), "conv")
    lin = g.add("activation", [c], dict(activation=Activation.NONE), "linear")
    g.set_outputs([g.add("global_avgpool", [lin], {}, "gap"), lin])
    changed, before, after = rewritten(g, DropLinear(), (3, 3, 2))
    assert changed and ops(g) == ["conv", "global_avgpool"] and g.outputs[1] == c
    assert_same(before, after)


# ---- the whole pipeline, and lowering
def test_pipeline_turns_a_resnet_block_into_one_conv_per_branch():
    g = Graph("x", (6, 6, 8))
    p = g.add("pad", ["x"], dict(pads=(1, 1, 1, 1)), "pad")
    c1 = g.add("conv", [p], conv_attrs(3, 8, 8), "c1")
    b1 = g.add("batchnorm", [c1], bn_attrs(8), "b1")
    r1 = g.add("activation", [b1], dict(activation=Activation.RELU), "r1")
    c2 = g.add("conv", [r1], conv_attrs(1, 8, 8), "c2")
    b2 = g.add("batchnorm", [c2], bn_attrs(8), "b2")
    s = g.add("add", [b2, "x"], dict(activation=Activation.NONE), "add")
    g.set_outputs([g.add("activation", [s], dict(activation=Activation.RELU), "out")])
    x = RNG.normal(size=(6, 6, 8))
    before = evaluate(g, x)
    run_passes(g)
    assert [n.name for n in g.nodes] == ["c1+b1+r1", "c2+b2+add+out"]
    assert_same(before, evaluate(g, x))
    program = lower(g, "bfp20")
    assert [i.op for i in program.instructions] == [Opcode.CONV2D, Opcode.CONV2D]
    assert program.instructions[1].has_residual == 1


def test_lowering_names_what_it_cannot_run():
    g = Graph("x", (2, 2, 3))
    f = g.add("reshape", ["x"], dict(shape=(1, 1, 12), order="chw"), "flatten")
    g.set_outputs([g.add("activation", [f], dict(activation=Activation.RELU), "relu")])
    with pytest.raises(CompileError, match="'flatten' .*channels-first"):
        lower(run_passes(g), "bfp16")



def test_several_outputs_are_packed_in_one():
    """An NPU program has one output tensor: several outputs are flattened and concatenated into it (ISA v3's
    CONCAT), and Program.outputs says where each one lies."""
    g = Graph("x", (2, 2, 3))
    g.set_outputs([g.add("conv", ["x"], conv_attrs(1, 3, 3), "a"), g.add("conv", ["x"], conv_attrs(1, 3, 5), "b")])
    program = lower(g, "bfp16")
    assert [(o.shape, o.start) for o in program.outputs] == [((2, 2, 3), 0), ((2, 2, 5), 12)]
    assert program.output_shape == (1, 1, 32) and program.instructions[-1].opcode == Opcode.CONCAT
