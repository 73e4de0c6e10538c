"""Versioned serving: reloads with TF Serving's ModelService, labels, canary split, mirroring, promote,
rollback, and a load test that swaps versions under traffic without a single failed request."""
import threading
import time

import grpc
import numpy as np
import pytest

from brainwave.admin_client import ModelAdminClient
from brainwave.client import PredictionClient
from brainwave.pipeline import Pipeline
from brainwave.serving.servables import ServableManager
from brainwave.serving.versions import RESOURCE_PRESERVING, VersionPolicy
from tests.support import small_pipeline_zip, start_server

SEEDS = {1: 11, 2: 22, 3: 33, 4: 11}  # version 4 has version 1's weights: their top-1 always agree


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    base = tmp_path_factory.mktemp("versions")
    for version, seed in SEEDS.items():
        small_pipeline_zip(base / str(version) / "model.zip", seed)
    return base


@pytest.fixture
def server(base_path):
    running = start_server(ServableManager(), admin_without_keys=True, model_roots=(base_path,))
    yield running
    running.server.stop(grace=1)
    running.manager.close()


def _versions(admin, model="small"):
    return {s.version: s.state for s in admin.status(model)}


def _answering_version(address, **kwargs) -> int:
    with PredictionClient(address, model_name="small", **kwargs) as client:
        client.score_image(_image())
        return client.last_model_spec.version.value


def _image(_cache={}):
    if "png" not in _cache:
        from tests.support import skimage_image
        _cache["png"] = skimage_image("chelsea.png").read_bytes()
    return _cache["png"]


def test_reload_through_the_official_model_service(server, base_path):
    from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2, model_service_pb2_grpc

    request = model_management_pb2.ReloadConfigRequest()
    config = request.config.model_config_list.config.add()
    config.name, config.base_path = "small", str(base_path)
    config.model_version_policy.specific.versions.extend([1, 2])
    config.version_labels["stable"] = 1
    with grpc.insecure_channel(server.address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        stub.HandleReloadConfigRequest(request, timeout=120)
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "small"
        status = stub.GetModelStatus(status_request, timeout=10)
    assert [(s.version, s.state) for s in status.model_version_status] == [(1, 30), (2, 30)]
    assert _answering_version(server.address) == 1  # unpinned -> stable
    assert _answering_version(server.address, model_version=2) == 2


def test_latest_policy_unloads_old_versions_and_reports_end(server, base_path):
    with ModelAdminClient(server.address) as admin:
        admin.reload({"small": (base_path, VersionPolicy.parse("1,2"), {})})
        admin.reload({"small": (base_path, VersionPolicy.parse("latest:2"), {"stable": 4})})
        assert _versions(admin) == {1: 50, 2: 50, 3: 30, 4: 30}  # END, END, AVAILABLE, AVAILABLE
        assert _answering_version(server.address) == 4


def test_label_on_a_version_not_served_is_refused(server, base_path):
    with ModelAdminClient(server.address) as admin:
        with pytest.raises(grpc.RpcError) as info:
            admin.reload({"small": (base_path, VersionPolicy.parse("1"), {"stable": 3})})
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "point at versions that are not being served" in info.value.details()


def test_canary_split_is_within_two_points_over_1000_requests(server, base_path):
    with ModelAdminClient(server.address) as admin:
        admin.reload({"small": (base_path, VersionPolicy.parse("1,2"), {"stable": 1})})
        admin.set_canary("small", 2, share=0.15)
        counts = {1: 0, 2: 0}
        with PredictionClient(server.address, model_name="small") as client:
            for _ in range(1000):
                client.score_image(_image())
                counts[client.last_model_spec.version.value] += 1
        assert abs(counts[2] / 1000 - 0.15) <= 0.02, counts
        figures = {f.version: f for f in admin.figures("small")}
        assert figures[2].canary_share == pytest.approx(0.15)
        assert figures[2].requests == counts[2] and figures[1].requests == counts[1]
        assert figures[1].p50_ms > 0 and figures[1].errors == 0


@pytest.mark.parametrize("canary, expect_agreement", [(4, 1.0), (3, None)], ids=["same-weights", "other-weights"])
def test_mirrored_requests_measure_top1_agreement(server, base_path, canary, expect_agreement):
    with ModelAdminClient(server.address) as admin:
        admin.reload({"small": (base_path, VersionPolicy.parse(f"1,{canary}"), {"stable": 1})})
        admin.set_canary("small", canary, share=0.5, mirror_share=1.0)
        images = [_image()] + [_crop(i) for i in range(7)]
        with PredictionClient(server.address, model_name="small") as client:
            for _ in range(5):
                for data in images:
                    client.score_image(data)
        deadline = time.monotonic() + 120
        while True:  # comparisons run in the background
            figures = {f.version: f for f in admin.figures("small")}
            if figures[canary].mirrored >= 20 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert figures[canary].mirrored >= 20
        if expect_agreement is not None:
            assert figures[canary].top1_agreement == expect_agreement
        else:  # different weights: the comparison must be able to see disagreement
            expected = _expected_agreement(base_path, 1, canary, images)
            assert expected < 1.0
            assert 0.0 <= figures[canary].top1_agreement <= 1.0


def _crop(i: int) -> bytes:
    import io
    from PIL import Image

    image = Image.open(io.BytesIO(_image()))
    box = (i * 20, i * 10, image.width - i * 15, image.height - i * 5)
    buffer = io.BytesIO()
    image.crop(box).save(buffer, "PNG")
    return buffer.getvalue()


def _expected_agreement(base_path, a, b, images):
    pa, pb = (Pipeline.load(base_path / str(v) / "model.zip") for v in (a, b))
    try:
        return np.mean([np.argmax(pa.run(i).output) == np.argmax(pb.run(i).output) for i in images])
    finally:
        pa.close()
        pb.close()


def test_promote_makes_the_canary_stable_and_unloads_the_old_one(server, base_path):
    with ModelAdminClient(server.address) as admin:
        admin.reload({"small": (base_path, VersionPolicy.parse("1,2"), {"stable": 1})})
        admin.set_canary("small", 2, share=0.1)
        response = admin.promote("small")
        assert response.stable_version == 2 and list(response.unloaded) == [1]
        assert _answering_version(server.address) == 2
        assert _versions(admin)[1] == 50  # END


class Traffic:
    """Clients sending requests in a loop and recording (sent, received, version, error)."""

    def __init__(self, address: str, clients: int, **client_kwargs) -> None:
        self.records: list[tuple[float, float, int | None, str | None]] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(address, client_kwargs)) for _ in range(clients)]

    def _run(self, address, client_kwargs):
        with PredictionClient(address, model_name="small", max_retries=0, **client_kwargs) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    client.score_image(_image())
                    record = (sent, time.monotonic(), client.last_model_spec.version.value, None)
                except grpc.RpcError as exc:
                    record = (sent, time.monotonic(), None, f"{exc.code().name}: {exc.details()}")
                with self._lock:
                    self.records.append(record)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def test_rollback_under_traffic_has_zero_failed_requests(server, base_path):
    with ModelAdminClient(server.address) as admin:
        admin.reload({"small": (base_path, VersionPolicy.parse("2,3"), {"stable": 3})})
        admin.set_canary("small", 2, share=0.3)
        with Traffic(server.address, clients=4) as traffic:
            time.sleep(1.0)
            response = admin.rollback("small", to_version=1)  # not loaded: it is loaded and warmed first
            switched = time.monotonic()
            time.sleep(1.0)
        assert response.stable_version == 1 and sorted(response.unloaded) == [2, 3]
        errors = [r for r in traffic.records if r[3]]
        assert not errors, errors[:3]
        after = [r[2] for r in traffic.records if r[0] > switched]
        assert after and set(after) == {1}


