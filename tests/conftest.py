"""Shared fixtures: real photos, the seed ResNet-50 model.zip, and an in-process gRPC server on loopback.
Helpers live in tests/support."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import make_pki, pipeline_builder, skimage_image, start_server


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
    return pipeline_builder("resnet50").build_model_zip(tmp_path_factory.mktemp("resnet50") / "model.zip")


@pytest.fixture(scope="session")
def resnet50_pipeline(resnet50_zip):
    from brainwave.pipeline import Pipeline

    pipeline = Pipeline.load(resnet50_zip, backend="float")
    yield pipeline
    pipeline.close()


@pytest.fixture(scope="session")
def resnet50_server(resnet50_pipeline):
    """`resnet50` version 1 served on a free loopback port (float backend: the reference)."""
    from brainwave.serving.servables import ServableManager

    manager = ServableManager()
    manager.add("resnet50", 1, resnet50_pipeline)
    running = start_server(manager)
    yield running
    running.server.stop(grace=1)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Path:
    """A CA and server/client certificates (server.crt/.key, client.crt/.key, ca.crt) in one folder."""
    return make_pki(tmp_path_factory.mktemp("pki"))
