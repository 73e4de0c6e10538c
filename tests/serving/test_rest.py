"""TF Serving's REST API (--rest-port): the same answers as gRPC for the same image, the same statuses (mapped
to HTTP as TF Serving maps them) for every bad request the gRPC tests send, and the same keys and limits."""
from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time

import grpc
import httpx
import numpy as np
import pytest

from brainwave.client import PredictionClient
from brainwave.errors import InvalidInputError
from brainwave.protocol.tensors import tensor_to_numpy
from brainwave.serving.auth import KeyRing
from brainwave.serving.rest import HTTP_STATUS
from brainwave.serving.servables import ServableManager
from tests.serving.test_bad_inputs import CASE_NAMES, cases
from tests.serving.test_hostile_requests import _histogram_count
from tests.support import start_server


@pytest.fixture(scope="module")
def rest_server(resnet50_pipeline):
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, rest_port=0)
    running.rest = f"http://127.0.0.1:{running.server.rest.port}"
    yield running
    running.server.stop(grace=0)


@pytest.fixture(scope="module")
def bad_cases(chelsea, rocket_jpeg):
    return cases(chelsea, rocket_jpeg)


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def post(base: str, path: str, body, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(base + path, content=content, timeout=120, **kwargs)


def test_rest_and_grpc_give_the_same_bits(rest_server, chelsea):
    with PredictionClient(rest_server.address) as client:
        want = np.asarray(client.score_image(chelsea), np.float32)
    row = post(rest_server.rest, "/v1/models/resnet50:predict", {"instances": [b64(chelsea)]})
    assert row.status_code == 200, row.text
    got = np.asarray(row.json()["predictions"], np.float32)
    assert got.shape == (1, 1000) and got[0].tobytes() == want.tobytes()
    columns = post(rest_server.rest, "/v1/models/resnet50/versions/1:predict", {"inputs": {"images": [b64(chelsea)]}})
    assert np.asarray(columns.json()["outputs"], np.float32)[0].tobytes() == want.tobytes()
    named = post(rest_server.rest, "/v1/models/resnet50:predict", {"instances": [{"images": b64(chelsea)}]})
    assert np.asarray(named.json()["predictions"], np.float32)[0].tobytes() == want.tobytes()


def test_model_status_and_metadata(rest_server):
    status = httpx.get(rest_server.rest + "/v1/models/resnet50")
    assert status.status_code == 200
    assert status.json()["model_version_status"] == [{"version": "1", "state": "AVAILABLE",
                                                      "status": {"error_code": "OK", "error_message": ""}}]
    assert httpx.get(rest_server.rest + "/v1/models/resnet50/versions/1").json()["model_version_status"][0]["state"] == "AVAILABLE"
    missing = httpx.get(rest_server.rest + "/v1/models/resnet50/versions/7")
    assert missing.status_code == 404 and "Could not find version 7" in missing.json()["error"]
    metadata = httpx.get(rest_server.rest + "/v1/models/resnet50/metadata").json()
    assert metadata["model_spec"] == {"name": "resnet50", "version": "1", "signature_name": "serving_default"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["images"]["dtype"] == "DT_STRING"
    assert signature["outputs"]["output_alias"]["tensor_shape"]["dim"][1]["size"] == "1000"


def _rest_form(request) -> tuple[str, dict] | None:
    """A gRPC case as a REST call (columnar format), or None when it has no JSON form (JSON declares no shape
    apart from its values, so a mismatch between the two cannot be sent)."""
    spec = request.model_spec
    path = f"/v1/models/{spec.name or 'resnet50'}"
    kind = spec.WhichOneof("version_choice")
    path += {"version": f"/versions/{spec.version.value}", "version_label": f"/labels/{spec.version_label}"}.get(kind, "")
    inputs = {}
    for alias, tensor in request.inputs.items():
        try:
            array = tensor_to_numpy(tensor, alias)
        except InvalidInputError:
            return None
        inputs[alias] = np.vectorize(b64, otypes=[object])(array).tolist() if array.dtype == object else array.tolist()
    body = {"inputs": inputs}
    if spec.signature_name:
        body["signature_name"] = spec.signature_name
    return path + ":predict", body


@pytest.mark.parametrize("name", CASE_NAMES)
def test_every_grpc_bad_request_has_its_rest_twin(rest_server, bad_cases, chelsea, name):
    request, code, message = bad_cases[name]
    form = _rest_form(request)
    if form is None:
        pytest.skip("the case rests on a declared shape, which JSON does not carry")
    path, body = form
    if name == "bad output filter":
        body["output_filter"] = ["probs"]  # gRPC's output_filter, a brainwave extension of the JSON body
    answer = post(rest_server.rest, path, body)
    assert answer.status_code == HTTP_STATUS[code], answer.text
    assert message in answer.json()["error"]
    assert answer.headers["content-type"] == "application/json"
    assert post(rest_server.rest, "/v1/models/resnet50:predict", {"instances": [b64(chelsea)]}).status_code == 200


def test_only_shape_cases_are_skipped(bad_cases):
    assert [name for name in CASE_NAMES if _rest_form(bad_cases[name][0]) is None] == ["too few values"]


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "not JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b"{}", 400, "exactly one of 'instances'"),
    (json.dumps({"instances": [], "inputs": []}).encode(), 400, "exactly one of"),
    (json.dumps({"instances": [{"b64": "***"}]}).encode(), 400, "not valid base64"),
    (json.dumps({"instances": [[1, 2], [3]]}).encode(), 400, "ragged"),
    (json.dumps({"instances": [None]}).encode(), 400, "mixes kinds"),
    (json.dumps({"instances": [{"images": 1}, {"other": 2}]}).encode(), 400, "same inputs"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "not JSON"),
])
def test_malformed_bodies_are_400(rest_server, body, status, message):
    answer = post(rest_server.rest, "/v1/models/resnet50:predict", body)
    assert answer.status_code == status and message in answer.json()["error"], answer.text


