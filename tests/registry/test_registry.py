"""The model registry against a local directory and against Azurite (real azure-storage-blob)."""
import hashlib
import io
import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from brainwave.errors import ArchiveError
from brainwave.registry import AzureBlobStore, LocalDirectoryStore, ModelRegistry, RegistryError
from tests.support import small_pipeline_zip

_containers = itertools.count()


@pytest.fixture(params=["local", "azurite"])
def registry(request, tmp_path):
    if request.param == "local":
        store = LocalDirectoryStore(tmp_path / "registry")
    else:
        store = AzureBlobStore(f"models{next(_containers)}", connection_string=request.getfixturevalue("azurite"))
    return ModelRegistry(store, cache_dir=tmp_path / "cache")


@pytest.fixture(scope="module")
def model_zips(tmp_path_factory):
    base = tmp_path_factory.mktemp("zips")
    return [small_pipeline_zip(base / str(seed) / "model.zip", seed) for seed in (1, 2)]


def test_register_list_show_download_delete(registry, model_zips):
    first = registry.register(model_zips[0], "cat", {"owner": "ml"})
    second = registry.register(model_zips[1], "cat", {"stable": "yes"})
    assert (first.version, second.version) == (1, 2)
    assert registry.names() == ["cat"]
    records = registry.versions("cat")
    assert [(r.version, r.tags) for r in records] == [(1, {"owner": "ml"}), (2, {"stable": "yes"})]
    assert records[0].sha256 == hashlib.sha256(model_zips[0].read_bytes()).hexdigest()
    assert registry.download("cat").read_bytes() == model_zips[1].read_bytes()
    assert registry.download("cat", 1).read_bytes() == model_zips[0].read_bytes()
    assert registry.get("cat", label="stable").version == 2
    assert registry.delete("cat", 1) == [1]
    assert [r.version for r in registry.versions("cat")] == [2]
    assert registry.register(model_zips[0], "cat").version == 3  # numbers are never reused
    registry.delete("cat")
    assert registry.names() == []


def test_upload_cut_off_midway_leaves_no_version(registry, model_zips, monkeypatch):
    real_open = open

    class Broken(io.RawIOBase):
        def __init__(self, path):
            self.inner = real_open(path, "rb")
            self.sent = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            if self.sent > 2000:
                raise ConnectionError("network cut")
            data = self.inner.read(min(len(buffer), 1000))
            buffer[: len(data)] = data
            self.sent += len(data)
            return len(data)

        def read(self, size=-1):
            out = bytearray(1000 if size is None or size < 0 else min(size, 1000))
            n = self.readinto(out)
            return bytes(out[:n])

    import brainwave.registry.registry as module
    monkeypatch.setattr(module, "open", lambda path, mode="rb": Broken(path), raising=False)
    with pytest.raises(ConnectionError):
        registry.register(model_zips[0], "cut")
    monkeypatch.undo()
    assert registry.versions("cut") == []
    assert registry.register(model_zips[0], "cut").version == 1


def test_ten_concurrent_registrations_get_versions_1_to_10(registry, model_zips):
    with ThreadPoolExecutor(10) as pool:
        versions = list(pool.map(lambda i: registry.register(model_zips[i % 2], "race").version, range(10)))
    assert sorted(versions) == list(range(1, 11))
    assert [r.version for r in registry.versions("race")] == list(range(1, 11))


def test_corrupted_blob_is_detected_and_nothing_is_cached(registry, model_zips):
    record = registry.register(model_zips[0], "rot")
    tampered = bytearray(model_zips[0].read_bytes())
    tampered[100] ^= 0xFF
    registry.store.put(record.payload, io.BytesIO(bytes(tampered)), len(tampered))  # behind the registry's back
    with pytest.raises(RegistryError, match="is corrupted .* does not match the recorded"):
        registry.download("rot")
    assert not (registry.cache_dir / "rot" / "1" / "model.zip").exists()
    assert not [p for p in (registry.cache_dir / "rot" / "1").iterdir()]


def test_bad_names_and_non_zips_are_refused(registry, tmp_path):
    with pytest.raises(RegistryError, match="is not allowed"):
        registry.register(tmp_path / "x.zip", "../etc")
    not_zip = tmp_path / "model.zip"
    not_zip.write_bytes(b"hello")
    with pytest.raises(ArchiveError, match="not a readable zip archive"):
        registry.register(not_zip, "cat")
    assert registry.names() == []


def test_reload_serves_versions_straight_from_the_registry(registry, model_zips):
    from brainwave.admin_client import ModelAdminClient
    from brainwave.client import PredictionClient
    from brainwave.serving.servables import ServableManager
    from brainwave.serving.server import ModelServer, ServerConfig
    from brainwave.serving.versions import VersionPolicy
    from tests.support import skimage_image

    for path in model_zips:
        registry.register(path, "cat")
    server = ModelServer(ServableManager(), ServerConfig(host="127.0.0.1", port=0, admin_without_keys=True), registry=registry)
    server.start()
    try:
        address = f"127.0.0.1:{server.port}"
        with ModelAdminClient(address) as admin:
            admin.reload({"cat": ("registry:cat", VersionPolicy.parse("all"), {"stable": 1})})
            assert [(s.version, s.state) for s in admin.status("cat")] == [(1, 30), (2, 30)]
        with PredictionClient(address, model_name="cat") as client:
            client.score_image(skimage_image("chelsea.png"))
            assert client.last_model_spec.version.value == 1
    finally:
        server.stop(grace=0)
        server.manager.close()
