"""The seed user's flow end to end: the blog's fixed-224 TF1 input graph, the ResNet-50 featurizer and the seed
classifier, with the seed's service_def.json verbatim, served on the float, emulator and fpga backends and
scored with the official TF Serving client (`tensorflow-serving-api`)."""
from __future__ import annotations

import grpc
import numpy as np
import pytest

from tests.support import start_server
from tests.support.graphs import blog_fixed_224_graph, seed_zip

pytestmark = pytest.mark.slow

BACKENDS = {"float": {}, "emulator": {}, "fpga": {"board": "kv260", "simulate": True, "timeout_s": 120}}


@pytest.fixture(scope="module")
def seed_server(tmp_path_factory):
    from brainwave.pipeline import Pipeline
    from brainwave.serving.servables import ServableManager

    path = seed_zip(tmp_path_factory.mktemp("seed"), blog_fixed_224_graph())
    manager = ServableManager()
    for backend, options in BACKENDS.items():
        manager.add(f"seed-{backend}", 1, Pipeline.load(path, backend=backend, backend_options=options))
    running = start_server(manager)
    yield running
    running.server.stop(grace=1)
    manager.close()


def official_predict(address: str, model: str, image: bytes) -> np.ndarray:
    import tensorflow as tf  # noqa: F401 - TensorFlow registers its protos before tensorflow_serving's
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([image]))
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=300)
    assert response.model_spec.name == model
    return tf.make_ndarray(response.outputs["output_alias"])


def test_seed_flow_serves_on_every_backend(seed_server, chelsea):
    outputs = {backend: official_predict(seed_server.address, f"seed-{backend}", chelsea) for backend in BACKENDS}
    for backend, scores in outputs.items():
        assert scores.shape == (1, 1000) and abs(float(scores.sum()) - 1.0) < 1e-4, backend
    assert outputs["fpga"].tobytes() == outputs["emulator"].tobytes(), "the board and the emulator must agree bit for bit"
    assert int(np.argmax(outputs["emulator"])) == int(np.argmax(outputs["float"]))
    np.testing.assert_allclose(outputs["emulator"], outputs["float"], rtol=0, atol=1e-4)
