"""Shared fixtures: real photos, the seed ResNet-50 model.zip, and an in-process gRPC server on loopback."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "pipelines" / "resnet50"))


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def skimage_image(name: str) -> Path:
    import skimage

    path = Path(skimage.__file__).parent / "data" / name
    assert path.is_file(), f"scikit-image should ship {name}"
    return path


@pytest.fixture(scope="session")
def chelsea() -> bytes:
    return skimage_image("chelsea.png").read_bytes()


@pytest.fixture(scope="session")
def coffee() -> bytes:
    return skimage_image("coffee.png").read_bytes()


@pytest.fixture(scope="session")
def rocket_jpeg() -> bytes:
    return skimage_image("rocket.jpg").read_bytes()


@pytest.fixture(scope="session")
def resnet50_zip(tmp_path_factory) -> Path:
    import build as resnet50_build  # pipelines/resnet50/build.py

    return resnet50_build.build_model_zip(tmp_path_factory.mktemp("resnet50") / "model.zip")


@pytest.fixture(scope="session")
def resnet50_pipeline(resnet50_zip):
    from brainwave.pipeline import Pipeline

    pipeline = Pipeline.load(resnet50_zip, backend="float")
    yield pipeline
    pipeline.close()


class RunningServer:
    def __init__(self, server, manager) -> None:
        self.server = server
        self.manager = manager
        self.address = f"127.0.0.1:{server.port}"


def start_server(manager, **config) -> RunningServer:
    from brainwave.serving.server import ModelServer, ServerConfig

    server = ModelServer(manager, ServerConfig(**{"host": "127.0.0.1", "port": 0, **config}))
    server.start()
    return RunningServer(server, manager)


@pytest.fixture(scope="session")
def resnet50_server(resnet50_pipeline):
    """`resnet50` version 1 served on a free loopback port (float backend: the reference)."""
    from brainwave.serving.servables import ServableManager

    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager)
    yield running
    running.server.stop(grace=1)


def small_pipeline_zip(path: Path, seed: int) -> Path:
    """A two-stage TF pipeline (decode + resize to 16x16, then a seeded 10-class softmax) that loads in
    well under a second: for version-management tests that load and unload many times."""
    import numpy as np
    import tensorflow as tf

    from brainwave.pipeline import ServiceDefinition, TensorflowStage

    work = path.parent
    work.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        data = tf.compat.v1.placeholder(tf.string, shape=[], name="in_images")
        image = tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32)
        tf.identity(tf.compat.v1.image.resize_bilinear(image[tf.newaxis], [16, 16]) / 255.0, name="small")
    (work / "input.pb").write_bytes(graph.as_graph_def().SerializeToString())
    weights = np.random.default_rng(seed).normal(0, 0.2, (16 * 16 * 3, 10)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        features = tf.compat.v1.placeholder(tf.float32, shape=[None, 16, 16, 3], name="Input")
        tf.nn.softmax(tf.matmul(tf.reshape(features, [-1, 16 * 16 * 3]), weights), name="probs")
    (work / "classifier.pb").write_bytes(graph.as_graph_def().SerializeToString())
    definition = ServiceDefinition([
        TensorflowStage("input.pb", "in_images:0", "small:0", source=work / "input.pb"),
        TensorflowStage("classifier.pb", "Input:0", "probs:0", source=work / "classifier.pb"),
    ])
    return definition.save(path)
