"""register -> models list/show -> deploy NAME:VERSION -> score, as a user runs them."""
from brainwave.client import PredictionClient
from tests.support import run_cli, serve_process, skimage_image, small_pipeline_zip


def test_register_list_show_deploy_delete(tmp_path):
    registry = tmp_path / "registry"
    zips = [small_pipeline_zip(tmp_path / str(seed) / "model.zip", seed) for seed in (1, 2)]
    for expected, path in enumerate(zips, 1):
        result = run_cli("register", str(path), "--name", "cat", "--tag", f"build={expected}", "--registry", str(registry))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(expected)
    listing = run_cli("models", "list", "--registry", str(registry))
    assert "cat" in listing.stdout and "│ 2 " in listing.stdout
    shown = run_cli("models", "show", "cat", "--registry", str(registry))
    assert "build=1" in shown.stdout and "build=2" in shown.stdout

    with serve_process("deploy", "cat:1", "--registry", str(registry), "--backend", "float") as (_, address):
        with PredictionClient(address) as client:
            client.score_image(skimage_image("chelsea.png"))
            assert client.last_model_spec.name == "cat" and client.last_model_spec.version.value == 1

    deleted = run_cli("models", "delete", "cat", "--version", "1", "--registry", str(registry))
    assert deleted.returncode == 0 and "deleted cat version(s) 1" in deleted.stderr
    missing = run_cli("deploy", "cat:1", "--registry", str(registry))
    assert missing.returncode == 1 and "model 'cat' has no version 1 (it has [2])" in missing.stderr


def test_register_refuses_a_bad_zip_with_a_clear_error(tmp_path):
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"not a zip")
    result = run_cli("register", str(bad), "--name", "cat", "--registry", str(tmp_path / "r"))
    assert result.returncode == 1 and "is not a readable zip archive" in result.stderr