def test_paths_verbs_and_request_ids(rest_server):
    assert httpx.get(rest_server.rest + "/").status_code == 404
    malformed = httpx.get(rest_server.rest + "/v1/models/resnet50:predict")
    assert malformed.status_code == 400 and "Malformed request" in malformed.json()["error"]
    classify = post(rest_server.rest, "/v1/models/resnet50:classify", {"examples": []})
    assert classify.status_code == 501
    label = post(rest_server.rest, "/v1/models/resnet50/labels/stable:predict", {"instances": []})
    assert label.status_code == 404 and "Label(resnet50, stable)" in label.json()["error"]
    huge = httpx.get(rest_server.rest + f"/v1/models/resnet50/versions/{10 ** 30}")
    assert huge.status_code == 400 and "Failed to convert version" in huge.json()["error"]
    mine = httpx.get(rest_server.rest + "/v1/models/resnet50", headers={"x-request-id": "trace-42"})
    assert mine.headers["x-request-id"] == "trace-42"
    assert len(httpx.get(rest_server.rest + "/v1/models/resnet50").headers["x-request-id"]) == 32


def test_a_20kb_model_name_is_not_echoed(rest_server):
    answer = post(rest_server.rest, "/v1/models/" + "m" * 20_000 + ":predict", {"instances": []})
    assert answer.status_code == 404 and len(answer.json()["error"]) < 400


def test_duplicate_output_filter_and_too_many_images(rest_server, chelsea):
    answer = post(rest_server.rest, "/v1/models/resnet50:predict",
                  {"instances": [b64(chelsea)], "output_filter": ["output_alias", "output_alias"]})
    assert answer.status_code == 400 and "more than once" in answer.json()["error"]
    answer = post(rest_server.rest, "/v1/models/resnet50:predict", {"instances": [b64(b"x")] * 65})
    assert answer.status_code == 400 and "64" in answer.json()["error"]


def test_keys_and_tls_as_for_grpc(resnet50_pipeline, pki, chelsea):
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, keys=KeyRing("rest-key", "second"), rest_port=0,
                           tls_cert=pki / "server.crt", tls_key=pki / "server.key")
    base = f"https://127.0.0.1:{running.server.rest.port}"
    verify = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    try:
        body = {"instances": [b64(chelsea)]}
        for headers, message in (({}, "missing API key"), ({"authorization": "Bearer guess"}, "invalid API key")):
            answer = httpx.post(base + "/v1/models/resnet50:predict", json=body, headers=headers, verify=verify)
            assert answer.status_code == 401 and message in answer.json()["error"]
        for value in ("Bearer rest-key", "second"):  # the bare key is accepted, as over gRPC
            answer = httpx.post(base + "/v1/models/resnet50:predict", json=body, headers={"authorization": value},
                                verify=verify, timeout=120)
            assert answer.status_code == 200
        with pytest.raises(httpx.HTTPError):  # plaintext against the TLS port
            httpx.get(f"http://127.0.0.1:{running.server.rest.port}/v1/models/resnet50", timeout=10)
    finally:
        running.server.stop(grace=0)


