"""PredictionClient: score images and arrays against a brainwave (or any TF Serving) gRPC endpoint.

    with PredictionClient("localhost:50051") as client:
        probabilities = client.score_image("cat.jpg")

Results are numpy arrays; for a single image the batch dimension is stripped. Predict and the read-only calls
are retried on UNAVAILABLE by gRPC's own retry policy (the channel's service config, exponential backoff with
jitter): they are idempotent, so a request that a dying replica dropped may run again on another. Every other
status means the request itself was wrong or failed, and is not retried.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

import grpc
import numpy as np

from brainwave.protocol.api import MODEL_SERVICE, PREDICTION_SERVICE, SIGNATURE_DEF_MAP_URL, api, method_path
from brainwave.protocol.tensors import numpy_to_tensor, tensor_to_numpy

DEFAULT_PORT = 50051
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
# Idempotent calls, safe to run twice: retried on UNAVAILABLE.
RETRYABLE_METHODS = ((PREDICTION_SERVICE, "Predict"), (PREDICTION_SERVICE, "GetModelMetadata"),
                     (MODEL_SERVICE, "GetModelStatus"))
GRPC_MAX_ATTEMPTS = 5  # gRPC clamps retryPolicy.maxAttempts to 5 (and logs an error when given more)


def service_config(max_retries: int, backoff: float, load_balancing: str | None = None,
                   methods: tuple[tuple[str, str], ...] = RETRYABLE_METHODS) -> str | None:
    """The channel's service config. Retries: `methods` on UNAVAILABLE, up to `max_retries` more
    attempts (at most 4, gRPC's limit), the n-th after a random wait of up to backoff * 2**(n-1) seconds.
    `load_balancing="round_robin"` spreads calls over every address the target resolves to (a headless
    Service's DNS name, or ipv4:A:P1,B:P2) instead of gRPC's default, one connection to the first."""
    config: dict = {}
    attempts = min(max_retries + 1, GRPC_MAX_ATTEMPTS)
    if attempts >= 2:
        initial = max(backoff, 0.001)
        policy = {"maxAttempts": attempts, "initialBackoff": f"{initial:.3f}s",
                  "maxBackoff": f"{initial * 2 ** (attempts - 2):.3f}s", "backoffMultiplier": 2,
                  "retryableStatusCodes": ["UNAVAILABLE"]}
        names = [{"service": service, "method": method} for service, method in methods]
        config["methodConfig"] = [{"name": names, "retryPolicy": policy}]
    if load_balancing:
        config["loadBalancingConfig"] = [{load_balancing: {}}]
    return json.dumps(config) if config else None


def open_channel(address: str, port: int | None = None, use_ssl: bool = False, root_certificates: bytes | None = None,
                 client_certificate: bytes | None = None, client_private_key: bytes | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 service_config: str | None = None) -> tuple[grpc.Channel, str]:
    """A channel to HOST:PORT (or HOST and `port`), TLS when asked, with raised message limits and an optional
    service config (retry policy)."""
    target = address if port is None and ":" in address.rsplit("]", 1)[-1] else f"{address}:{port or DEFAULT_PORT}"
    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", max_message_bytes)]
    if service_config is not None:
        # A call is retried only while its request is still buffered: room for the largest request we send.
        options += [("grpc.service_config", service_config), ("grpc.enable_retries", 1),
                    ("grpc.per_rpc_retry_buffer_size", max_message_bytes)]
    if use_ssl:
        credentials = grpc.ssl_channel_credentials(root_certificates, client_private_key, client_certificate)
        return grpc.secure_channel(target, credentials, options), target
    return grpc.insecure_channel(target, options), target


def auth_metadata(access_token: str | None, service_name: str | None = None) -> list[tuple[str, str]]:
    metadata = []
    if access_token:
        metadata.append(("authorization", f"Bearer {access_token}"))
    if service_name:  # route header understood by Azure ML gateways
        metadata.append(("x-ms-aml-grpc-service-route", f"/api/v1/service/{service_name}"))
    return metadata


def check_health(address: str, service: str = "", timeout: float = 3.0, *, use_ssl: bool = False,
                 root_certificates: bytes | None = None) -> str:
    """What the server's grpc.health.v1 service reports for `service` ("" is the whole server): SERVING,
    NOT_SERVING... (needs grpcio-health-checking, part of the [serve] extra)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel, _ = open_channel(address, use_ssl=use_ssl, root_certificates=root_certificates)
    with channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                             timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


class PredictionClient:
    def __init__(self, address: str, port: int | None = None, use_ssl: bool = False, access_token: str | None = None,
                 service_name: str | None = None, *, model_name: str = "", model_version: int | None = None,
                 root_certificates: bytes | None = None, client_certificate: bytes | None = None,
                 client_private_key: bytes | None = None, timeout: float = 30.0, max_retries: int = 3,
                 retry_backoff: float = 0.2, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 wait_for_ready: bool = False, load_balancing: str | None = None) -> None:
        """`max_retries` (at most 4, gRPC's limit) and `retry_backoff` shape the retry policy on UNAVAILABLE;
        `wait_for_ready` makes calls wait, up to `timeout`, for a server that is not up yet instead of failing;
        `load_balancing="round_robin"` balances calls over all the target's addresses (see service_config)."""
        self._channel, target = open_channel(address, port, use_ssl, root_certificates, client_certificate,
                                             client_private_key, max_message_bytes,
                                             service_config(max_retries, retry_backoff, load_balancing))
        self.target = target
        self.model_name = model_name
        self.model_version = model_version
        self.timeout = timeout
        self.wait_for_ready = wait_for_ready
        self._metadata = auth_metadata(access_token, service_name)
        a = api()
        self._predict = self._channel.unary_unary(method_path(PREDICTION_SERVICE, "Predict"),
                                                  request_serializer=a.PredictRequest.SerializeToString,
                                                  response_deserializer=a.PredictResponse.FromString)
        self._metadata_call = self._channel.unary_unary(method_path(PREDICTION_SERVICE, "GetModelMetadata"),
                                                        request_serializer=a.GetModelMetadataRequest.SerializeToString,
                                                        response_deserializer=a.GetModelMetadataResponse.FromString)
        self._status_call = self._channel.unary_unary(method_path(MODEL_SERVICE, "GetModelStatus"),
                                                      request_serializer=a.GetModelStatusRequest.SerializeToString,
                                                      response_deserializer=a.GetModelStatusResponse.FromString)

    # --- scoring ---------------------------------------------------------------------------------
    def score_image(self, image: str | Path | bytes, input_name: str = "images", outputs: Iterable[str] | None = None):
        """Score one encoded image (a path or its bytes)."""
        data = image if isinstance(image, (bytes, bytearray)) else Path(image).read_bytes()
        return self._strip(self.score_tensors({input_name: np.array([bytes(data)], dtype=object)}, outputs))

    def score_file(self, path: str | Path, input_name: str = "images", outputs: Iterable[str] | None = None):
        return self.score_image(Path(path), input_name, outputs)

    def score_images(self, images: Iterable[str | Path | bytes], input_name: str = "images", outputs=None):
        """Score several images in one request (the server runs them one by one, batch size 1)."""
        blobs = [i if isinstance(i, (bytes, bytearray)) else Path(i).read_bytes() for i in images]
        return self.score_tensors({input_name: np.array([bytes(b) for b in blobs], dtype=object)}, outputs)

    def score_numpy_array(self, array: np.ndarray, input_name: str = "images", outputs=None):
        """Score one array (without a batch dimension)."""
        return self._strip(self.score_tensors({input_name: np.asarray(array)[np.newaxis]}, outputs))

    def score_numpy_arrays(self, arrays: Iterable[np.ndarray] | np.ndarray, input_name: str = "images", outputs=None):
        """Score a batch: a sequence of same-shaped arrays, or one array whose first axis is the batch."""
        batch = np.stack(list(arrays)) if not isinstance(arrays, np.ndarray) else arrays
        return self.score_tensors({input_name: batch}, outputs)

    def score_tensors(self, inputs: Mapping[str, object], outputs: Iterable[str] | None = None):
        """Send named inputs (numpy arrays or TensorProtos); returns one array, or a dict for several outputs."""
        request = api().PredictRequest()
        self._fill_model_spec(request.model_spec)
        for name, value in inputs.items():
            tensor = value if isinstance(value, api().TensorProto) else numpy_to_tensor(np.asarray(value))
            request.inputs[name].CopyFrom(tensor)
        wanted = list(outputs or [])
        request.output_filter.extend(wanted)
        response = self._call(self._predict, request)
        self.last_model_spec = response.model_spec
        results = {key: tensor_to_numpy(tensor, key) for key, tensor in response.outputs.items()}
        if len(results) == 1 and len(wanted) <= 1:
            return next(iter(results.values()))
        return results

    # --- metadata ---------------------------------------------------------------------------------
    def get_model_metadata(self):
        """The model's SignatureDefMap (serving_default: inputs and outputs)."""
        request = api().GetModelMetadataRequest()
        self._fill_model_spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._call(self._metadata_call, request)
        any_message = response.metadata["signature_def"]
        if any_message.type_url != SIGNATURE_DEF_MAP_URL:
            raise ValueError(f"unexpected metadata type {any_message.type_url}")
        return api().SignatureDefMap.FromString(any_message.value)

    def get_model_status(self, model_name: str | None = None):
        request = api().GetModelStatusRequest()
        request.model_spec.name = model_name or self.model_name
        return self._call(self._status_call, request)

    # --- plumbing ---------------------------------------------------------------------------------
    def _fill_model_spec(self, spec) -> None:
        if self.model_name:
            spec.name = self.model_name
        if self.model_version is not None:
            spec.version.value = self.model_version

    def _call(self, method, request):
        return method(request, timeout=self.timeout, metadata=self._metadata, wait_for_ready=self.wait_for_ready)

    @staticmethod
    def _strip(result):
        if isinstance(result, dict):
            return {k: v[0] if v.shape[:1] == (1,) else v for k, v in result.items()}
        return result[0] if result.shape[:1] == (1,) else result

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "PredictionClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