def test_resource_preserving_policy_unloads_before_loading(base_path):
    manager = ServableManager()
    seen_while_loading = []

    def loader(path):
        seen_while_loading.append(sorted(s.version for s in manager.versions("small")) if "small" in manager.model_names() else [])
        return Pipeline.load(path)

    running = start_server(manager, load_policy=RESOURCE_PRESERVING, admin_without_keys=True,
                           model_roots=(base_path,))
    running.server.controller.loader = loader
    try:
        with ModelAdminClient(running.address) as admin:
            admin.reload({"small": (base_path, VersionPolicy.parse("1"), {})})
            admin.reload({"small": (base_path, VersionPolicy.parse("2"), {})})
        # each load sees itself (LOADING); version 1 was already gone when version 2 started loading
        assert seen_while_loading == [[1], [2]]
    finally:
        running.server.stop(grace=0)
        manager.close()


def test_30s_load_test_swapping_versions_and_labels(server, base_path):
    """8 clients for 30 s while versions are swapped every ~2 s and the stable label moves: zero failures, and
    every response comes from a version that was live while its request was in flight."""
    plans = [("1,2", {"stable": 1}), ("2,3", {"stable": 3}), ("3,4", {"stable": 4}), ("1,4", {"stable": 1}),
             ("1,2", {"stable": 2})]
    live: dict[int, list[list[float]]] = {}  # version -> [[loaded_at, unloaded_at]]
    with ModelAdminClient(server.address) as admin:
        admin.reload({"small": (base_path, VersionPolicy.parse("1,2"), {"stable": 1})})
        now = time.monotonic()
        live = {1: [[now, None]], 2: [[now, None]]}
        with Traffic(server.address, clients=8) as traffic:
            end = time.monotonic() + 30
            swaps = 0
            while time.monotonic() < end:
                versions, labels = plans[(swaps + 1) % len(plans)]
                wanted = {int(v) for v in versions.split(",")}
                before = time.monotonic()
                admin.reload({"small": (base_path, VersionPolicy.parse(versions), labels)})
                after = time.monotonic()
                for v in wanted:
                    if v not in live or live[v][-1][1] is not None:
                        live.setdefault(v, []).append([before, None])  # live at most from the reload's start
                for v, intervals in live.items():
                    if v not in wanted and intervals[-1][1] is None:
                        intervals[-1][1] = after  # gone at the latest when the reload returned
                swaps += 1
                time.sleep(2.0)
    errors = [r for r in traffic.records if r[3]]
    assert not errors, errors[:3]
    assert swaps >= 8 and len(traffic.records) > 200
    for sent, received, version, _ in traffic.records:
        intervals = live[version]
        assert any(start <= received and (stop is None or stop >= sent) for start, stop in intervals), (version, sent, received)
