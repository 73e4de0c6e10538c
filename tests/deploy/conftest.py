"""Fixtures for the deployment tests: a small model.zip that loads in about a second (the replica tests
start many servers), and the demo photo."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import REPO, small_pipeline_zip

PHOTO = REPO / "samples" / "images" / "chelsea.png"


@pytest.fixture(scope="session")
def small_zip(tmp_path_factory) -> Path:
    return small_pipeline_zip(tmp_path_factory.mktemp("small") / "model.zip", seed=7)


@pytest.fixture(scope="session")
def photo() -> bytes:
    return PHOTO.read_bytes()
