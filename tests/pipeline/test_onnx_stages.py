"""service_def.json with ONNX: a `brainwave` stage naming its own .onnx/.keras featurizer (`model_path`), and
`onnx` CPU stages run by onnxruntime; hostile ONNX files end as ModelLoadError naming the stage."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from brainwave.errors import DefinitionError, ModelLoadError  # noqa: E402
from brainwave.pipeline import BrainwaveStage, OnnxStage, Pipeline, ServiceDefinition  # noqa: E402
from tests.npu import onnx_nets  # noqa: E402

SIZE, CLASSES = 32, 10


def save(model, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def three_stage_zip(tmp_path: Path, featurizer: Path | None = None, dims=None) -> Path:
    """onnx preprocessing -> brainwave ResNet-18 from model.zip -> onnx softmax."""
    featurizer = featurizer or save(onnx_nets.resnet18(classes=CLASSES, size=SIZE), tmp_path / "resnet18.onnx")
    definition = ServiceDefinition()
    definition.add(OnnxStage("pre.onnx", "image", "x", source=save(onnx_nets.preprocessing("nchw", SIZE),
                                                                   tmp_path / "pre.onnx")))
    definition.add(BrainwaveStage(model_path=f"featurizer{featurizer.suffix}", output_tensor_dims=dims,
                                  source=featurizer))
    definition.add(OnnxStage("softmax.onnx", source=save(onnx_nets.softmax(CLASSES), tmp_path / "softmax.onnx")))
    return definition.save(tmp_path / "model.zip")


def test_definition_round_trip_and_field_rules():
    data = {"pipeline": [{"type": "brainwave", "model_path": "net.onnx", "output_tensor_dims": [10]},
                         {"type": "onnx", "model_path": "head.onnx", "input_tensor": "onnx::Gemm_0"}]}
    definition = ServiceDefinition.from_json(data)
    assert definition.to_json()["pipeline"] == data["pipeline"]
    assert definition.files() == ["net.onnx", "head.onnx"]
    for stage, why in [({"type": "brainwave"}, "exactly one of 'model_ref'"),
                       ({"type": "brainwave", "model_ref": "resnet50", "model_path": "a.onnx"}, "exactly one of"),
                       ({"type": "brainwave", "model_path": "a.pb"}, "an .onnx or .keras file"),
                       ({"type": "brainwave", "model_path": "a.onnx", "weights_path": "w.npz"}, "go with 'model_ref'"),
                       ({"type": "onnx", "model_path": "../a.onnx"}, "relative path"),
                       ({"type": "onnx", "model_path": "a.onnx", "output_tensor": "a\nb"}, "not an ONNX value name")]:
        with pytest.raises(DefinitionError, match=why):
            ServiceDefinition.from_json({"pipeline": [stage]})


@pytest.mark.parametrize("backend", ["float", "emulator"])
def test_onnx_featurizer_and_cpu_stages_agree_with_onnxruntime(tmp_path, backend):
    import onnxruntime as ort

    pipeline = Pipeline.load(three_stage_zip(tmp_path, dims=[CLASSES]), backend=backend)
    try:
        assert pipeline.input_shape.as_list() == [1, SIZE, SIZE, 3] and pipeline.output_shape.as_list() == [None, CLASSES]
        image = np.random.default_rng(1).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
        got = pipeline.run(image).output
    finally:
        pipeline.close()
    want = image
    for model in (onnx_nets.preprocessing("nchw", SIZE), onnx_nets.resnet18(classes=CLASSES, size=SIZE),
                  onnx_nets.softmax(CLASSES)):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        want = session.run(None, {session.get_inputs()[0].name: want})[0]
    assert got.shape == want.shape == (1, CLASSES)
    np.testing.assert_allclose(got, want, atol=1e-6 if backend == "float" else 2e-3)


def test_keras_file_featurizer(tmp_path):
    from brainwave.tf_runtime import keras

    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x))
    model.save(tmp_path / "net.keras")
    definition = ServiceDefinition([BrainwaveStage(model_path="net.keras", source=tmp_path / "net.keras")])
    x = np.random.default_rng(2).normal(size=(1, SIZE, SIZE, 3)).astype(np.float32)
    outputs = {}
    for backend in ("float", "emulator"):
        pipeline = Pipeline.load(definition.save(tmp_path / "model.zip"), backend=backend)
        outputs[backend] = pipeline.run(x).output
        pipeline.close()
    np.testing.assert_allclose(outputs["emulator"], outputs["float"], rtol=1e-3, atol=1e-4)


def test_output_tensor_dims_must_match_the_file(tmp_path):
    with pytest.raises(DefinitionError, match=r"stage 1: output_tensor_dims \[1000\] does not match .*\[10\]"):
        Pipeline.load(three_stage_zip(tmp_path, dims=[1000]), backend="emulator")


def test_onnx_sessions_use_tensorflows_thread_count(tmp_path):
    from brainwave.pipeline.onnx_model import onnx_session
    from brainwave.tf_runtime import tf

    session = onnx_session(onnx_nets.softmax(CLASSES), "stage 0")
    options = session.get_session_options()
    assert options.intra_op_num_threads == tf.config.threading.get_intra_op_parallelism_threads()
    assert options.log_severity_level == 3


def _graph(nodes, inits=(), inputs=None, out_shape=(1, 3, SIZE, SIZE)) -> onnx.ModelProto:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])]
    graph = helper.make_graph(nodes, "hostile", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _external() -> bytes:
    weight = numpy_helper.from_array(np.zeros((2, 3, 1, 1), np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../../../../etc/passwd")
    return _graph([helper.make_node("Conv", ["x", "w"], ["y"])], [weight]).SerializeToString()


def _huge_constant() -> bytes:
    """A 2^36-element constant that a constant-folding session would allocate at load."""
    shape = numpy_helper.from_array(np.array([1, 3, 1 << 17, 1 << 17], np.int64), "shape")
    return _graph([helper.make_node("ConstantOfShape", ["shape"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])],
                  [shape], out_shape=["n", "c", "h", "w"]).SerializeToString()  # only inference sees the size


def _huge_input() -> bytes:
    return _graph([helper.make_node("Relu", ["x"], ["y"])], inputs=[
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1 << 20, 1 << 20, 3])]).SerializeToString()


HOSTILE = {
    "not ONNX": (b"\x08\x07garbage" * 10, "not an ONNX model"),
    "external data": (_external(), "external file"),
    "invalid graph": (_graph([helper.make_node("Relu", ["missing"], ["y"])]).SerializeToString(), "not a valid ONNX"),
    "huge constant": (_huge_constant(), "elements"),
    "huge input": (_huge_input(), "elements"),
    "unsupported op": (_graph([helper.make_node("Sigmoid", ["x"], ["y"], name="squash")]).SerializeToString(),
                       "node 'squash' \\(Sigmoid\\)"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("where", ["featurizer", "cpu"])
def test_hostile_onnx_files_are_load_errors_naming_the_stage(tmp_path, case, where):
    raw, why = HOSTILE[case]
    if where == "cpu" and case == "unsupported op":
        pytest.skip("onnxruntime runs Sigmoid: not an error on the CPU")
    (tmp_path / "bad.onnx").write_bytes(raw)
    stage = BrainwaveStage(model_path="bad.onnx", source=tmp_path / "bad.onnx") if where == "featurizer" else \
        OnnxStage("bad.onnx", source=tmp_path / "bad.onnx")
    zip_path = ServiceDefinition([stage]).save(tmp_path / "model.zip")
    with pytest.raises(ModelLoadError, match=f"^stage 0 \\(bad.onnx.*{why}"):
        Pipeline.load(zip_path, backend="emulator")
