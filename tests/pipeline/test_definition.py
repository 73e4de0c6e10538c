"""service_def.json parsing: the seed definition loads verbatim; errors name the stage and the field."""
import json
from pathlib import Path

import pytest

from brainwave.errors import DefinitionError
from brainwave.pipeline import BrainwaveStage, ServiceDefinition, TensorflowStage

SEED = Path(__file__).resolve().parents[2] / "pipelines" / "resnet50" / "service_def.json"


def test_seed_service_def_loads_exactly_as_written():
    data = json.loads(SEED.read_text())
    definition = ServiceDefinition.from_json(data)
    assert definition.aml_runtime_version == "1.1"
    first, featurizer, classifier = definition.pipeline
    assert first == TensorflowStage("input_trans.pb", "in_images:0", "transferred_input:0")
    assert featurizer == BrainwaveStage("resnet50", "1.1.6-rc", [1, 1, 2048])
    assert classifier.output_tensor == "resnet_v1_50/logits/Softmax:0"
    assert definition.to_json() == data  # nothing added, nothing lost


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["pipeline"][1].update(type="fpga-magic"), "stage 1: unknown type 'fpga-magic'; expected one of: brainwave, tensorflow"),
    (lambda d: d["pipeline"][0].pop("input_tensor"), "stage 0: missing required field 'input_tensor'"),
    (lambda d: d["pipeline"][2].update(modle_path="x.pb"), "stage 2: unknown field 'modle_path'"),
    (lambda d: d["pipeline"][1].update(output_tensor_dims=[1, 0, 2048]), "stage 1: field 'output_tensor_dims' must be"),
    (lambda d: d["pipeline"][1].update(model_ref=5), "stage 1: field 'model_ref' must be a string"),
    (lambda d: d["pipeline"][0].update(model_path="../evil.pb"), "stage 0: field 'model_path': must be a relative path"),
    (lambda d: d["pipeline"][0].update(model_path="/etc/passwd"), "stage 0: field 'model_path': must be a relative path"),
    (lambda d: d["pipeline"][0].update(input_tensor="in images"), "stage 0: field 'input_tensor' is not a tensor name"),
    (lambda d: d.update(pipeline=[]), "field 'pipeline' must be a non-empty list"),
    (lambda d: d.update(aml_runtime_version="9.9"), "aml_runtime_version '9.9' is not supported"),
    (lambda d: d.update(extra=1), "unknown top-level field 'extra'"),
])
def test_validation_errors_name_stage_and_field(mutate, expected):
    data = json.loads(SEED.read_text())
    mutate(data)
    with pytest.raises(DefinitionError) as info:
        ServiceDefinition.from_json(data)
    assert expected in str(info.value)


def test_a_stage_must_be_an_object():
    with pytest.raises(DefinitionError, match="stage 0: must be a JSON object"):
        ServiceDefinition.from_json({"pipeline": ["input_trans.pb"]})
