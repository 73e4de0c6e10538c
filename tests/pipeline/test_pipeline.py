"""Running pipelines: TF1 graphs, SavedModels, frozen Keras models, the featurizer stage, timings."""
import json

import numpy as np
import pytest
from brainwave.tf_runtime import tf

from brainwave.errors import DefinitionError, InvalidInputError, ModelLoadError
from brainwave.pipeline import BrainwaveStage, Pipeline, ServiceDefinition, TensorflowStage
from tests.support import pipeline_builder


def test_seed_pipeline_runs_a_real_photo_with_stage_timings(resnet50_pipeline, chelsea):
    result = resnet50_pipeline.run(chelsea)
    assert result.output.shape == (1, 1000)
    assert result.output.dtype == np.float32
    assert abs(float(result.output.sum()) - 1.0) < 1e-4
    assert len(result.stage_seconds) == 3 and all(s > 0 for s in result.stage_seconds)


def test_same_input_same_output(resnet50_pipeline, chelsea, rocket_jpeg):
    a = resnet50_pipeline.run(chelsea).output
    resnet50_pipeline.run(rocket_jpeg)
    assert np.array_equal(a, resnet50_pipeline.run(chelsea).output)


def test_input_transform_resizes_any_image(resnet50_pipeline, rocket_jpeg, coffee):
    # rocket.jpg is 427x640 and coffee.png 400x600: neither is 224x224.
    for data in (rocket_jpeg, coffee):
        assert resnet50_pipeline.run(data).output.shape == (1, 1000)


@pytest.mark.parametrize("data, expected", [
    (b"", r"is empty \(0 bytes\)"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "is not a recognized image"),
])
def test_bad_images_are_invalid_input(resnet50_pipeline, data, expected):
    with pytest.raises(InvalidInputError, match=expected):
        resnet50_pipeline.run(data)


def classifier_stage(tmp_path, as_saved_model: bool):
    inputs = tf.keras.Input((1, 1, 2048), name="features")
    x = tf.keras.layers.Reshape((2048,))(inputs)
    x = tf.keras.layers.Dense(10, activation="softmax", kernel_initializer=tf.keras.initializers.GlorotUniform(seed=3))(x)
    model = tf.keras.Model(inputs, x)
    if not as_saved_model:
        return TensorflowStage.from_keras(model, "classifier.pb", tmp_path), model
    export = tmp_path / "classifier_savedmodel"
    model.export(str(export), format="tf_saved_model", verbose=False)
    signature = tf.saved_model.load(str(export)).signatures["serving_default"]
    in_key = next(iter(signature.structured_input_signature[1]))
    out_key = next(iter(signature.structured_outputs))
    return TensorflowStage("classifier_savedmodel", in_key, out_key, source=export), model


@pytest.mark.parametrize("as_saved_model", [False, True], ids=["frozen-keras", "saved-model"])
def test_classifier_stage_formats(tmp_path, chelsea, as_saved_model):
    resnet50_build = pipeline_builder("resnet50")

    (tmp_path / "input_trans.pb").write_bytes(resnet50_build.input_transform_graph().SerializeToString())
    stage, keras_model = classifier_stage(tmp_path, as_saved_model)
    definition = ServiceDefinition([
        TensorflowStage("input_trans.pb", "in_images:0", "transferred_input:0", source=tmp_path / "input_trans.pb"),
        BrainwaveStage("resnet50", "1.1.6-rc", [1, 1, 2048]),
        stage,
    ])
    path = definition.save(tmp_path / "model.zip")
    pipeline = Pipeline.load(path, backend="float")
    try:
        result = pipeline.run(chelsea)
        assert result.output.shape == (1, 10)
        features = pipeline.stages[1].run(pipeline.stages[0].run(chelsea))
        expected = keras_model(features, training=False).numpy()
        np.testing.assert_allclose(result.output, expected, rtol=1e-5, atol=1e-6)
    finally:
        pipeline.close()


def test_unknown_featurizer_lists_the_catalog(tmp_path, resnet50_zip):
    data = ServiceDefinition.load(resnet50_zip).to_json()
    data["pipeline"][1]["model_ref"] = "resnet9000"
    with pytest.raises(DefinitionError) as info:
        _load_with_definition(tmp_path, resnet50_zip, data)
    assert "stage 1: unknown featurizer model_ref 'resnet9000'" in str(info.value)
    assert "resnet50 (1.1.6-rc" in str(info.value)


def test_unknown_featurizer_version_lists_versions(tmp_path, resnet50_zip):
    data = ServiceDefinition.load(resnet50_zip).to_json()
    data["pipeline"][1]["model_version"] = "7.0"
    with pytest.raises(DefinitionError, match="has no version '7.0'; available versions: 1.1.6-rc"):
        _load_with_definition(tmp_path, resnet50_zip, data)


def test_output_dims_must_match_the_featurizer(tmp_path, resnet50_zip):
    data = ServiceDefinition.load(resnet50_zip).to_json()
    data["pipeline"][1]["output_tensor_dims"] = [1, 1, 1000]
    with pytest.raises(DefinitionError, match=r"stage 1: output_tensor_dims \[1, 1, 1000\] does not match"):
        _load_with_definition(tmp_path, resnet50_zip, data)


def test_unknown_tensor_and_garbage_graph_are_load_errors(tmp_path, resnet50_zip):
    data = ServiceDefinition.load(resnet50_zip).to_json()
    data["pipeline"][0]["input_tensor"] = "images:0"
    with pytest.raises(ModelLoadError, match="input_tensor 'images:0' is not in the graph .*in_images"):
        _load_with_definition(tmp_path, resnet50_zip, data)
    with pytest.raises(ModelLoadError, match=r"stage 0 \(input_trans.pb\): not a TensorFlow GraphDef"):
        _load_with_definition(tmp_path, resnet50_zip, ServiceDefinition.load(resnet50_zip).to_json(),
                              replace={"input_trans.pb": b"\xff" * 100})


def _load_with_definition(tmp_path, resnet50_zip, data, replace=None):
    import zipfile

    path = tmp_path / "variant.zip"
    with zipfile.ZipFile(resnet50_zip) as source, zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            payload = json.dumps(data).encode() if name == "service_def.json" else source.read(name)
            target.writestr(name, (replace or {}).get(name, payload))
    return Pipeline.load(path, backend="float")
