"""`brainwave compile model.onnx --out prog`: the program file it writes runs like compile_onnx's, and a node
the NPU cannot run is a one-line error naming it."""
from __future__ import annotations

import subprocess
import sys

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from brainwave.npu.compiler import compile_onnx  # noqa: E402
from brainwave.npu.isa import Program  # noqa: E402
from tests.npu import onnx_nets  # noqa: E402


def compile_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "brainwave.cli", "compile", *args], capture_output=True, text=True,
                          timeout=300)


def test_compile_an_onnx_file(tmp_path):
    model = onnx_nets.resnet18(classes=10, size=32)
    (tmp_path / "net.onnx").write_bytes(model.SerializeToString())
    proc = compile_cli(str(tmp_path / "net.onnx"), "--out", str(tmp_path / "net.bwnp"), "--precision", "bfp16")
    assert proc.returncode == 0, proc.stderr
    assert "transpose N x C x H x W" in proc.stdout and "(1, 10)" in proc.stdout
    assert Program.load(tmp_path / "net.bwnp").digest == compile_onnx(model, "bfp16").program.digest


def test_unsupported_node_is_named(tmp_path):
    graph = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"], name="squash")], "t",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (tmp_path / "squash.onnx").write_bytes(model.SerializeToString())
    proc = compile_cli(str(tmp_path / "squash.onnx"), "--out", str(tmp_path / "squash.bwnp"))
    assert proc.returncode != 0 and not (tmp_path / "squash.bwnp").exists()
    assert "node 'squash' (Sigmoid) cannot run on the NPU" in proc.stderr + proc.stdout
    assert "nearest supported: Relu or Clip(0, 6)" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
