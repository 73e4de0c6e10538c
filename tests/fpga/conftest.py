from __future__ import annotations

import pytest

from brainwave.fpga.compat import import_pynq

import_pynq()  # PYNQ lives in its own directory (compat.PYNQ_DIR); scripts/setup.d/50-fpga.sh installs it


@pytest.fixture(scope="module")
def accel():
    """An NPU accelerator on a fresh simulated KV260 (real pynq.Overlay / DefaultIP / allocate)."""
    from brainwave.fpga.driver import NpuAccelerator

    acc = NpuAccelerator("kv260", simulate=True, timeout_s=5.0)
    yield acc
    acc.device.clear_faults()
    acc.close()


@pytest.fixture(scope="module")
def smoke():
    from brainwave.fpga.driver import selftest_program

    return selftest_program()
