"""Fixtures for the RTL PE lane tests: the Verilator test benches and the Yosys resource counts, built once
per session by rtl/Makefile into rtl/build/. CI installs verilator and yosys (scripts/setup.d/60-rtl.sh);
elsewhere a missing tool skips these tests, with the reason."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.rtl.rtl_vectors import RTL

BUILD = RTL / "build"


def require(tool: str) -> None:
    if shutil.which(tool):
        return
    reason = f"{tool} is not installed: scripts/setup.sh --test installs it (scripts/setup.d/60-rtl.sh)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def make(*targets: str) -> None:
    proc = subprocess.run(["make", "-s", "-C", str(RTL), f"PYTHON={sys.executable}", *targets],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"make {' '.join(targets)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="session")
def lane_benches() -> dict[str, Path]:
    """Lane name ("bfp20", "bfp16") -> its Verilator test bench executable. Normally the DSP48E2 slices are
    the behavioural model in dsp48e2_node.sv; with RTL_DSP48E2_MODEL set to Xilinx's unisim DSP48E2.v the
    benches simulate the instantiated primitive instead (`make sim-unisim`, docs/hardware.md)."""
    require("verilator")
    model = os.environ.get("RTL_DSP48E2_MODEL")
    if model:
        make("sim-unisim", f"DSP48E2_MODEL={Path(model).resolve()}")
        build = BUILD / "unisim"
    else:
        make("sim")
        build = BUILD
    return {lane: build / f"pe_lane_{lane}" / "pe_lane_tb" for lane in ("bfp20", "bfp16")}


@pytest.fixture(scope="session")
def measured_resources() -> dict:
    """rtl/build/resources.json, freshly synthesized."""
    require("yosys")
    make("resources")
    return json.loads((BUILD / "resources.json").read_text())
