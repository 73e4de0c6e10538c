"""Where the hardware sources live: the HLS kernel (`hls/`) and the board overlays (`bitstreams/`).

`brainwave/_hardware/` holds symlinks to the repository's top-level folders, and the wheel carries their
contents as package data (pyproject.toml), so the C-sim library builds and the fpga backend finds its
overlays from a checkout and from `pip install .` alike.
"""
from __future__ import annotations

from pathlib import Path

_HARDWARE = Path(__file__).resolve().parent / "_hardware"


def hls_dir() -> Path:
    """The HLS kernel: src/ (npu_kernel.cpp, the generated npu_isa.h), tb/, Makefile, npu_ip.json."""
    return _HARDWARE / "hls"


def bitstreams_dir() -> Path:
    """Per-board overlays: bitstreams/<board>/manifest.json and npu.hwh."""
    return _HARDWARE / "bitstreams"
