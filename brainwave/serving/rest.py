"""TF Serving's REST API on its own port (`brainwave serve --rest-port`), on the gRPC server's own logic.

    POST /v1/models/NAME[/versions/V | /labels/L]:predict     {"instances": [...]} or {"inputs": ...}
    GET  /v1/models/NAME[/versions/V | /labels/L]             model status (GetModelStatusResponse as JSON)
    GET  /v1/models/NAME[/versions/V | /labels/L]/metadata    signature (GetModelMetadataResponse as JSON)

JSON becomes the same arrays a TensorProto would (bytes as {"b64": ...}); routing, leases, limits, keys and
error statuses are the gRPC server's (PredictionHandlers.run_predict, status_for). Errors answer TF Serving's
`{"error": "..."}` with the HTTP status TF Serving's REST server maps each gRPC code to.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

import anyio
import grpc
import numpy as np
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from brainwave.errors import InvalidInputError, brief, clip
from brainwave.protocol.api import api
from brainwave.serving.auth import KeyRing, presented_key
from brainwave.serving.metrics import REQUEST_ID_HEADER, ServingMetrics, note_model, request_id, request_scope
from brainwave.serving.model_status import ModelStatusHandlers
from brainwave.serving.prediction import INPUT_ALIAS, InputSpec, PredictionHandlers
from brainwave.serving.status import RequestError

# TF Serving's REST server (model_servers/http_server.cc, ToHTTPStatusCode)
HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DATA_LOSS: 500, grpc.StatusCode.UNAUTHENTICATED: 401,
}
PAYLOAD_TOO_LARGE = 413  # the one departure: gRPC says RESOURCE_EXHAUSTED, but 429 would invite a retry

_MODEL = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
_PREDICT = re.compile(_MODEL + r":(?P<verb>predict|classify|regress)")
_STATUS = re.compile(_MODEL + r"(?P<metadata>/metadata)?")
_INT64_MAX = (1 << 63) - 1

# Method names shared with gRPC, so metrics and logs line up across protocols
PREDICT, METADATA, STATUS = "PredictionService/Predict", "PredictionService/GetModelMetadata", "ModelService/GetModelStatus"


@dataclass(frozen=True)
class ModelRoute:
    name: str
    version: int | None
    label: str | None

    @classmethod
    def parse(cls, match: re.Match) -> "ModelRoute":
        version = match["version"]
        if version is not None and int(version) > _INT64_MAX:
            raise InvalidInputError(f"Failed to convert version: {clip(version, 40)} to numeric.")
        return cls(match["name"], int(version) if version is not None else None, match["label"])

    def spec(self):
        spec = api().ModelSpec(name=self.name)
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        return spec


class _Disconnect:
    """The REST call's CallControl: active until the client disconnects; REST carries no deadline."""

    def __init__(self) -> None:
        self.gone = threading.Event()

    def is_active(self) -> bool:
        return not self.gone.is_set()

    def time_remaining(self) -> float | None:
        return None


