"""The performance model is derived from the kernel: the same configuration table, the same tiling.

- hls/src/npu_config.h is generated from brainwave/fpga/boards.py TARGETS (the table brainwave/fpga/perf reads);
- for every convolution of both catalog networks (and the HLS sweep's), the model's plan_conv equals the plan
  the C++ kernel makes, read through libnpu.so's C-sim-only hook npu_plan_conv, for the default (KV260) build
  and for the PYNQ-Z2 and U250 configurations."""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

from brainwave.fpga import boards, perf
from tests.support import cases
from tests.support.hls import HLS


def test_config_header_is_generated_from_the_table():
    assert (HLS / "src" / "npu_config.h").read_text() == boards.c_header()


def _plan_lib(target: str) -> ctypes.CDLL:
    if target == boards.DEFAULT_TARGET:
        proc = subprocess.run(["make", "-C", str(HLS), "lib"], capture_output=True, text=True)
        path = HLS / "build" / "libnpu.so"
    else:
        name = "plan_" + target.replace("-", "_")
        macro = "-DNPU_TARGET_" + target.upper().replace("-", "_")
        proc = subprocess.run(["make", "-C", str(HLS), "variant", f"NAME={name}", f"DEFS={macro}"],
                              capture_output=True, text=True)
        path = HLS / "build" / f"libnpu_{name}.so"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lib = ctypes.CDLL(str(path))
    lib.npu_plan_conv.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.npu_plan_conv.restype = None
    return lib


def _kernel_plan(lib, words: np.ndarray) -> tuple:
    out = (ctypes.c_uint32 * 14)()
    w = np.ascontiguousarray(words, dtype=np.uint32)
    lib.npu_plan_conv(w.ctypes.data, ctypes.addressof(out))
    return tuple(int(v) for v in out)


def _conv_instructions():
    """(words, Instruction) for the convs of the catalog networks in bfp16 and bfp20, and of the sweep."""
    pytest.importorskip("keras")
    from brainwave.models.catalog import build_featurizer, resolve_featurizer
    from brainwave.npu.compiler import compile_keras
    from brainwave.npu.isa import Opcode, Program

    programs = []
    for name in ("resnet50", "efficientnet-lite0"):
        model = build_featurizer(resolve_featurizer(name))
        for prec in ("bfp16", "bfp20"):
            programs.append(compile_keras(model, precision=prec))
    for case in cases.sweep():
        if case.name.startswith("conv"):
            programs.append(Program.from_bytes(case.program, case.weights))
    out = []
    for prog in programs:
        for insn in prog.instructions:
            if insn.op == Opcode.CONV2D:
                out.append((np.array(insn.words(), dtype=np.uint32), insn))
    return out


@pytest.fixture(scope="module")
def convs():
    return _conv_instructions()


@pytest.mark.parametrize("target", ["kv260", "pynq-z2", "u250"])
def test_model_plans_what_the_kernel_runs(convs, target):
    lib = _plan_lib(target)
    npu = boards.get_target(target).npu
    seen = set()
    for words, insn in convs:
        want = _kernel_plan(lib, words)
        got = perf.plan_conv(insn, npu).as_kernel_tuple()
        assert got == want, f"{target} {insn.name} {insn.in_shape}->{insn.out_shape}: model {got} kernel {want}"
        seen.add(got[0])
    assert seen >= {0, 1, 2}  # dense, depthwise and generic layers all compared


def test_interleave_covers_the_rtl_adder_latency():
    """The kernel's fewest interleaved groups (NPU_L_MIN) must be at least the RTL lane's accumulator loop: an
    accumulator may only be touched again once its previous add has left the adder."""
    rtl = perf.rtl_lane_figures()
    if rtl is None:
        pytest.skip("no RTL lane figures (rtl/resources.json)")
    need = max(int(lane.get("interleave", 0)) for lane in rtl["lanes"].values())
    for name, tgt in boards.TARGETS.items():
        if tgt.device.dsp_kind == "DSP48E2":
            assert tgt.npu.adder_latency >= need, name
            assert tgt.npu.interleave >= tgt.npu.adder_latency, name
