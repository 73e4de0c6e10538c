"""Stages with several inputs and outputs (what a detector's pipeline needs): service_def.json's list forms, the
values passed between stages by position, the check that adjacent stages agree on their count, and the
outputs the pipeline reports. A single-output pipeline is unchanged (the rest of tests/pipeline)."""
from __future__ import annotations

import numpy as np
import pytest

from brainwave.errors import DefinitionError, ModelLoadError
from brainwave.pipeline import Pipeline, ServiceDefinition, TensorflowStage
from brainwave.tf_runtime import tf


def _split_graph(path):
    """x (N, 4) -> "low:0" (N, 2) and "high:0" (N, 2)."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        tf.identity(x[:, :2], name="low")
        tf.identity(x[:, 2:] * 10, name="high")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def _join_graph(path):
    """("a:0", "b:0") -> "sum:0" = a + b and "diff:0" = a - b."""
    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.placeholder(tf.float32, [None, 2], name="a")
        b = tf.compat.v1.placeholder(tf.float32, [None, 2], name="b")
        tf.add(a, b, name="sum")
        tf.subtract(a, b, name="diff")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def _zip(tmp_path, second_inputs):
    stages = [TensorflowStage("split.pb", "x:0", ["low:0", "high:0"], source=_split_graph(tmp_path / "split.pb")),
              TensorflowStage("join.pb", second_inputs, ["sum:0", "diff:0"], source=_join_graph(tmp_path / "join.pb"))]
    return ServiceDefinition(stages).save(tmp_path / "model.zip")


def test_outputs_flow_by_position_and_come_back_by_name(tmp_path):
    pipeline = Pipeline.load(_zip(tmp_path, ["a:0", "b:0"]), warm_up=False)
    try:
        result = pipeline.run(np.array([[1, 2, 3, 4]], np.float32))
        assert list(result.output) == ["sum:0", "diff:0"]
        np.testing.assert_array_equal(result.output["sum:0"], [[31, 42]])
        np.testing.assert_array_equal(result.output["diff:0"], [[-29, -38]])
        assert result.first() is result.output["sum:0"]
        assert [(name, shape.as_list()) for name, _, shape in pipeline.outputs] == [("sum:0", [None, 2]),
                                                                                    ("diff:0", [None, 2])]
    finally:
        pipeline.close()


def test_stages_must_agree_on_how_many(tmp_path):
    split = _split_graph(tmp_path / "split.pb")
    stages = [TensorflowStage("split.pb", "x:0", ["low:0", "high:0"], source=split),
              TensorflowStage("again.pb", "x:0", "low:0", source=split)]
    with pytest.raises(ModelLoadError, match=r"takes 1 inputs but stage 0 \(split.pb\) gives 2 outputs"):
        Pipeline.load(ServiceDefinition(stages).save(tmp_path / "model.zip"), warm_up=False)


@pytest.mark.parametrize("stage, message", [
    ({"type": "tensorflow", "model_path": "g.pb", "input_tensor": [], "output_tensor": "y:0"}, "non-empty list"),
    ({"type": "tensorflow", "model_path": "g.pb", "input_tensor": ["a:0", "a:0"], "output_tensor": "y:0"},
     "distinct"),
    ({"type": "tensorflow", "model_path": "g.pb", "input_tensor": "x:0", "output_tensor": ["y:0", "bad name!"]},
     "not a tensor name"),
    ({"type": "brainwave", "model_ref": "ssd-vgg", "output_tensor": "one:0"}, "lists the featurizer's output names"),
    ({"type": "brainwave", "model_ref": "ssd-vgg", "output_tensor_dims": [[1, 2], [0]]}, "positive integers"),
])
def test_list_fields_are_checked(stage, message):
    with pytest.raises(DefinitionError, match=message):
        ServiceDefinition.from_json({"pipeline": [stage]})


def test_list_fields_round_trip():
    data = {"aml_runtime_version": "1.1", "pipeline": [
        {"model_ref": "ssd-vgg", "model_version": "1.1.3", "output_tensor_dims": [[1, 2], [3]],
         "output_tensor": ["a:0", "b:0"], "type": "brainwave"},
        {"model_path": "g.pb", "input_tensor": ["a:0", "b:0"], "output_tensor": ["c:0"], "type": "tensorflow"}]}
    assert ServiceDefinition.from_json(data).to_json() == data