class RestApi:
    def __init__(self, prediction: PredictionHandlers, status: ModelStatusHandlers, metrics: ServingMetrics,
                 failure: Callable[[str, Exception], tuple[grpc.StatusCode, str]], keys=None,
                 max_body_bytes: int = 64 << 20, max_concurrent: int = 64, workers: int = 16) -> None:
        """`failure(method, exc)` turns an error into (code, message) and logs it, exactly as for gRPC."""
        self.prediction, self.status, self.metrics, self.failure = prediction, status, metrics, failure
        self.keys = keys
        self.max_body_bytes, self.max_concurrent, self.workers = max_body_bytes, max_concurrent, workers
        self._active = 0  # calls being read, queued or run; touched only on the event loop
        self._limiter: anyio.CapacityLimiter | None = None

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", self.dispatch, methods=methods)])

    # --- HTTP ------------------------------------------------------------------------------------
    async def dispatch(self, request: Request) -> Response:
        start = time.perf_counter()
        rid = request_id(request.headers.get(REQUEST_ID_HEADER))
        route, status, body = await self._answer(request, rid)
        self.metrics.observe_http(request.method, route, status, time.perf_counter() - start)
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Response(content, status, media_type="application/json", headers={REQUEST_ID_HEADER: rid})

    async def _answer(self, request: Request, rid: str) -> tuple[str, int, dict | bytes]:
        path, verb = request.url.path, request.method
        predict, status = _PREDICT.fullmatch(path), _STATUS.fullmatch(path)
        if verb == "POST" and predict:
            route, method = "/v1/models/{name}:" + predict["verb"], PREDICT
        elif verb == "GET" and status:
            route, method = "/v1/models/{name}" + ("/metadata" if status["metadata"] else ""), \
                METADATA if status["metadata"] else STATUS
        elif path.startswith("/v1/"):
            return "unmatched", 400, {"error": f"Malformed request: {verb} {clip(path, 200)}"}
        else:
            return "unmatched", 404, {"error": f"no such resource: {clip(path, 200)} (the API is under /v1/models)"}
        denied = self._denied(request)
        if denied:
            return route, 401, {"error": denied}
        if self._active >= self.max_concurrent:
            return route, HTTP_STATUS[grpc.StatusCode.RESOURCE_EXHAUSTED], {"error": "Concurrent RPC limit exceeded!"}
        self._active += 1
        try:
            body = b""
            if method == PREDICT:
                try:
                    body = await self._body(request)
                except ClientDisconnect:  # gone before its body arrived: nothing to answer, nothing to log
                    return route, HTTP_STATUS[grpc.StatusCode.CANCELLED], {"error": "the client disconnected"}
                if body is None:
                    return route, PAYLOAD_TOO_LARGE, {"error": f"the request body is larger than the server's "
                                                               f"limit of {self.max_body_bytes} bytes (--max-message-mb)"}
            match = predict if method == PREDICT else status
            code, payload = await self._call(request, rid, method, match, body)
            return route, HTTP_STATUS.get(code, 500), payload
        finally:
            self._active -= 1

    def _denied(self, request: Request) -> str | None:
        """None when the call may go ahead; otherwise why not (the gRPC server's rule and wording)."""
        if self.keys is None:
            return None
        key = presented_key([("authorization", request.headers["authorization"])]
                            if "authorization" in request.headers else [])
        if key is None:
            return "missing API key: send the header 'Authorization: Bearer <key>'"
        ring = self.keys if isinstance(self.keys, KeyRing) else self.keys.current()
        return None if ring.accepts(key) else "invalid API key"

    async def _body(self, request: Request) -> bytes | None:
        """The body, or None as soon as it is known to exceed the limit (before it is all read)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _call(self, request: Request, rid: str, method: str, match: re.Match, body: bytes):
        """Run the call on a worker thread while watching for the client to hang up (which stops the work
        between items and stages, as a gRPC cancellation does)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.workers)
        control = _Disconnect()
        work = functools.partial(self._work, rid, method, match, body, control)
        self.metrics.queued.labels("rest").inc()
        async with anyio.create_task_group() as tasks:
            async def watch() -> None:
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                control.gone.set()
            if method == PREDICT:
                tasks.start_soon(watch)
            result = await anyio.to_thread.run_sync(work, limiter=self._limiter)
            tasks.cancel_scope.cancel()
        return result

    # --- the call, on a worker thread ------------------------------------------------------------
    def _work(self, rid: str, method: str, match: re.Match, body: bytes, control: _Disconnect):
        with self.metrics.working("rest"), request_scope("rest", method, rid) as scope:
            start = time.perf_counter()
            try:
                route = ModelRoute.parse(match)
                note_model(route.name, self.prediction.manager.model_names())
                if method == PREDICT:
                    if match["verb"] != "predict":
                        raise RequestError(grpc.StatusCode.UNIMPLEMENTED, f"{match['verb']} is not implemented: "
                                                                          "brainwave pipelines are served through predict")
                    payload = self._predict(route, body, control)
                elif method == METADATA:
                    payload = self._metadata(route)
                else:
                    payload = self._status(route)
                code = grpc.StatusCode.OK
            except Exception as exc:  # noqa: BLE001 - the boundary where errors become statuses
                code, message = self.failure(f"REST {method}", exc)
                payload = {"error": message}
            self.metrics.observe_request(scope, code.name, time.perf_counter() - start)
        return code, json.dumps(payload).encode()  # here, not on the event loop: a batch's answer is large

    def _predict(self, route: ModelRoute, body: bytes, control: _Disconnect) -> dict:
        request = parse_predict_body(body)
        result = self.prediction.run_predict(route.name, route.version, route.label, request.signature_name,
                                             request.inputs, decode_json_input, request.output_filter, control)
        return encode_outputs(result.outputs, request.row_format)

    def _status(self, route: ModelRoute) -> dict:
        request = api().GetModelStatusRequest()
        request.model_spec.CopyFrom(route.spec())
        response = self.status.get_model_status(request, None)
        for version in response.model_version_status:
            version.status.SetInParent()  # TF Serving's REST answer always shows it, "OK" when all is well
        return json_format.MessageToDict(response, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)

    def _metadata(self, route: ModelRoute) -> dict:
        request = api().GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.CopyFrom(route.spec())
        response = self.prediction.get_model_metadata(request, None)
        signatures = api().SignatureDefMap.FromString(response.metadata["signature_def"].value)
        return {"model_spec": json_format.MessageToDict(response.model_spec, preserving_proto_field_name=True),
                "metadata": {"signature_def": json_format.MessageToDict(signatures, preserving_proto_field_name=True)}}


# --- JSON <-> arrays -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictBody:
    inputs: dict  # alias -> JSON value
    row_format: bool
    signature_name: str = ""
    output_filter: tuple[str, ...] = ()


