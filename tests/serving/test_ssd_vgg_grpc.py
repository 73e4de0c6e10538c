"""The SSD-VGG detection pipeline (pipelines/ssd-vgg) served over gRPC on the emulator: a real photo in, boxes
out. One NPU program with twelve outputs feeds a CPU stage with twelve inputs that L2-normalizes block4, decodes
boxes and runs non-maximum suppression; Predict returns Azure's twelve head tensors and the detections by name,
output_filter picks among them, GetModelMetadata and REST list them too. The seeded weights detect nothing in
particular: the test checks the plumbing and the arithmetic, not what is found."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

pytest.importorskip("keras")

from brainwave.client import PredictionClient  # noqa: E402
from brainwave.models import ssd_vgg  # noqa: E402
from tests.support import pipeline_builder  # noqa: E402

pytestmark = pytest.mark.slow
BUILD = pipeline_builder("ssd-vgg")


@pytest.fixture(scope="module")
def ssd_zip(tmp_path_factory):
    return BUILD.build_model_zip(tmp_path_factory.mktemp("ssd-vgg") / "model.zip")


@pytest.fixture(scope="module")
def ssd_server(ssd_zip):
    from brainwave.pipeline import Pipeline
    from brainwave.serving.servables import ServableManager
    from tests.support import start_server

    pipeline = Pipeline.load(ssd_zip, backend="emulator")
    manager = ServableManager()
    manager.add("ssd", 1, pipeline)
    running = start_server(manager, rest_port=0)
    yield running
    running.server.stop(grace=1)
    pipeline.close()


@pytest.fixture(scope="module")
def astronaut() -> bytes:
    from tests.support import skimage_image

    return skimage_image("astronaut.png").read_bytes()


def test_service_def_is_as_the_builder_says():
    assert json.loads((BUILD.HERE / "service_def.json").read_text()) == BUILD.expected_definition()


def test_a_photo_gives_boxes_over_grpc(ssd_server, astronaut):
    with PredictionClient(ssd_server.address, timeout=120) as client:
        out = client.score_image(astronaut)
    assert set(out) == {*ssd_vgg.AZURE_OUTPUTS, *BUILD.DETECTIONS}
    for name in ssd_vgg.AZURE_OUTPUTS:
        assert out[name].shape == ssd_vgg.azure_dims(name) and np.isfinite(out[name]).all(), name
    boxes, scores = out["detection_boxes:0"], out["detection_scores:0"]
    count = int(out["num_detections:0"])  # (1,) per image; the client strips the batch axis
    assert boxes.shape == (BUILD.MAX_DETECTIONS, 4) and 0 < count <= BUILD.MAX_DETECTIONS
    kept = boxes[:count]
    assert np.all((kept >= 0) & (kept <= 1)) and np.all(kept[:, 2] > kept[:, 0]) and np.all(kept[:, 3] > kept[:, 1])
    assert np.all(np.diff(scores[:count]) <= 0) and np.all(scores[:count] > BUILD.SELECT_THRESHOLD)
    classes = out["detection_classes:0"][:count]
    assert np.all((classes >= 1) & (classes < ssd_vgg.NUM_CLASSES))


def test_output_filter_picks_outputs(ssd_server, astronaut):
    with PredictionClient(ssd_server.address, timeout=120) as client:
        out = client.score_image(astronaut, outputs=["detection_boxes", "ssd_300_vgg/block4_box/Reshape_1:0"])
    assert set(out) == {"detection_boxes", "ssd_300_vgg/block4_box/Reshape_1:0"}
    assert out["detection_boxes"].shape == (BUILD.MAX_DETECTIONS, 4)


def test_metadata_lists_every_output(ssd_server):
    with PredictionClient(ssd_server.address) as client:
        signature = client.get_model_metadata().signature_def["serving_default"]
    assert set(signature.outputs) == {*ssd_vgg.AZURE_OUTPUTS, *BUILD.DETECTIONS}
    block4 = signature.outputs[ssd_vgg.cls_name("block4")]
    assert block4.name == ssd_vgg.cls_name("block4")
    assert [d.size for d in block4.tensor_shape.dim] == [-1, *ssd_vgg.azure_dims(block4.name)]


def test_block4_heads_are_ssds_arithmetic(ssd_zip):
    """The CPU stage's block4 heads (taps scaled by 1 / ||conv4_3|| and summed) equal SSD's: a 3x3 convolution
    of the L2-normalized conv4_3, on the float backend's featurizer outputs."""
    from brainwave.pipeline import Pipeline
    from brainwave.tf_runtime import tf

    pipeline = Pipeline.load(ssd_zip, backend="float")
    try:
        x = np.random.default_rng(0).uniform(-120, 130, (1, *ssd_vgg.INPUT_SHAPE)).astype(np.float32)
        features = pipeline.stages[1].run(x)
        out = pipeline.stages[2].run(features)
    finally:
        pipeline.close()
    conv4_3 = features[ssd_vgg.CONV4_3]
    normalized = conv4_3 / np.sqrt(np.maximum((conv4_3.astype(np.float64) ** 2).sum(-1, keepdims=True), 1e-12))
    from tests.support.catalog import model

    taps = model("ssd-vgg").get_layer("block4_taps").get_weights()[0]
    want = tf.nn.conv2d(normalized.astype(np.float32), ssd_vgg.head_kernel(taps), 1, "SAME").numpy()
    split = ssd_vgg.anchors_per_location(0) * ssd_vgg.NUM_CLASSES
    got_cls = out[ssd_vgg.cls_name("block4")].reshape(want.shape[:3] + (-1,))
    got_loc = out[ssd_vgg.loc_name("block4")].reshape(want.shape[:3] + (-1,))
    np.testing.assert_allclose(got_cls, want[..., :split], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_loc, want[..., split:], rtol=1e-4, atol=1e-4)


def test_rest_returns_every_output_by_name(ssd_server, astronaut):
    """TF Serving's REST answer for several outputs: each under its name (columnar format)."""
    import httpx

    body = {"inputs": {"images": [{"b64": base64.b64encode(astronaut).decode()}]},
            "output_filter": ["num_detections:0", "detection_scores:0"]}
    reply = httpx.post(f"http://127.0.0.1:{ssd_server.server.rest.port}/v1/models/ssd:predict", json=body,
                       timeout=120)
    assert reply.status_code == 200, reply.text
    outputs = reply.json()["outputs"]
    assert set(outputs) == {"num_detections:0", "detection_scores:0"}
    assert 0 < outputs["num_detections:0"][0] <= BUILD.MAX_DETECTIONS
    assert len(outputs["detection_scores:0"][0]) == BUILD.MAX_DETECTIONS
