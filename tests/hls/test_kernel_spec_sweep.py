"""Three executors, byte for byte, over a randomized sweep of single-instruction programs packed straight from
the program format: the HLS kernel (C-sim), the numpy emulator (brainwave.npu.emulator), and a plain numpy
reading of the spec (tests/hls/spec_ref.py)."""
from __future__ import annotations

import numpy as np
import pytest

import cases

SWEEP = cases.sweep()


@pytest.mark.parametrize("case", SWEEP, ids=[c.name for c in SWEEP])
def test_kernel_matches_spec_reference(hls_build, case):
    from brainwave.npu import csim

    out, _ = csim.run_csim((case.program, case.weights), case.x)
    exp = np.ascontiguousarray(case.expected, dtype=np.float32)
    assert out.shape == exp.shape
    got, want = out.view(np.uint32).reshape(-1), exp.view(np.uint32).reshape(-1)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (
        f"{bad.size}/{got.size} differ; first at {bad[0]}: got {out.reshape(-1)[bad[0]]!r} (0x{got[bad[0]]:08x}), "
        f"expected {exp.reshape(-1)[bad[0]]!r} (0x{want[bad[0]]:08x})"
    )


@pytest.mark.parametrize("case", SWEEP, ids=[c.name for c in SWEEP])
def test_emulator_matches_kernel(hls_build, case):
    from brainwave.npu import csim
    from brainwave.npu.emulator import Emulator
    from brainwave.npu.isa import Program

    kernel_out, _ = csim.run_csim((case.program, case.weights), case.x)
    emulated = Emulator(Program.from_bytes(case.program, case.weights)).run(case.x)
    assert emulated.shape == kernel_out.shape and emulated.dtype == np.float32
    got, want = emulated.view(np.uint32).reshape(-1), kernel_out.view(np.uint32).reshape(-1)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (
        f"{bad.size}/{got.size} differ; first at {bad[0]}: emulator 0x{got[bad[0]]:08x}, kernel 0x{want[bad[0]]:08x}"
    )


def test_sweep_is_not_degenerate():
    """The sweep must exercise real values: most expected outputs nonzero and distinct."""
    for case in SWEEP:
        e = case.expected.reshape(-1)
        finite = e[np.isfinite(e)]
        if "zeros" in case.name or "equal" in case.name or "tiny" in case.name or "signedzeros" in case.name:
            continue
        if "nonfinite" in case.name and finite.size == 0:
            continue
        assert finite.size and np.count_nonzero(finite) > finite.size // 5, case.name