def _is_b64(value) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def parse_predict_body(body: bytes) -> PredictBody:
    """TF Serving's predict body: `instances` (row format) or `inputs` (columnar), a single unnamed input or
    inputs by name; `signature_name`; and, as a brainwave extension, gRPC's `output_filter`."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidInputError(f"the request body is not JSON: {clip(str(exc), 120)}") from None
    if not isinstance(payload, dict):
        raise InvalidInputError("the request body must be a JSON object with 'instances' or 'inputs'")
    if ("instances" in payload) == ("inputs" in payload):
        raise InvalidInputError("the request body needs exactly one of 'instances' (row format) and 'inputs' "
                                "(columnar format)")
    signature = payload.get("signature_name", "")
    output_filter = payload.get("output_filter", [])
    if not isinstance(signature, str):
        raise InvalidInputError("'signature_name' must be a string")
    if not isinstance(output_filter, list) or not all(isinstance(key, str) for key in output_filter):
        raise InvalidInputError("'output_filter' must be a list of output names")
    if "inputs" in payload:
        value = payload["inputs"]
        inputs = value if isinstance(value, dict) and not _is_b64(value) else {INPUT_ALIAS: value}
        return PredictBody(inputs, False, signature, tuple(output_filter))
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise InvalidInputError("'instances' must be a list (one entry per item)")
    named = bool(instances) and all(isinstance(i, dict) and not _is_b64(i) for i in instances)
    if not named:
        return PredictBody({INPUT_ALIAS: instances}, True, signature, tuple(output_filter))
    names = set(instances[0])
    if any(set(instance) != names for instance in instances):
        raise InvalidInputError("every instance must name the same inputs")
    return PredictBody({name: [instance[name] for instance in instances] for name in names}, True, signature,
                       tuple(output_filter))


def decode_json_input(value, alias: str, spec: InputSpec) -> np.ndarray:
    """A JSON value as the array a TensorProto would carry: nested lists give the shape (they must be
    rectangular), strings and {"b64": ...} give bytes, numbers the model's dtype. Counted against the request's
    element limit before any array is built."""
    shape, leaves = [], [value]
    while leaves and all(isinstance(leaf, list) for leaf in leaves):
        lengths = {len(leaf) for leaf in leaves}
        if len(lengths) != 1:
            raise InvalidInputError(f"input {brief(alias)} is ragged: lists at depth {len(shape)} have different "
                                    f"lengths {brief(sorted(lengths)[:4])}")
        shape.append(lengths.pop())
        leaves = [item for leaf in leaves for item in leaf]
        if len(leaves) > spec.max_elements:
            raise InvalidInputError(f"input {brief(alias)} holds more than the {spec.max_elements} elements one "
                                    "request may carry to this model")
    if any(isinstance(leaf, list) for leaf in leaves):
        raise InvalidInputError(f"input {brief(alias)} is ragged: lists and values mixed at depth {len(shape)}")
    if all(isinstance(leaf, str) or _is_b64(leaf) for leaf in leaves):
        array = np.empty(len(leaves), dtype=object)
        array[:] = [_bytes(leaf, alias) for leaf in leaves]
        return array.reshape(shape)
    numbers = all(isinstance(leaf, (int, float)) and not isinstance(leaf, bool) for leaf in leaves)
    if not numbers and not all(isinstance(leaf, bool) for leaf in leaves):
        raise InvalidInputError(f"input {brief(alias)} mixes kinds of values (or holds null or objects); send "
                                "numbers, booleans, strings or {\"b64\": ...} bytes")
    # numbers take the model's dtype; for an image model they stay numbers, and the dtype check says so
    dtype = (spec.dtype if spec.dtype is not None else np.dtype(np.float32)) if numbers else np.dtype(np.bool_)
    try:
        return np.asarray(leaves, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise InvalidInputError(f"input {brief(alias)} does not fit {dtype}: {clip(str(exc), 120)}") from None


def _bytes(leaf, alias: str) -> bytes:
    if isinstance(leaf, str):
        return leaf.encode()
    encoded = leaf["b64"]
    if not isinstance(encoded, str):
        raise InvalidInputError(f"input {brief(alias)}: a b64 value must be a string")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"input {brief(alias)}: a b64 value is not valid base64") from None


def encode_outputs(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    """{"predictions": rows} for row-format requests, {"outputs": tensor} for columnar ones; one output goes
    unnamed, several by name (TF Serving's rule). Floats keep their float32 value exactly."""
    values = {key: _json_value(key, array) for key, array in outputs.items()}
    if len(values) == 1:
        (only,) = values.values()
        return {"predictions": only} if row_format else {"outputs": only}
    if not row_format:
        return {"outputs": values}
    rows = len(next(iter(outputs.values())))
    return {"predictions": [{key: value[i] for key, value in values.items()} for i in range(rows)]}


def _json_value(key: str, array: np.ndarray):
    if array.dtype == object:
        if key.endswith("_bytes"):
            return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])(array).tolist()
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array).tolist()
    return array.tolist()

