"""The native executor (brainwave.npu.native) against the HLS kernel's C simulation, byte for byte, on every SIMD
path this CPU has: the randomized single-instruction sweep of tests/hls/cases.py, whole ResNet-50 and
EfficientNet-Lite0, thread counts, concurrent runs, validation, and a mutant that must be caught."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import platform
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from brainwave.errors import InvalidInputError
from brainwave.npu import csim
from brainwave.npu.executor import Executor
from brainwave.npu.isa import Program, ProgramError
from brainwave.npu.native import SIMD_PATHS, NativeError, NativeExecutor, available_simd
from brainwave.npu.native._library import Library

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hls"))  # the HLS tests' spec helpers
import cases  # noqa: E402
import handmade  # noqa: E402
from test_featurizers_bitexact import efficientnet_lite0_input, resnet50_input  # noqa: E402

SWEEP = cases.sweep()


def assert_same_bytes(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape and got.dtype == np.float32, f"{what}: {got.shape} {got.dtype} vs {want.shape}"
    a, b = got.reshape(-1).view(np.uint32), want.reshape(-1).view(np.uint32)
    bad = np.flatnonzero(a != b)
    assert bad.size == 0, (f"{what}: {bad.size}/{a.size} floats differ; first at {bad[0]}: "
                           f"native 0x{a[bad[0]]:08x}, C-sim 0x{b[bad[0]]:08x}")


@functools.cache
def csim_output(index: int) -> np.ndarray:
    case = SWEEP[index]
    return csim.run_csim((case.program, case.weights), case.x)[0]


@pytest.fixture(scope="module", params=SIMD_PATHS)
def simd(request) -> str:
    if request.param not in available_simd():
        pytest.skip(f"this CPU cannot run the {request.param} path")
    return request.param


@pytest.fixture(scope="module")
def executor(simd):
    with NativeExecutor(threads=2, simd=simd) as ex:
        yield ex


# ---------------------------------------------------------------------------------------------------------------
# The sweep: every instruction kind, precision and edge case of the spec


@pytest.mark.parametrize("index", range(len(SWEEP)), ids=[c.name for c in SWEEP])
def test_sweep_matches_csim(executor, index):
    case = SWEEP[index]
    out = executor.run(Program.from_bytes(case.program, case.weights), case.x)
    assert_same_bytes(out, csim_output(index), f"{executor.simd}: {case.name}")


def test_mutant_accumulation_order_is_caught():
    """A build that swaps two chunk additions must differ from C-sim somewhere in the sweep, on every path:
    otherwise the byte comparisons above could not see an ordering bug."""
    mutant = Library.get(("BW_MUTATE_ORDER",))
    for path in available_simd():
        with NativeExecutor(threads=1, simd=path, library=mutant) as ex:
            differ = [c.name for i, c in enumerate(SWEEP)
                      if ex.run(Program.from_bytes(c.program, c.weights), c.x).tobytes() != csim_output(i).tobytes()]
        assert differ, f"{path}: the out-of-order mutant matched C-sim on the whole sweep"
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
            want = csim.run_csim((case.program, case.weights), case.x)[0]
            assert_same_bytes(ex.run(Program.from_bytes(case.program, case.weights), case.x), want, case.name)


def test_concurrent_runs_from_python_threads(executor):
    """Runs from several threads take turns on one pool, each with its own arena."""
    picks = [i for i, c in enumerate(SWEEP) if c.name.startswith("conv")][::5]
    programs = {i: Program.from_bytes(SWEEP[i].program, SWEEP[i].weights) for i in picks}
    failures: list[str] = []

    def worker(offset: int) -> None:
        for i in picks[offset:] + picks[:offset]:
            out = executor.run(programs[i], SWEEP[i].x)
            if out.tobytes() != csim_output(i).tobytes():
                failures.append(SWEEP[i].name)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# ---------------------------------------------------------------------------------------------------------------
# Whole networks on a real photo (C-sim once per network and precision)

NETWORKS = {"resnet50": resnet50_input, "efficientnet-lite0": efficientnet_lite0_input}


@functools.cache
def network(name: str, precision: str) -> tuple[Program, np.ndarray, np.ndarray]:
    """(program, photo input, C-sim output), compiled and simulated once per session."""
    from brainwave.models import build_featurizer, resolve_featurizer
    from brainwave.npu.compiler import compile_keras

    program = compile_keras(build_featurizer(resolve_featurizer(name)), precision=precision)
    x = NETWORKS[name]()
    return program, x, csim.run_csim(program, x)[0]


@pytest.mark.slow
@pytest.mark.parametrize("name, precision", [(n, p) for n in NETWORKS for p in ("bfp20", "bfp16")])
def test_network_matches_csim(name, precision, simd):
    program, x, want = network(name, precision)
    for threads in (1, 2) if simd == available_simd()[0] else (2,):
        with NativeExecutor(threads=threads, simd=simd) as ex:
            got = ex.run(program, x)
        assert_same_bytes(got, want, f"{name} on {simd}, {threads} threads")
    assert np.all(np.isfinite(want)) and np.count_nonzero(want) > want.size // 4, "degenerate features"


# ---------------------------------------------------------------------------------------------------------------
# Validation, memory and the Executor interface


def patch(program: bytes, word: int, value: int) -> bytes:
    b = bytearray(program)
    struct.pack_into("<I", b, 4 * word, value & 0xFFFFFFFF)
    return bytes(b)


def insn_word(index: int, field: int) -> int:
    return 16 + 32 * index + field


@pytest.mark.parametrize("word, value", [
    (0, 0x12345678), (1, 1), (3, 10), (insn_word(0, 0), 9), (insn_word(2, 2), 4), (insn_word(2, 19), 3),
    (insn_word(2, 20), 4), (insn_word(2, 22), 1 << 20), (insn_word(3, 10), 9), (insn_word(4, 25), 1 << 30),
    (insn_word(0, 8), 5), (insn_word(1, 7), 1 << 31),
])
def test_native_refuses_what_the_kernel_refuses(word, value):
    """The C loader checks programs itself (it never trusts its caller), with the kernel's status codes."""
    program, weights, x, _ = handmade.smoke_program()
    bad = patch(program, word, value)
    with pytest.raises(csim.KernelStatusError) as kernel:
        csim.run_csim((bad, weights), x)
    with pytest.raises(ProgramError) as native:
        Library.get().load_program(bad, weights)
    assert native.value.status == kernel.value.status


