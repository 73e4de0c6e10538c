"""Where the hardware sources live: the HLS kernel (`hls/`) and the board overlays (`bitstreams/`).

In a checkout they are the repository's top-level folders; an installed wheel carries them as package data
(see pyproject.toml), so the C-sim library and the fpga backend work from `pip install .` too.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _data_dir(name: str) -> Path:
    shipped = _PACKAGE / "_hardware" / name
    return shipped if shipped.is_dir() else _CHECKOUT / name


def hls_dir() -> Path:
    """The HLS kernel: src/ (npu_kernel.cpp, the generated npu_isa.h), tb/, Makefile, npu_ip.json."""
    return _data_dir("hls")


def bitstreams_dir() -> Path:
    """Per-board overlays: bitstreams/<board>/manifest.json and npu.hwh."""
    return _data_dir("bitstreams")
