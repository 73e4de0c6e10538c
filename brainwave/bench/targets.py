"""The two protocols bench speaks: gRPC Predict and TF Serving's REST predict. Each turns an input (encoded
image bytes, or an array with its batch axis) into a ready-to-send payload once, so the load loop only sends."""
from __future__ import annotations

import base64
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from brainwave.errors import BrainwaveError
from brainwave.protocol.api import PREDICTION_SERVICE, SIGNATURE_DEF_MAP_URL, api, method_path
from brainwave.protocol.tensors import numpy_to_tensor

OK = "OK"
MAX_MESSAGE_BYTES = 64 << 20


class BenchError(BrainwaveError):
    """bench cannot run as asked (no inputs, unreachable server, bad TLS files...)."""


@dataclass(frozen=True)
class Connection:
    address: str  # HOST:PORT (gRPC port, or the REST port with protocol "rest")
    protocol: str = "grpc"  # "grpc" or "rest"
    model: str = ""  # "" : the server's only model (gRPC); REST URLs need a name
    version: int | None = None
    key: str | None = None
    use_tls: bool = False
    ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True)
class InputSignature:
    """The model's input as its metadata declares it: 'DT_STRING' (encoded images) or a numeric dtype."""

    dtype: str
    shape: tuple[int, ...]  # -1 for open dimensions, the batch axis first


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BenchError(f"cannot read {what} {path}: {exc.strerror}") from None


class GrpcTarget:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
        if connection.use_tls or connection.ca:
            credentials = grpc.ssl_channel_credentials(_read(connection.ca, "--ca"),
                                                       _read(connection.client_key, "--client-key"),
                                                       _read(connection.client_cert, "--client-cert"))
            self._channel = grpc.aio.secure_channel(connection.address, credentials, options)
        else:
            self._channel = grpc.aio.insecure_channel(connection.address, options)
        self._metadata = (("authorization", f"Bearer {connection.key}"),) if connection.key else ()
        # bytes in, bytes out: requests are serialized once, answers are not parsed
        self._predict = self._channel.unary_unary(method_path(PREDICTION_SERVICE, "Predict"))
        self._get_metadata = self._channel.unary_unary(method_path(PREDICTION_SERVICE, "GetModelMetadata"))

    def _spec(self, spec) -> None:
        spec.name = self.connection.model
        if self.connection.version is not None:
            spec.version.value = self.connection.version

    def encode(self, item: bytes | np.ndarray) -> bytes:
        request = api().PredictRequest()
        self._spec(request.model_spec)
        array = np.array([item], dtype=object) if isinstance(item, bytes) else item
        request.inputs["images"].CopyFrom(numpy_to_tensor(array))
        return request.SerializeToString()

    async def call(self, payload: bytes) -> str:
        try:
            await self._predict(payload, timeout=self.connection.timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return OK

    async def signature(self) -> InputSignature:
        request = api().GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec)
        try:
            raw = await self._get_metadata(request.SerializeToString(), timeout=self.connection.timeout_s,
                                           metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise BenchError(f"GetModelMetadata on {self.connection.address} answered {exc.code().name}: "
                             f"{exc.details()}") from None
        metadata = api().GetModelMetadataResponse.FromString(raw).metadata["signature_def"]
        if metadata.type_url != SIGNATURE_DEF_MAP_URL:
            raise BenchError(f"unexpected metadata type {metadata.type_url}")
        signature = api().SignatureDefMap.FromString(metadata.value).signature_def["serving_default"]
        (tensor,) = signature.inputs.values()
        return InputSignature(api().DataTypeName[tensor.dtype], tuple(d.size for d in tensor.tensor_shape.dim))

    async def close(self) -> None:
        await self._channel.close()


class RestTarget:
    def __init__(self, connection: Connection, connections: int) -> None:
        import httpx

        if not connection.model:
            raise BenchError("the REST API names the model in its URL: give --model NAME")
        self.connection = connection
        self._httpx = httpx
        scheme = "https" if connection.use_tls or connection.ca else "http"
        version = f"/versions/{connection.version}" if connection.version is not None else ""
        self._model_path = f"/v1/models/{connection.model}{version}"
        verify: ssl.SSLContext | bool = False
        if scheme == "https":
            verify = ssl.create_default_context(cafile=str(connection.ca) if connection.ca else None)
            if connection.client_cert:
                verify.load_cert_chain(str(connection.client_cert), str(connection.client_key) if connection.client_key else None)
        headers = {"content-type": "application/json"}
        if connection.key:
            headers["authorization"] = f"Bearer {connection.key}"
        self._client = httpx.AsyncClient(
            base_url=f"{scheme}://{connection.address}", headers=headers, verify=verify,
            timeout=connection.timeout_s, limits=httpx.Limits(max_connections=connections,
                                                              max_keepalive_connections=connections))

    @staticmethod
    def encode(item: bytes | np.ndarray) -> bytes:
        instances = [{"b64": base64.b64encode(item).decode()}] if isinstance(item, bytes) else item.tolist()
        return json.dumps({"instances": instances}).encode()

    async def call(self, payload: bytes) -> str:
        httpx = self._httpx
        try:
            response = await self._client.post(self._model_path + ":predict", content=payload)
        except httpx.TimeoutException:
            return "TIMEOUT"
        except httpx.TransportError:
            return "CONNECTION_ERROR"
        return OK if response.status_code == 200 else f"HTTP {response.status_code}"

    async def signature(self) -> InputSignature:
        try:
            response = await self._client.get(self._model_path + "/metadata")
        except self._httpx.HTTPError as exc:
            raise BenchError(f"cannot reach {self.connection.address}: {exc}") from None
        if response.status_code != 200:
            raise BenchError(f"GET {self._model_path}/metadata answered {response.status_code}: {response.text[:200]}")
        signature = response.json()["metadata"]["signature_def"]["signature_def"]["serving_default"]
        (tensor,) = signature["inputs"].values()
        dims = tensor.get("tensor_shape", {}).get("dim", [])
        return InputSignature(tensor["dtype"], tuple(int(d.get("size", -1)) for d in dims))

    async def close(self) -> None:
        await self._client.aclose()


def open_target(connection: Connection, connections: int):
    if connection.protocol == "grpc":
        return GrpcTarget(connection)
    if connection.protocol == "rest":
        return RestTarget(connection, connections)
    raise BenchError(f"unknown protocol {connection.protocol!r}: grpc or rest")
