"""Both catalog pipelines served over real gRPC on the NPU: the emulator backend, and the fpga backend on the
simulated board (real pynq, the HLS kernel as C-sim). Responses must be byte-identical between the two, and
EfficientNet-Lite0 must see the cat in chelsea.png."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from brainwave.client import PredictionClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CAT_CLASSES = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat"}


def _build_module(name: str):
    spec = importlib.util.spec_from_file_location(f"build_{name.replace('-', '_')}", REPO / "pipelines" / name / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def npu_server(tmp_path_factory, resnet50_zip):
    """One server, four models: {efficientnet, resnet50} x {emulator, fpga on the simulated board}."""
    from brainwave.pipeline import Pipeline
    from brainwave.serving.servables import ServableManager
    from tests.support import start_server

    effnet_zip = _build_module("efficientnet-lite0").build_model_zip(tmp_path_factory.mktemp("effnet") / "model.zip")
    fpga_options = {"board": "kv260", "simulate": True, "timeout_s": 120}
    manager = ServableManager()
    pipelines = []
    for name, path in (("efficientnet", effnet_zip), ("resnet50", resnet50_zip)):
        for backend, options in (("emulator", {}), ("fpga", fpga_options)):
            pipeline = Pipeline.load(path, backend=backend, backend_options=options)
            pipelines.append(pipeline)
            manager.add(f"{name}-{backend}", 1, pipeline)
    running = start_server(manager)
    yield running
    running.server.stop(grace=1)
    for pipeline in pipelines:
        pipeline.close()


def _score(address: str, model: str, image: bytes) -> np.ndarray:
    with PredictionClient(address, model_name=model, timeout=300) as client:
        return client.score_image(image)


@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
def test_fpga_and_emulator_answer_identically_through_grpc(npu_server, photo, chelsea, coffee):
    image = {"chelsea": chelsea, "coffee": coffee}[photo]
    for name in ("efficientnet", "resnet50"):
        emulated = _score(npu_server.address, f"{name}-emulator", image)
        on_board = _score(npu_server.address, f"{name}-fpga", image)
        assert emulated.dtype == on_board.dtype == np.float32 and emulated.shape == (1000,)
        assert on_board.tobytes() == emulated.tobytes(), f"{name}: fpga and emulator responses differ for {photo}"


def test_efficientnet_on_the_emulator_sees_the_cat(npu_server, chelsea, coffee):
    scores = _score(npu_server.address, "efficientnet-emulator", chelsea)
    top = int(np.argmax(scores))
    assert top in CAT_CLASSES, f"top-1 is class {top}, not a cat"
    assert scores[top] > 0.25
    espresso = _score(npu_server.address, "efficientnet-emulator", coffee)
    assert int(np.argmax(espresso)) == 967 and espresso[967] > 0.8
