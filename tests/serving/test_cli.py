"""The user's commands as processes: `brainwave serve` in one, `brainwave score` in another, SIGTERM to stop."""
import json
import signal

import numpy as np
import pytest

from tests.support import run_cli, serve_process, skimage_image




@pytest.fixture(scope="module")
def served_process(resnet50_zip):
    with serve_process("serve", str(resnet50_zip), "--backend", "float", "--name", "resnet50") as served:
        yield served


def test_score_prints_json_top_k_that_matches_the_pipeline(served_process, resnet50_pipeline, tmp_path):
    _, address = served_process
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class-{i}" for i in range(1000)))
    image = skimage_image("chelsea.png")
    result = run_cli("score", "--address", address, str(image), "--labels", str(labels), "--top", "3", "--json")
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    expected = resnet50_pipeline.run(image.read_bytes()).output[0]
    top = np.argsort(-expected, kind="stable")[:3]
    assert [t["index"] for t in entry["top"]] == top.tolist()
    assert entry["top"][0]["label"] == f"class-{top[0]}"
    assert entry["model"] == "resnet50" and entry["version"] == 1


def test_score_table_and_clear_error(served_process):
    _, address = served_process
    result = run_cli("score", "--address", address, str(skimage_image("coffee.png")))
    assert result.returncode == 0 and "rank" in result.stdout
    result = run_cli("score", "--address", address, "--model", "missing", str(skimage_image("coffee.png")))
    assert result.returncode == 1
    assert "NOT_FOUND: Servable not found for request: Latest(missing)" in result.stderr.replace("\n", " ")


def test_models_lists_the_catalog():
    result = run_cli("models")
    assert result.returncode == 0 and "resnet50" in result.stdout


def test_sigterm_stops_cleanly(served_process):
    process, _ = served_process
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "finishing in-flight requests" in output and "stopped" in output
