"""The kernel's results do not depend on how it is built: the same sweep, byte for byte, with the DSP48E2-packed
MAC form that synthesis uses for bfp16/bfp12 (two products per DSP, docs/hardware.md "Two products per DSP48E2"),
with other targets' engine sizes (pixels, channels, interleave, buffer sizes from hls/src/npu_config.h), and with
tiny buffers that push the sweep's small layers through every tiling path (bands, reduced K, re-fetched tiles,
the generic path, the pooling fallback).

docs/numerics.md leaves pixel and channel parallelism free; these builds check the kernel keeps to that."""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

from brainwave.npu.isa import RunMode
from tests.support import cases, handmade, spec_ref
from tests.support.hls import HLS

VARIANTS = {
    "packed": "-DNPU_DSP_PACKED",
    "pynq_z2": "-DNPU_TARGET_PYNQ_Z2",
    "u250_packed": "-DNPU_TARGET_U250 -DNPU_DSP_PACKED",
    "small_buffers": "-DNPU_TEST_SMALL_BUFFERS -DNPU_DSP_PACKED",
}


def _lib(name: str) -> ctypes.CDLL:
    proc = subprocess.run(["make", "-C", str(HLS), "variant", f"NAME={name}", f"DEFS={VARIANTS[name]}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lib = ctypes.CDLL(str(HLS / "build" / f"libnpu_{name}.so"))
    lib.npu_run.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_uint32]
    lib.npu_run.restype = None
    return lib


def _run(lib, program: bytes, weights: bytes, x: np.ndarray) -> np.ndarray:
    prog = np.frombuffer(program, dtype="<u4").copy()
    h = prog[:16]
    arena = np.zeros(max(int(h[3]), 1), dtype=np.float32)
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    arena[int(h[5]):int(h[5]) + flat.size] = flat
    w = np.frombuffer(weights, dtype=np.uint8).copy() if weights else np.zeros(1, np.uint8)
    status = np.full(1, 0xFFFFFFFF, dtype=np.uint32)
    # the second weights and arena ports onto the same buffers, as the driver sets them
    lib.npu_run(prog.ctypes.data, w.ctypes.data, w.ctypes.data, arena.ctypes.data, arena.ctypes.data,
                status.ctypes.data, RunMode.RUN)
    assert status[0] == 0
    n = int(h[10]) * int(h[11]) * int(h[12])
    return arena[int(h[9]):int(h[9]) + n].copy()


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request):
    return request.param, _lib(request.param)


def test_sweep_is_byte_equal_in_every_build(variant):
    name, lib = variant
    bad = []
    for case in cases.sweep():
        if not case.name.startswith(("conv", "maxpool", "avgpool")):
            continue
        got = _run(lib, case.program, case.weights, case.x)
        want = np.ascontiguousarray(case.expected, dtype=np.float32).reshape(-1)
        if got.view(np.uint32).tobytes() != want.view(np.uint32).tobytes():
            bad.append(case.name)
    assert not bad, f"{name}: {len(bad)} cases differ, e.g. {bad[:5]}"


@pytest.mark.parametrize("prec", [1, 2])
def test_packed_cascade_at_the_extremes(prec):
    """Every lane at the largest magnitude, with all sign patterns of the two packed weights: the low sum reaches
    +-16 * 127 * 127 = 258064, the edge of the 19-bit field the packing relies on."""
    lib = _lib("packed")
    lim = 2 ** handmade.MBITS[prec] - 1
    x = np.full((2, 2, 16), np.float32(lim), dtype=np.float32)  # E = M-1 (bfp16: 6): mantissas +-lim exactly
    x[1] *= -1
    x[0, 1, ::2] *= -1
    rng = np.random.default_rng(prec)
    cout = 16
    wt = np.empty((cout, 1, 1, 16), dtype=np.float32)
    for o in range(cout):
        sign = [1, -1, 1, -1][o % 4] if o < 8 else rng.choice([-1, 1], 16)
        wt[o, 0, 0, :] = np.float32(lim) * np.asarray(sign, dtype=np.float32)
    bias = np.zeros(cout, dtype=np.float32)
    blob, mant_off, exp_off, bias_off, deq = spec_ref.pack_conv_weights(wt, bias, 16, 1, handmade.WBITS[prec])
    insn = dict(opcode="conv2d", precision=prec, kernel_h=1, kernel_w=1, stride_h=1, stride_w=1, groups=1,
                weight_mant_offset=mant_off, weight_exp_offset=exp_off, bias_offset=bias_off)
    program, weights, _ = spec_ref.single_op_program(insn, (2, 2, 16), (2, 2, cout), blob)
    expected = spec_ref.ref_conv(x, deq, bias, out_h=2, out_w=2, kh=1, kw=1, sh=1, sw=1, pt=0, pl=0, groups=1,
                                 mbits=handmade.MBITS[prec], act=0, residual=None)
    got = _run(lib, program, weights, x)
    assert got.tobytes() == np.ascontiguousarray(expected, np.float32).reshape(-1).tobytes()
    assert np.max(np.abs(got)) > 0
