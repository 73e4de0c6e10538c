"""Operator mistakes end in one line that says what to do, a non-zero exit and no traceback; output is quiet."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from brainwave.serving.servables import ServableManager
from tests.support import free_port, run_cli, serve_process, skimage_image, small_pipeline_zip, start_server

NOISE = ("Traceback", "oneDNN", "absl::InitializeLog", "cpu_feature_guard", "libpng warning")


def one_line_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    text = result.stderr.replace("\n", " ")
    for piece in expected:
        assert piece in text, result.stderr
    for noise in NOISE:
        assert noise not in result.stderr, result.stderr
    return text


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory) -> Path:
    return small_pipeline_zip(tmp_path_factory.mktemp("small") / "model.zip", seed=1)


def test_a_port_in_use_is_reported_before_the_model_loads(tmp_path):
    """The model path does not exist: had the server loaded it first, that would be the error."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", str(tmp_path / "missing.zip"), "--host", "127.0.0.1", "--port", str(port))
    text = one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "--port")
    assert "missing.zip" not in text, "the model was loaded before the port was checked"


def test_tls_material_is_checked_up_front(small_zip, pki):
    port = str(free_port())
    common = ("serve", str(small_zip), "--host", "127.0.0.1", "--port", port, "--backend", "float")
    one_line_error(run_cli(*common, "--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "client.key")),
                   "do not belong together")
    one_line_error(run_cli(*common, "--tls-cert", str(pki / "nope.crt"), "--tls-key", str(pki / "server.key")),
                   "--tls-cert", "does not exist")
    one_line_error(run_cli(*common, "--tls-cert", str(pki / "server.crt")), "--tls-key")


def test_client_side_tls_mistakes(resnet50_pipeline, pki, tmp_path):
    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager, tls_cert=pki / "server.crt", tls_key=pki / "server.key")
    image = str(skimage_image("coffee.png"))
    try:
        plaintext = run_cli("score", "--address", running.address, image)
        one_line_error(plaintext, "UNAVAILABLE", "add --ssl")
        one_line_error(run_cli("score", "--address", running.address, "--ca", str(tmp_path / "missing.crt"), image),
                       "cannot read --ca")
        implied = run_cli("score", "--address", running.address, "--ca", str(pki / "ca.crt"), image)  # --ca means TLS
        assert implied.returncode == 0 and "rank" in implied.stdout, implied.stderr
    finally:
        running.server.stop(grace=0)


def test_admin_commands_validate_before_calling():
    one_line_error(run_cli("canary", "small", "--address", "127.0.0.1:1", "--version", "2", "--share", "1.5"),
                   "--share is a fraction between 0 and 1")


def test_registry_commands_tolerate_a_damaged_manifest_and_select_tags(tmp_path, small_zip):
    registry = tmp_path / "registry"
    for tag in ("stage=test", "stage=prod"):
        assert run_cli("register", str(small_zip), "--name", "cat", "--tag", tag, "--registry", str(registry)).returncode == 0
    assert run_cli("register", str(small_zip), "--name", "dog", "--registry", str(registry)).returncode == 0
    manifest = registry / "models" / "cat" / "versions" / f"{1:010d}.json"
    manifest.write_text(manifest.read_text()[:20])  # truncated
    listing = run_cli("models", "list", "--registry", str(registry))
    assert listing.returncode == 0 and "dog" in listing.stdout and "cat" in listing.stdout
    assert "unreadable manifest" in listing.stderr and "Traceback" not in listing.stderr

    from brainwave.registry import open_registry

    assert open_registry(str(registry)).get("cat", label="stage=prod").version == 2
    one_line_error(run_cli("deploy", "cat@stage=qa", "--registry", str(registry), "--port", str(free_port())),
                   "no version of 'cat' carries the tag 'stage=qa'")


def test_register_checks_the_featurizer_against_the_catalog(tmp_path):
    definition = {"pipeline": [{"type": "brainwave", "model_ref": "resnet5O"}]}
    path = tmp_path / "model.zip"
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("service_def.json", json.dumps(definition))
    one_line_error(run_cli("register", str(path), "--name", "typo", "--registry", str(tmp_path / "r")),
                   "stage 0: unknown featurizer model_ref 'resnet5O'")


def test_registry_commands_do_not_import_tensorflow(tmp_path):
    code = ("import sys; from brainwave.cli import main; "
            f"code = main(['models', 'list', '--registry', {str(tmp_path)!r}]); "
            "assert 'tensorflow' not in sys.modules, 'models list imported TensorFlow'; sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_serve_from_a_registry_base_path_and_quiet_output(tmp_path, small_zip):
    """`serve --base-path registry:NAME` as docs/protocol.md says; TensorFlow's banners and libpng's per-request
    iCCP warning (chelsea.png carries an iCCP profile) stay out of the output."""
    registry = tmp_path / "registry"
    assert run_cli("register", str(small_zip), "--name", "cat", "--registry", str(registry)).returncode == 0
    from brainwave.client import PredictionClient

    with serve_process("serve", "--base-path", "registry:cat", "--registry", str(registry), "--backend",
                       "float") as (process, address):
        with PredictionClient(address) as client:
            for _ in range(3):
                client.score_image(skimage_image("chelsea.png"))
            assert client.last_model_spec.name == "cat"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    for noise in NOISE:
        assert noise not in output, output
