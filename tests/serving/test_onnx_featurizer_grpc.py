"""The user's own ONNX CNN as a `type: brainwave` stage inside model.zip, served over gRPC on the emulator:
a PyTorch-style ResNet-18 and a tf2onnx MobileNetV2 (tests/npu/onnx_nets.py), between ONNX CPU stages for
preprocessing and softmax. Their top-1 must match onnxruntime's float32 run of the same files on the
accuracy report's inputs."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from brainwave.client import PredictionClient  # noqa: E402
from tests.npu import onnx_nets  # noqa: E402
from tests.support import benchmark_module  # noqa: E402

pytestmark = pytest.mark.slow
INPUTS = 8


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    report = benchmark_module("accuracy_report")
    return [x.astype(np.float32)[None] for x in report.variations(report.load_photos(), INPUTS)]


@pytest.fixture(scope="module")
def onnx_server(tmp_path_factory, photos):
    from brainwave.pipeline import BrainwaveStage, OnnxStage, Pipeline, ServiceDefinition
    from brainwave.serving.servables import ServableManager
    from tests.support import start_server

    work = tmp_path_factory.mktemp("onnx-models")
    onnx_benchmark = benchmark_module("onnx_accuracy")  # the benchmark's preprocessing and calibration
    rgb = [p[0].astype(np.uint8) for p in photos]
    networks = {name.split()[0]: (model, "nchw" if name.startswith("resnet") else "nhwc")
                for name, model in onnx_benchmark.builtin_models(rgb).items()}
    manager, pipelines, chains = ServableManager(), [], {}
    for name, (featurizer, layout) in networks.items():
        chain = [onnx_nets.preprocessing(layout), featurizer, onnx_nets.softmax(1000)]
        files = [work / f"{name}-{part}.onnx" for part in ("pre", "net", "softmax")]
        for model, path in zip(chain, files):
            path.write_bytes(model.SerializeToString())
        definition = ServiceDefinition([OnnxStage("pre.onnx", source=files[0]),
                                        BrainwaveStage(model_path="featurizer.onnx", output_tensor_dims=[1000],
                                                       source=files[1]),
                                        OnnxStage("softmax.onnx", source=files[2])])
        pipeline = Pipeline.load(definition.save(work / f"{name}.zip"), backend="emulator")
        pipelines.append(pipeline)
        manager.add(name, 1, pipeline)
        chains[name] = chain
    running = start_server(manager)
    yield running, chains
    running.server.stop(grace=1)
    for pipeline in pipelines:
        pipeline.close()


def _onnxruntime(chain, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    for model in chain:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        x = session.run(None, {session.get_inputs()[0].name: x})[0]
    return x.reshape(-1)


@pytest.mark.parametrize("network", ["resnet18", "mobilenet_v2"])
def test_onnx_featurizer_over_grpc_agrees_with_onnxruntime(onnx_server, photos, network):
    running, chains = onnx_server
    with PredictionClient(running.address, model_name=network, timeout=120) as client:
        served = [np.asarray(client.score_numpy_array(x[0])).reshape(-1) for x in photos]
    reference = [_onnxruntime(chains[network], x) for x in photos]
    agree = [int(np.argmax(a) == np.argmax(b)) for a, b in zip(served, reference)]
    # benchmarks/onnx_accuracy.py on 200 inputs in bfp20: ResNet-18 agrees on all, this random MobileNetV2 on
    # 94.5% (compile_keras of the same Keras network: 96%), so one miss in eight is its level, two are not.
    wanted = INPUTS if network == "resnet18" else INPUTS - 1
    assert sum(agree) >= wanted, f"top-1 differs from onnxruntime on inputs {[i for i, a in enumerate(agree) if not a]}"
    for got, want in zip(served, reference):
        assert got.shape == (1000,) and abs(float(got.sum()) - 1) < 1e-4
        assert float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want))) > 0.99
