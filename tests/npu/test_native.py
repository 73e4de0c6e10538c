"""What only the native executor (brainwave.npu.native) has: a build with two chunk additions swapped is caught
by the grid's sweep on every SIMD path, any thread count gives the same bytes, runs from several Python threads,
the caller's float environment, its own C loader's checks, reads of unwritten arena, and its memory (loaded
copies, unload, close). Its bytes on the sweep and on whole networks are checked with every other executor in
tests/npu/test_executors.py."""
from __future__ import annotations

import contextlib
import ctypes
import gc
import platform
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from brainwave.npu.csim import CsimExecutor
from brainwave.npu.isa import Program, ProgramError
from brainwave.npu.native import SIMD_PATHS, NativeError, NativeExecutor, available_simd
from brainwave.npu.native._library import Library
from tests.support import assert_same_bits, cases, handmade, same_bits
from tests.support.executors import run_case

SWEEP = cases.sweep()


@pytest.fixture(scope="module", params=SIMD_PATHS)
def simd(request) -> str:
    if request.param not in available_simd():
        pytest.skip(f"this CPU cannot run the {request.param} path")
    return request.param


@pytest.fixture(scope="module")
def native(simd):
    with NativeExecutor(threads=2, simd=simd) as ex:
        yield ex


def test_mutant_accumulation_order_is_caught(simd):
    """A build that swaps two chunk additions must differ from the spec somewhere in the grid's sweep, on every
    path: otherwise the byte comparisons of test_executors.py could not see an ordering bug."""
    with NativeExecutor(threads=1, simd=simd, library=Library.get(("BW_MUTATE_ORDER",))) as mutant:
        differ = [case.name for case in SWEEP if not same_bits(run_case(mutant, case), case.expected)]
    assert differ, f"{simd}: the out-of-order mutant matched the spec on the whole sweep"
    assert all(name.startswith("conv") for name in differ), differ


# ---------------------------------------------------------------------------------------------------------------
# Threads: any count gives the same bytes, also when pixels and channels do not divide evenly or are empty


def odd_cases() -> list[cases.Case]:
    """Shapes that do not divide into the kernels' pixel groups, tiles and work items, and degenerate ones."""
    rng = np.random.default_rng(7)
    common = dict(k=(3, 3), s=(1, 1), pad=(1, 1, 1, 1), act=1, residual=True, kind="normal")
    return [
        cases.conv_case(rng, h=13, w=11, cin=40, cout=56, groups=1, prec=3, **common),  # 143 pixels, 3.5 tiles
        cases.conv_case(rng, h=9, w=7, cin=120, cout=120, groups=120, prec=3, **common),  # depthwise, 7.5 blocks
        cases.conv_case(rng, h=7, w=9, cin=30, cout=45, groups=3, prec=1, **common),  # grouped, cg = 10
        cases.pool_case(rng, op="maxpool", h=15, w=13, c=21, k=(3, 3), s=(2, 2), pad=(1, 1, 1, 1), kind="normal"),
        cases.add_case(rng, h=17, w=3, c=37, act=2, kind="normal"),
        # pads past the kernel: output pixels without any input tap or pool cell
        cases.conv_case(rng, h=3, w=3, cin=20, cout=24, k=(1, 1), s=(1, 1), pad=(2, 2, 2, 2), groups=1, act=0,
                        prec=3, residual=True, kind="normal"),
        cases.conv_case(rng, h=3, w=3, cin=20, cout=20, k=(1, 1), s=(2, 2), pad=(3, 3, 3, 3), groups=20, act=0,
                        prec=1, residual=False, kind="normal"),
        cases.pool_case(rng, op="avgpool", h=3, w=3, c=5, k=(2, 2), s=(1, 1), pad=(3, 3, 3, 3), kind="normal"),
        cases.pool_case(rng, op="maxpool", h=3, w=3, c=5, k=(2, 2), s=(1, 1), pad=(3, 3, 3, 3), kind="normal"),
        # a kernel larger than the input: zero output rows
        cases.conv_case(rng, h=2, w=4, cin=8, cout=8, k=(3, 3), s=(1, 1), pad=(0, 0, 0, 0), groups=1, act=0,
                        prec=3, residual=False, kind="normal"),
    ]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_give_the_same_bytes(simd, threads):
    with NativeExecutor(threads=threads, simd=simd) as ex:
        assert ex.threads == threads
        for case in odd_cases():
            assert_same_bits(run_case(ex, case), case.expected, f"{simd}, {threads} threads: {case.name}")


def test_concurrent_runs_from_python_threads(native):
    """Runs from several threads take turns on one pool, each with its own arena."""
    picks = [i for i, c in enumerate(SWEEP) if c.name.startswith("conv")][::5]
    programs = {i: Program.from_bytes(SWEEP[i].program, SWEEP[i].weights) for i in picks}
    failures: list[str] = []

    def worker(offset: int) -> None:
        for i in picks[offset:] + picks[:offset]:
            if not same_bits(native.run(programs[i], SWEEP[i].x), SWEEP[i].expected):
                failures.append(SWEEP[i].name)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# ---------------------------------------------------------------------------------------------------------------
# Validation and memory