def test_pixel_budgets_and_body_limit(resnet50_pipeline, chelsea):
    from brainwave.serving.limits import RequestLimits

    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    pixels = 451 * 300  # chelsea.png
    running = start_server(manager, limits=RequestLimits(max_request_pixels=3 * pixels), max_inflight_pixels=2 * pixels,
                           max_message_bytes=2 << 20, rest_port=0)
    base = f"http://127.0.0.1:{running.server.rest.port}"
    try:
        answer = post(base, "/v1/models/resnet50:predict", {"instances": [b64(chelsea)] * 4})
        assert answer.status_code == 400 and "pixels" in answer.json()["error"]
        answer = post(base, "/v1/models/resnet50:predict", {"instances": [b64(chelsea)] * 3})
        assert answer.status_code == 429 and "--max-inflight-pixels" in answer.json()["error"]
        answer = post(base, "/v1/models/resnet50:predict", {"instances": [b64(chelsea)] * 2})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
        answer = post(base, "/v1/models/resnet50:predict", {"instances": [b64(bytes(3 << 20))]})
        assert answer.status_code == 413 and "--max-message-mb" in answer.json()["error"]
    finally:
        running.server.stop(grace=0)


def test_numeric_fill_is_bounded_by_the_model_input(tmp_path):
    from brainwave.pipeline import Pipeline
    from tests.support import tensor_pipeline_zip

    manager = ServableManager()
    manager.add("numbers", 1, Pipeline.load(tensor_pipeline_zip(tmp_path / "model.zip")))
    running = start_server(manager, rest_port=0)
    base = f"http://127.0.0.1:{running.server.rest.port}"
    try:
        answer = post(base, "/v1/models/numbers:predict", {"inputs": [[1.0, 2.0, 3.0, 4.0]] * 65})
        assert answer.status_code == 400 and "elements" in answer.json()["error"]
        answer = post(base, "/v1/models/numbers:predict", {"instances": [[1, 2, 3, 4]]})
        with PredictionClient(running.address) as client:
            want = client.score_numpy_array(np.array([1, 2, 3, 4], np.float32))
        assert np.asarray(answer.json()["predictions"], np.float32)[0].tobytes() == want.tobytes()
    finally:
        running.server.stop(grace=0)
        manager.close()


def test_concurrent_calls_beyond_the_limit_get_429(resnet50_pipeline, chelsea):
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, max_concurrent_rpcs=2, workers=4, rest_port=0)
    base = f"http://127.0.0.1:{running.server.rest.port}"
    statuses, bodies = [], []

    def call() -> None:
        answer = post(base, "/v1/models/resnet50:predict", {"instances": [b64(chelsea)] * 6})
        statuses.append(answer.status_code)
        bodies.append(answer.json())

    try:
        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 429 in statuses and 200 in statuses
        assert all("Concurrent RPC limit" in body["error"] for body, s in zip(bodies, statuses) if s == 429)
    finally:
        running.server.stop(grace=0)


def test_a_client_that_hangs_up_stops_the_work_between_items(rest_server, chelsea):
    stage = "stage 1 (resnet50 on float)"
    before = _histogram_count(rest_server, stage)
    body = json.dumps({"instances": [b64(chelsea)] * 64}).encode()
    port = rest_server.server.rest.port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/models/resnet50:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.monotonic() + 60
        while _histogram_count(rest_server, stage) == before and time.monotonic() < deadline:
            time.sleep(0.05)  # the work has started
    time.sleep(2.0)  # whatever item was running finishes; nothing after it starts
    ran = _histogram_count(rest_server, stage) - before
    assert 0 < ran < 64, "the server ran every item of a request whose client had gone"


def test_an_internal_error_does_not_leak_its_text(resnet50_pipeline, chelsea, monkeypatch):
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, rest_port=0)
    try:
        def broken(*args, **kwargs):
            raise RuntimeError("/secret/path/inside/the/server")

        monkeypatch.setattr(resnet50_pipeline, "run", broken)
        answer = post(f"http://127.0.0.1:{running.server.rest.port}", "/v1/models/resnet50:predict",
                      {"instances": [b64(chelsea)]})
        assert answer.status_code == 500 and "secret" not in answer.text
    finally:
        running.server.stop(grace=0)


def test_a_taken_rest_port_fails_before_loading(resnet50_pipeline):
    from brainwave.serving.server import ConfigError, ModelServer, ServerConfig

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ModelServer(ServableManager(), ServerConfig(host="127.0.0.1", port=0, rest_port=taken.getsockname()[1]))
        with pytest.raises(ConfigError, match="--rest-port"):
            server.bind()
        server.stop(grace=0)


def test_grpc_status_codes_map_like_tf_serving():
    assert HTTP_STATUS[grpc.StatusCode.FAILED_PRECONDITION] == 400
    assert HTTP_STATUS[grpc.StatusCode.UNAVAILABLE] == 503 and HTTP_STATUS[grpc.StatusCode.DEADLINE_EXCEEDED] == 504
    assert set(HTTP_STATUS) == set(grpc.StatusCode)
