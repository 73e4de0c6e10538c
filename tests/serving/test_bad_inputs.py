"""Every bad request gets the right status and a message saying what was wrong; the server keeps serving."""
import io

import grpc
import numpy as np
import pytest
from PIL import Image

from brainwave.client import PredictionClient
from brainwave.protocol.api import api

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def huge_declared_png(width=20000, height=20000) -> bytes:
    """A valid tiny PNG whose header claims width x height (decoders would allocate 1.2 GB)."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def request_with(inputs: dict, **spec):
    request = api().PredictRequest()
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    for name, tensor in inputs.items():
        request.inputs[name].CopyFrom(tensor)
    return request


def string_tensor(*values: bytes):
    tensor = api().TensorProto(dtype=api().DataType["DT_STRING"])
    tensor.tensor_shape.dim.add().size = len(values)
    tensor.string_val.extend(values)
    return tensor


def float_tensor():
    tensor = api().TensorProto(dtype=api().DataType["DT_FLOAT"])
    tensor.tensor_shape.dim.add().size = 2
    tensor.float_val.extend([1.0, 2.0])
    return tensor


def cases(chelsea: bytes, rocket: bytes):
    return {
        "empty request": (request_with({}), INVALID, "input size does not match signature: 0!=1"),
        "unknown model": (request_with({"images": string_tensor(chelsea)}, name="nope"), grpc.StatusCode.NOT_FOUND,
                          "Servable not found for request: Latest(nope)"),
        "unknown version": (request_with({"images": string_tensor(chelsea)}, name="resnet50", version=9),
                            grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(resnet50, 9)"),
        "unknown label": (request_with({"images": string_tensor(chelsea)}, name="resnet50", version_label="canary"),
                          grpc.StatusCode.NOT_FOUND, "Label(resnet50, canary)"),
        "unknown signature": (request_with({"images": string_tensor(chelsea)}, signature_name="classify"),
                              grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "classify" not found.'),
        "wrong key with two inputs": (request_with({"image": string_tensor(chelsea), "extra": string_tensor(chelsea)}),
                                      INVALID, "Sent extra: {extra,image}. Missing but required: {images}"),
        "wrong key": (request_with({"image": string_tensor(chelsea)}), INVALID,
                      "input tensor alias not found in signature: image. Inputs expected to be in the set {images}"),
        "wrong dtype": (request_with({"images": float_tensor()}), INVALID,
                        "Expects arg[0] (images) to be string but float is provided"),
        "corrupt png": (request_with({"images": string_tensor(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)}), INVALID,
                        "is not a recognized image"),
        "zero-byte image": (request_with({"images": string_tensor(b"")}), INVALID, "is empty (0 bytes)"),
        "truncated jpeg": (request_with({"images": string_tensor(rocket[: len(rocket) // 3])}), INVALID,
                           "stage 0 (input_trans.pb) could not process the input"),
        "20000x20000 declared": (request_with({"images": string_tensor(huge_declared_png())}), INVALID,
                                 "declares 400000000 pixels, more than the limit of 40000000"),
        "30 MB garbage": (request_with({"images": string_tensor(np.random.default_rng(0).bytes(30 << 20))}), INVALID,
                          "is not a recognized image (31457280 bytes"),
        "bad output filter": (request_with({"images": string_tensor(chelsea)}), INVALID,
                              "output tensor alias not found in signature: probs"),
        "too few values": (request_with({"images": _short_tensor()}), INVALID, "string_val has 2 values but shape [3] needs 3"),
    }


def _short_tensor():
    tensor = api().TensorProto(dtype=api().DataType["DT_STRING"])
    tensor.tensor_shape.dim.add().size = 3
    tensor.string_val.extend([b"a", b"b"])
    return tensor


@pytest.fixture(scope="module")
def bad_cases(chelsea, rocket_jpeg):
    return cases(chelsea, rocket_jpeg)


CASE_NAMES = list(cases(b"x", b"x").keys())


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_request_gets_status_and_message_and_server_keeps_serving(resnet50_server, bad_cases, chelsea, name):
    request, code, message = bad_cases[name]
    if name == "bad output filter":
        request.output_filter.append("probs")
    a = api()
    with grpc.insecure_channel(resnet50_server.address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                      request_serializer=a.PredictRequest.SerializeToString,
                                      response_deserializer=a.PredictResponse.FromString)
        with pytest.raises(grpc.RpcError) as info:
            predict(request, timeout=60)
    assert info.value.code() == code, info.value.details()
    assert message in info.value.details()
    with PredictionClient(resnet50_server.address) as client:  # still serving
        assert client.score_image(chelsea).shape == (1000,)


def test_one_value_broadcast_is_refused_for_images_but_fine_for_numbers():
    from brainwave.protocol.tensors import tensor_to_numpy

    tensor = api().TensorProto(dtype=api().DataType["DT_FLOAT"])
    tensor.tensor_shape.dim.add().size = 3
    tensor.float_val.append(2.5)
    assert tensor_to_numpy(tensor, "x").tolist() == [2.5, 2.5, 2.5]


def test_message_limit_is_configurable_and_reported(resnet50_pipeline, chelsea):
    from brainwave.serving.servables import ServableManager
    from tests.support import start_server

    manager = ServableManager()
    manager.add("small", 1, resnet50_pipeline)
    running = start_server(manager, max_message_bytes=64 << 10)
    try:
        with PredictionClient(running.address) as client:
            with pytest.raises(grpc.RpcError) as info:
                client.score_image(chelsea)  # 220 KB > 64 KB
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in info.value.details()
    finally:
        running.server.stop(grace=0)