@pytest.mark.parametrize("mutation", handmade.SMOKE_MUTATIONS, ids=[m.name for m in handmade.SMOKE_MUTATIONS])
def test_c_loader_refuses_what_the_kernel_refuses(mutation):
    """The C loader checks the raw blobs itself (it never trusts its caller), with the kernel's status codes."""
    program, weights, _, _ = handmade.smoke_program()
    with pytest.raises(ProgramError) as err:
        Library.get().load_program(*mutation.apply(program, weights))
    assert err.value.status == mutation.status


def test_reads_of_unwritten_arena_are_zero_on_every_run(native):
    """C-sim starts each run from a zeroed arena. Here an ADD reads a region that a later instruction writes:
    the second run must not see what the first one left there."""
    n = 12
    header = dict(arena_words=3 * n, weights_bytes=0, input_offset=0, input_h=1, input_w=1, input_c=n,
                  output_offset=n, output_h=1, output_w=1, output_c=n)
    shape = dict(in_h=1, in_w=1, in_c=n, out_h=1, out_w=1, out_c=n)
    program = handmade.pack_program(header, [
        dict(opcode="add", in_offset=0, in2_offset=2 * n, out_offset=n, **shape),
        dict(opcode="activation", in_offset=0, out_offset=2 * n, **shape),
    ])
    prog = Program.from_bytes(program, b"")
    for seed in (1, 2):
        x = np.random.default_rng(seed).standard_normal((1, 1, n)).astype(np.float32)
        assert_same_bits(native.run(prog, x), CsimExecutor().run(prog, x), f"run {seed}")


@contextlib.contextmanager
def subnormals_flushed(tmp_path: Path):
    """Flush-to-zero and denormals-are-zero on the calling thread (as some math libraries leave them), through a
    two-line helper built here; restored afterwards."""
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("MXCSR is x86")
    src = tmp_path / "mxcsr.c"
    src.write_text("unsigned get(void) { return __builtin_ia32_stmxcsr(); }\n"
                   "void set(unsigned v) { __builtin_ia32_ldmxcsr(v); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "mxcsr.so"), str(src)], check=True)
    lib = ctypes.CDLL(str(tmp_path / "mxcsr.so"))
    lib.get.restype = ctypes.c_uint
    lib.set.argtypes = [ctypes.c_uint]
    saved = lib.get()
    lib.set(saved | 0x8040)  # FTZ | DAZ
    try:
        yield
    finally:
        lib.set(saved)


def test_subnormals_survive_a_caller_that_flushes_them(simd, tmp_path):
    """A global average pool of subnormal values, run on the calling thread: flushing them changes the bytes."""
    case = next(c for c in SWEEP if c.name.startswith("gap") and "tiny" in c.name)
    prog = Program.from_bytes(case.program, case.weights)
    with NativeExecutor(threads=1, simd=simd) as ex:
        ex.load(prog)
        with subnormals_flushed(tmp_path):
            got = ex.run(prog, case.x)
    assert_same_bits(got, case.expected, case.name)


def test_program_copy_is_independent_and_freed_with_the_program():
    case = next(c for c in SWEEP if c.name.startswith("conv"))
    with NativeExecutor(threads=1) as ex:
        prog = Program.from_bytes(case.program, case.weights)
        ex.load(prog)
        want = ex.run(prog, case.x)
        prog.weights = bytes(len(prog.weights))  # the loaded copy is C's own
        assert ex.run(prog, case.x).tobytes() == want.tobytes()
        assert len(ex._loaded) == 1
        del prog
        gc.collect()
        assert not ex._loaded


def test_unload_frees_the_native_copy(native):
    case = next(c for c in SWEEP if c.name.startswith("conv"))
    prog = Program.from_bytes(case.program, case.weights)
    native.load(prog)
    assert id(prog) in native._loaded
    native.unload(prog)
    assert id(prog) not in native._loaded


def test_close_frees_and_refuses_new_runs():
    case = SWEEP[0]
    prog = Program.from_bytes(case.program, case.weights)
    ex = NativeExecutor(threads=2)
    ex.run(prog, case.x)
    ex.close()
    ex.close()
    with pytest.raises(NativeError, match="closed"):
        ex.run(prog, case.x)


@pytest.mark.parametrize("path", SIMD_PATHS)
def test_simd_from_environment(monkeypatch, path):
    monkeypatch.setenv("BRAINWAVE_NPU_SIMD", path)
    if path not in available_simd():
        with pytest.raises(NativeError, match=f"cannot run the {path} path"):
            NativeExecutor(threads=1)
        return
    with NativeExecutor(threads=1) as ex:
        assert ex.simd == path and ex.name == "native"


def test_bad_options_are_clear_errors(monkeypatch):
    with pytest.raises(NativeError, match="unknown SIMD path 'sse9'"):
        NativeExecutor(simd="sse9")
    monkeypatch.setenv("BRAINWAVE_NPU_THREADS", "many")
    with pytest.raises(NativeError, match="BRAINWAVE_NPU_THREADS"):
        NativeExecutor()
    monkeypatch.setenv("BRAINWAVE_NPU_THREADS", "3")
    with NativeExecutor() as ex:
        assert ex.threads == 3
    with pytest.raises(NativeError, match="at least 1"):
        NativeExecutor(threads=0)
