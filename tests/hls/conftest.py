"""Shared fixtures for the HLS kernel tests: build libnpu.so and the C-sim test bench once per session."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers: hls_paths, handmade, spec_ref, cases, synthetic

from hls_paths import build  # noqa: E402


@pytest.fixture(scope="session")
def hls_build() -> dict:
    return build()