def test_refused_exponent_raises_program_error(executor):
    program, weights, _, _ = handmade.smoke_program()
    prog = Program.from_bytes(program, weights)
    conv = next(d for d in prog.instructions if d.opcode == 1)
    blob = bytearray(prog.weights)
    blob[conv.weight_exp_offset] = 0x80  # -128: outside [-50, 50]
    prog.weights = bytes(blob)
    with pytest.raises(ProgramError) as err:
        executor.load(prog)
    assert err.value.status == 5


def test_reads_of_unwritten_arena_are_zero_on_every_run(executor):
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
        assert_same_bytes(executor.run(prog, x), csim.run_csim((program, b""), x)[0], f"run {seed}")


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
    index = next(i for i, c in enumerate(SWEEP) if c.name.startswith("gap") and "tiny" in c.name)
    case = SWEEP[index]
    want = csim_output(index)  # computed before the flags change
    prog = Program.from_bytes(case.program, case.weights)
    with NativeExecutor(threads=1, simd=simd) as ex:
        ex.load(prog)
        with subnormals_flushed(tmp_path):
            got = ex.run(prog, case.x)
    assert_same_bytes(got, want, case.name)


def test_executor_interface(executor):
    case = next(c for c in SWEEP if c.name.startswith("conv"))
    prog = Program.from_bytes(case.program, case.weights)
    assert isinstance(executor, Executor) and executor.name == "native" and executor.simd in SIMD_PATHS
    executor.load(prog)
    executor.load(prog)  # idempotent
    unbatched = executor.run(prog, case.x)
    batched = executor.run(prog, case.x[np.newaxis])
    assert unbatched.shape == prog.output_shape and batched.shape == (1, *prog.output_shape)
    assert batched.tobytes() == unbatched.tobytes()
    with pytest.raises(InvalidInputError):
        executor.run(prog, case.x[..., :-1])
    with pytest.raises(InvalidInputError):
        executor.run(prog, np.stack([case.x, case.x]))


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


def test_unload_frees_and_a_later_run_loads_again(executor):
    case = next(c for c in SWEEP if c.name.startswith("conv"))
    prog = Program.from_bytes(case.program, case.weights)
    want = executor.run(prog, case.x)
    executor.unload(prog)
    assert id(prog) not in executor._loaded
    executor.unload(prog)  # not loaded: nothing to do
    assert executor.run(prog, case.x).tobytes() == want.tobytes()


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
        assert ex.simd == path


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
