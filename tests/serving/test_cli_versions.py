"""The version-management commands against a `brainwave serve --base-path` process."""
import pytest

from brainwave.client import PredictionClient
from tests.support import run_cli, serve_process, skimage_image, small_pipeline_zip


@pytest.fixture(scope="module")
def versioned_process(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli-versions")
    for version in (1, 2, 3):
        small_pipeline_zip(base / str(version) / "model.zip", seed=version)
    with serve_process("serve", "--base-path", str(base), "--versions", "1,2", "--label", "stable=1", "--name",
                       "small", "--backend", "float", "--admin-without-keys") as (_, address):
        yield address, base


def version_answering(address):
    with PredictionClient(address, model_name="small") as client:
        client.score_image(skimage_image("chelsea.png"))
        return client.last_model_spec.version.value


def test_canary_versions_promote_rollback(versioned_process):
    address, base = versioned_process
    assert version_answering(address) == 1
    result = run_cli("canary", "small", "--address", address, "--version", "2", "--share", "0.25")
    assert result.returncode == 0, result.stderr
    assert "25%" in result.stdout and "canary" in result.stdout
    seen = [version_answering(address) for _ in range(8)]
    assert seen.count(2) == 2  # 25% of 8, deterministic split
    table = run_cli("versions", "small", "--address", address).stdout
    assert "stable" in table and "AVAILABLE" in table
    result = run_cli("promote", "small", "--address", address)
    assert result.returncode == 0 and "version 2 is now stable; unloaded 1" in result.stderr
    assert version_answering(address) == 2
    result = run_cli("rollback", "small", "--address", address, "--to", "1")
    assert result.returncode == 0, result.stderr
    assert "version 1 is now stable; unloaded 2" in result.stderr
    assert version_answering(address) == 1
    result = run_cli("reload", "small", "--address", address, "--base-path", str(base), "--versions", "latest")
    assert result.returncode == 0, result.stderr
    assert version_answering(address) == 3


def test_bad_label_is_a_clear_error(versioned_process):
    address, _ = versioned_process
    result = run_cli("canary", "small", "--address", address, "--version", "9")
    assert result.returncode == 1
    assert "FAILED_PRECONDITION" in result.stderr or "NOT_FOUND" in result.stderr
