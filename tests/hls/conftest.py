"""Shared fixtures for the HLS kernel tests: build libnpu.so and the C-sim test bench once per session."""
from __future__ import annotations

import pytest

from tests.support.hls import build


@pytest.fixture(scope="session")
def hls_build() -> dict:
    return build()
