"""Predict, metadata, status, health and reflection over real gRPC on loopback."""
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from brainwave.client import PredictionClient
from tests.support import synthetic_png


@pytest.fixture(scope="module")
def client(resnet50_server):
    with PredictionClient(resnet50_server.address) as c:
        yield c


def test_client_scores_a_real_photo_same_as_in_process(client, resnet50_pipeline, chelsea):
    scores = client.score_image(chelsea)
    assert scores.shape == (1000,)
    assert np.array_equal(scores, resnet50_pipeline.run(chelsea).output[0])
    assert client.last_model_spec.name == "resnet50"
    assert client.last_model_spec.version.value == 1
    assert client.last_model_spec.signature_name == "serving_default"


def test_official_tf_serving_stub_gets_the_same_answer(resnet50_server, client, chelsea):
    """The original Brainwave client: string_val image bytes, no model_spec, reads outputs['output_alias']."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([chelsea]))
    with grpc.insecure_channel(resnet50_server.address,
                               options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    official = tf.make_ndarray(response.outputs["output_alias"])
    assert official.shape == (1, 1000)
    assert official.tobytes() == client.score_image(chelsea).tobytes()
    assert response.model_spec.name == "resnet50" and response.model_spec.version.value == 1


def test_azure_style_client_with_key_and_named_input(resnet50_server, chelsea, client):
    with PredictionClient(resnet50_server.address, access_token="primary-key", service_name="my-service") as keyed:
        named = keyed.score_file_bytes = keyed.score_image(chelsea, input_name="in_images:0",
                                                            outputs=["resnet_v1_50/logits/Softmax:0"])
    assert np.array_equal(named, client.score_image(chelsea))


def test_scalar_string_tensor_and_several_images(client, chelsea, coffee, rocket_jpeg):
    batch = client.score_images([chelsea, coffee, rocket_jpeg])
    assert batch.shape == (3, 1000)
    for row, data in zip(batch, (chelsea, coffee, rocket_jpeg)):
        assert np.array_equal(row, client.score_image(data))  # N images = N batch-1 passes
    scalar = client.score_tensors({"images": np.array(chelsea, dtype=object)})
    assert np.array_equal(scalar[0], batch[0])


def test_metadata_has_signature_def_map(client):
    signatures = client.get_model_metadata()
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert signature.inputs["images"].name == "in_images:0"
    assert signature.inputs["images"].dtype == 7  # DT_STRING
    assert signature.outputs["output_alias"].name == "resnet_v1_50/logits/Softmax:0"
    assert [d.size for d in signature.outputs["output_alias"].tensor_shape.dim] == [-1, 1000]


def test_official_metadata_request_unpacks_the_any(resnet50_server):
    from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "resnet50"
    with grpc.insecure_channel(resnet50_server.address) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert "images" in signatures.signature_def["serving_default"].inputs


def test_model_status_reports_available_version(client):
    status = client.get_model_status("resnet50")
    assert [(s.version, s.state) for s in status.model_version_status] == [(1, 30)]  # AVAILABLE


def test_health_and_reflection(resnet50_server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(resnet50_server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "tensorflow.serving.PredictionService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"tensorflow.serving.PredictionService", "tensorflow.serving.ModelService", "grpc.health.v1.Health"} <= services
        predict_file = database.FindFileContainingSymbol("tensorflow.serving.PredictionService")
        assert predict_file.name == "tensorflow_serving/apis/prediction_service.proto"


@pytest.mark.parametrize("method", ["Classify", "Regress", "MultiInference"])
def test_other_prediction_methods_are_unimplemented(resnet50_server, method):
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    from tensorflow_serving.apis import classification_pb2, inference_pb2, regression_pb2

    request = {"Classify": classification_pb2.ClassificationRequest, "Regress": regression_pb2.RegressionRequest,
               "MultiInference": inference_pb2.MultiInferenceRequest}[method]()
    with grpc.insecure_channel(resnet50_server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            getattr(stub, method)(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "Predict" in info.value.details()


def test_many_clients_at_once_get_consistent_answers(resnet50_server, chelsea, coffee):
    images = [chelsea, coffee] * 6
    with PredictionClient(resnet50_server.address) as c:
        expected = {data: c.score_image(data) for data in (chelsea, coffee)}

    def score(data):
        with PredictionClient(resnet50_server.address) as own:
            return data, own.score_image(data)

    with ThreadPoolExecutor(8) as pool:
        for data, scores in pool.map(score, images):
            assert np.array_equal(scores, expected[data])


def test_health_stays_serving_after_warm_up_image(client):
    assert client.score_image(synthetic_png()).shape == (1000,)




def test_client_waits_for_a_server_that_is_not_up_yet(resnet50_pipeline, chelsea):
    import threading

    from brainwave.serving.servables import ServableManager
    from tests.support import start_server

    from tests.support import free_port

    port = free_port()
    manager = ServableManager()
    manager.add("late", 1, resnet50_pipeline)
    started = []
    timer = threading.Timer(0.5, lambda: started.append(start_server(manager, port=port)))
    timer.start()
    try:
        with PredictionClient(f"127.0.0.1:{port}", wait_for_ready=True) as client:
            assert client.score_image(chelsea).shape == (1000,)
    finally:
        timer.join()
        for running in started:
            running.server.stop(grace=0)


def test_client_does_not_retry_other_errors(resnet50_server, chelsea):
    counter = resnet50_server.server.metrics.requests
    before = counter.labels("grpc", "PredictionService/Predict", "unresolved", "unresolved", "NOT_FOUND")._value.get()
    with PredictionClient(resnet50_server.address, model_name="nope", max_retries=5, retry_backoff=0.01) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.score_image(chelsea)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # one attempt, counted under "unresolved": an unknown name must not become a metrics label
    assert counter.labels("grpc", "PredictionService/Predict", "unresolved", "unresolved", "NOT_FOUND")._value.get() == before + 1
