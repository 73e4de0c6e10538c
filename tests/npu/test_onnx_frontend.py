"""compile_onnx: small ONNX graphs covering every supported op, the two CNNs of tests/npu/onnx_nets.py, and the
errors for what the NPU cannot run. The NPU output is compared with onnxruntime in float, and the native
executor with the HLS kernel's C simulation byte for byte."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from brainwave.npu.compiler import CompileError, UnsupportedOpError  # noqa: E402
from brainwave.npu.compiler.onnx_frontend import compile_onnx, onnx_graph  # noqa: E402
from brainwave.npu.executor import create_executor  # noqa: E402
from brainwave.models.efficientnet_lite import LITE2  # noqa: E402
from brainwave.npu.isa import Opcode  # noqa: E402
from tests.npu import onnx_nets  # noqa: E402

RNG = np.random.default_rng(3)


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def model(nodes, shape, out_shape, inits=(), opset: int = 17, out: str = "y") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(m, full_check=True)
    return m


def weights(*shape) -> np.ndarray:
    return RNG.normal(0, 1 / np.sqrt(np.prod(shape[1:])), shape).astype(np.float32)


def onnxruntime_output(m, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def check(m, shape, precision="bfp20", min_cosine=0.9999):
    """Compile, run on the native executor and C-sim (same bytes), compare with onnxruntime in float."""
    compiled = compile_onnx(m, precision)
    x = RNG.normal(0, 1, shape).astype(np.float32)
    native = compiled.run(create_executor("native"), x)
    csim = compiled.run(create_executor("csim"), x)
    assert native.tobytes() == csim.tobytes()
    want = onnxruntime_output(m, x)
    assert native.shape == want.shape
    cosine = float(native.ravel() @ want.ravel() / (np.linalg.norm(native) * np.linalg.norm(want)))
    assert cosine > min_cosine, cosine
    return compiled


def everything_nchw() -> onnx.ModelProto:
    """Every op the frontend lowers, PyTorch-style N x C x H x W."""
    n = helper.make_node
    nodes = [
        n("Pad", ["x", "pads"], ["p"]),
        n("Conv", ["p", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2]),
        n("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["bn"], epsilon=1e-3),
        n("Relu", ["bn"], ["r1"]),
        n("Conv", ["r1", "w2"], ["dw"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        n("Clip", ["dw", "zero", "six"], ["r6"]),
        n("Conv", ["r6", "w3"], ["c3"], kernel_shape=[1, 1], auto_pad="SAME_UPPER"),
        n("Add", ["c3", "r6"], ["res"]),
        n("Relu", ["res"], ["r2"]),
        n("MaxPool", ["r2"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        n("AveragePool", ["mp"], ["ap"], kernel_shape=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
        n("Mul", ["ap", "scale"], ["m"]),
        n("Sub", ["m", "shift"], ["s"]),
        n("Identity", ["s"], ["i"]),
        n("GlobalAveragePool", ["i"], ["gap"]),
        n("Flatten", ["gap"], ["f"]),
        n("Gemm", ["f", "wfc", "bfc"], ["y"], transB=1, alpha=0.5),
    ]
    inits = [const("pads", np.array([0, 0, 1, 1, 0, 0, 0, 0], np.int64)), const("w1", weights(8, 3, 3, 3)),
             const("b1", weights(8)), const("g", RNG.uniform(0.5, 1.5, 8).astype(np.float32)),
             const("beta", weights(8)), const("mean", weights(8)), const("var", RNG.uniform(0.5, 2, 8).astype(np.float32)),
             const("w2", weights(8, 1, 3, 3)), const("zero", np.float32(0)), const("six", np.float32(6)),
             const("w3", weights(8, 8, 1, 1)), const("scale", RNG.uniform(0.5, 2, (8, 1, 1)).astype(np.float32)),
             const("shift", np.float32(0.25)), const("wfc", weights(5, 8)), const("bfc", weights(5))]
    return model(nodes, [1, 3, 15, 13], [1, 5], inits)


@pytest.mark.parametrize("precision", ["bfp20", "bfp16"])
def test_every_supported_op_against_onnxruntime(precision):
    compiled = check(everything_nchw(), (1, 3, 15, 13), precision, 0.9999 if precision == "bfp20" else 0.99)
    names = [i.name for i in compiled.program.instructions]
    assert "Conv_1+BatchNormalization_2+Relu_3" in names  # the Pad folded into the conv, the batch norm too
    assert "Conv_6+Add_7+Relu_8" in names  # the residual and the ReLU fused into the conv
    assert not any(i.op == Opcode.PAD and "AveragePool" not in i.name for i in compiled.program.instructions)


def test_tf2onnx_nhwc_input_and_channels_first_flatten():
    """An N x H x W x C input transposed to N x C x H x W (tf2onnx), and a Flatten of a 4 x 3 x 3 tensor before a
    MatMul: the arena keeps H x W x C, so the MatMul's rows are reordered instead of moving data."""
    n = helper.make_node
    nodes = [n("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             n("Conv", ["t", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             n("Add", ["c", "bias"], ["a"]),
             n("Flatten", ["a"], ["f"]),
             n("MatMul", ["f", "fc"], ["y"])]
    m = model(nodes, [1, 3, 3, 2], [1, 6], [const("w", weights(4, 2, 3, 3)), const("bias", weights(1, 4, 1, 1)),
                                            const("fc", weights(36, 6))])
    compiled = check(m, (1, 3, 3, 2))
    assert compiled.input.perm == (0, 1, 2, 3) and len(compiled.program.instructions) == 2


@pytest.mark.parametrize("net", ["resnet18", "mobilenet_v2"])
def test_cnns_the_catalog_does_not_have(net, mobilenet_v2_onnx):
    m = onnx_nets.resnet18() if net == "resnet18" else mobilenet_v2_onnx
    # the random MobileNetV2 is the noisier network on the NPU, whichever frontend compiles it (docs/compiler.md)
    compiled = check(m, (1, 3, 224, 224) if net == "resnet18" else (1, 224, 224, 3),
                     min_cosine=0.9999 if net == "resnet18" else 0.999)
    convs = sum(i.op == Opcode.CONV2D for i in compiled.program.instructions)
    assert convs == {"resnet18": 21, "mobilenet_v2": 53}[net]  # every batch norm, add and ReLU fused away


def test_trained_efficientnet_lite2_through_tf2onnx():
    """A trained MobileNet-style network through the ONNX path: native == C-sim bytes, and close to onnxruntime
    (benchmarks/onnx_accuracy.py measures its top-1 agreement on photos: 100% in bfp20)."""
    pytest.importorskip("tf2onnx")
    compiled = check(onnx_nets.efficientnet_lite2(), (1, 260, 260, 3), min_cosine=0.9999)
    blocks = LITE2.block_configs()  # each: depthwise + projection, and an expansion unless its ratio is 1
    convs = 1 + sum(2 + (block["expand_ratio"] != 1) for block in blocks) + 1 + 1  # + stem, head, classifier
    assert [i.op for i in compiled.program.instructions] == [Opcode.CONV2D] * (convs - 1) + [
        Opcode.GLOBAL_AVGPOOL, Opcode.CONV2D]  # every batch norm, ReLU6 and residual add fused away


@pytest.fixture(scope="module")
def mobilenet_v2_onnx():
    pytest.importorskip("tf2onnx")
    return onnx_nets.mobilenet_v2(RNG.uniform(-1, 1, (4, 224, 224, 3)).astype(np.float32))


def test_concat_along_the_channels_becomes_the_npu_s_concat():
    """Two branches joined on axis 1 (channels in N x C x H x W), then a conv over the joined tensor."""
    n = helper.make_node
    nodes = [n("Conv", ["x", "wa"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             n("Conv", ["x", "wb"], ["b"], kernel_shape=[1, 1]),
             n("Concat", ["a", "b", "x"], ["cat"], axis=1),
             n("Conv", ["cat", "wc"], ["y"], kernel_shape=[1, 1])]
    inits = [const("wa", weights(5, 3, 3, 3)), const("wb", weights(7, 3, 1, 1)), const("wc", weights(4, 15, 1, 1))]
    compiled = check(model(nodes, [1, 3, 9, 11], [1, 4, 9, 11], inits), (1, 3, 9, 11))
    assert sum(i.op == Opcode.CONCAT for i in compiled.program.instructions) == 2  # three operands, two CONCATs


@pytest.mark.parametrize("node, inits, why, alternative", [
    (helper.make_node("Concat", ["x", "x"], ["y"], name="rows", axis=2), [], "channels only", "channel axis"),
    (helper.make_node("Sigmoid", ["x"], ["y"], name="sig"), [], "no NPU lowering", "Relu or Clip"),
    (helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip4"),
     [const("lo", np.float32(0)), const("hi", np.float32(4))], "relu6", "Relu or Clip"),
    (helper.make_node("Conv", ["x", "w"], ["y"], name="dilated", kernel_shape=[3, 3], dilations=[2, 2]),
     [const("w", weights(2, 2, 3, 3))], "dilations", "dilations 1"),
    (helper.make_node("Reshape", ["x", "shape"], ["y"], name="moves"), [const("shape", np.array([1, 6, 6, 2]))],
     "moves data", "Flatten"),
])
def test_unsupported_nodes_are_named_with_an_alternative(node, inits, why, alternative):
    m = helper.make_model(helper.make_graph(
        [node], "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedOpError, match=why) as err:
        onnx_graph(m)
    assert err.value.node_name == node.name and err.value.op_type == node.op_type
    assert alternative in err.value.alternative and repr(node.name) in str(err.value)


@pytest.mark.parametrize("shape, opset, why", [
    (["N", 3, "H", "W"], 17, "fixed sizes"),
    ([2, 3, 8, 8], 17, "fixed sizes"),
    ([1, 3, 8, 8], 11, "opset 11"),
])
def test_models_the_compiler_refuses(shape, opset, why):
    m = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]), opset_imports=[helper.make_opsetid("", opset)])
    with pytest.raises(CompileError, match=why):
        onnx_graph(m)
