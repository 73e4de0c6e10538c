"""Run the HLS NPU kernel (hls/src/npu_kernel.cpp) as C-simulation through ctypes.

The kernel is compiled by hls/Makefile (`lib` target) into a build cache (brainwave.toolchain), and its one
entry point is the same function the FPGA runs:

    void npu_run(const uint32_t *program, const uint8_t *weights, const uint8_t *weights_b, float *arena,
                 float *arena_b, uint32_t *status, uint32_t mode)

`CsimExecutor` is the kernel as an executor (brainwave.npu.executor): it owns the buffers (arena sized from
the program, input written at `input_offset`, output read at `output_offset`) and, as the board driver does,
has the kernel validate a program once (RunMode.VALIDATE) and then run it trusted. `call_npu_run` is the raw call
on caller-owned buffers (what the simulated board uses).
Set BRAINWAVE_NPU_LIB to use a prebuilt library elsewhere (then nothing is built).
"""
from __future__ import annotations

import ctypes
import os
import threading
import weakref
from pathlib import Path

import numpy as np

from brainwave.errors import BrainwaveError

from .executor import split_batch
from .isa import Program, ProgramError, RunMode, Status

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


class CsimError(BrainwaveError, RuntimeError):
    """The kernel library is missing (a BRAINWAVE_NPU_LIB that does not exist)."""


def library_path() -> Path:
    """$BRAINWAVE_NPU_LIB, or libnpu.so built from the HLS sources (hls/Makefile, once per source hash)."""
    env = os.environ.get("BRAINWAVE_NPU_LIB")
    if env:
        return Path(env)
    from brainwave.paths import hls_dir
    from brainwave.toolchain import build_library

    return build_library("npu", hls_dir())


def load_library() -> ctypes.CDLL:
    """The kernel library, built on first use unless BRAINWAVE_NPU_LIB names a prebuilt one."""
    global _lib
    with _lock:
        if _lib is None:
            path = library_path()
            if not path.is_file():
                raise CsimError(f"{path} does not exist")
            lib = ctypes.CDLL(str(path))
            lib.npu_run.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_uint32]
            lib.npu_run.restype = None
            _lib = lib
        return _lib


def call_npu_run(program: np.ndarray, weights: np.ndarray, arena: np.ndarray, status: np.ndarray,
                 weights_b: np.ndarray | None = None, arena_b: np.ndarray | None = None,
                 mode: int = RunMode.RUN) -> None:
    """Raw kernel call on caller-owned, C-contiguous buffers (uint32, uint8, float32, uint32[1]). weights_b and
    arena_b are the kernel's second ports onto the weights and the arena: the same buffers unless a caller (the
    simulated board) passes what its pointer registers address. mode: a RunMode (any uint32 the register takes)."""
    weights_b = weights if weights_b is None else weights_b
    arena_b = arena if arena_b is None else arena_b
    for name, arr, dtype in (
        ("program", program, np.uint32),
        ("weights", weights, np.uint8),
        ("weights_b", weights_b, np.uint8),
        ("arena", arena, np.float32),
        ("arena_b", arena_b, np.float32),
        ("status", status, np.uint32),
    ):
        if arr.dtype != dtype or not arr.flags.c_contiguous:
            raise TypeError(f"{name} must be a C-contiguous {np.dtype(dtype).name} array")
    if not (arena.flags.writeable and arena_b.flags.writeable and status.flags.writeable):
        raise TypeError("arena, arena_b and status must be writeable")
    load_library().npu_run(program.ctypes.data, weights.ctypes.data, weights_b.ctypes.data, arena.ctypes.data,
                           arena_b.ctypes.data, status.ctypes.data, int(mode) & 0xFFFFFFFF)


class CsimExecutor:
    """The HLS kernel's C simulation as an `Executor` (brainwave.npu.executor). It validates nothing itself:
    the kernel does, once per program (RunMode.VALIDATE, as the board driver runs it), and a refusal is a
    ProgramError with its status; every run after that is a RunMode.TRUSTED_RUN on the same buffers."""

    name = "csim"

    def __init__(self) -> None:
        self._loaded: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def load(self, program: Program) -> None:
        self._blobs(program)

    def unload(self, program: Program) -> None:
        self._loaded.pop(id(program), None)

    def _blobs(self, program: Program) -> tuple[np.ndarray, np.ndarray]:
        key = id(program)
        if key not in self._loaded:
            words = np.frombuffer(program.program_bytes(), dtype="<u4").astype(np.uint32)
            weights = np.frombuffer(program.weights, dtype=np.uint8).copy() if program.weights else np.zeros(1, np.uint8)
            status = np.full(1, 0xFFFFFFFF, dtype=np.uint32)
            call_npu_run(words, weights, np.zeros(1, np.float32), status, mode=RunMode.VALIDATE)  # touches no arena
            _raise_for(status)
            self._loaded[key] = (words, weights)
            weakref.finalize(program, self._loaded.pop, key, None)
        return self._loaded[key]

    def run(self, program: Program, x: np.ndarray) -> np.ndarray:
        x, batched = split_batch(program, x)
        words, weights = self._blobs(program)
        arena = np.zeros(max(program.arena_words, 1), dtype=np.float32)
        if program.input_offset + x.size <= program.arena_words:  # else the kernel says OUT_OF_BOUNDS
            arena[program.input_offset:program.input_offset + x.size] = x.reshape(-1)
        status = np.full(1, 0xFFFFFFFF, dtype=np.uint32)
        call_npu_run(words, weights, arena, status, mode=RunMode.TRUSTED_RUN)
        _raise_for(status)
        n = int(np.prod(program.output_shape))
        out = arena[program.output_offset:program.output_offset + n].reshape(program.output_shape).copy()
        return out[np.newaxis] if batched else out

    def close(self) -> None:
        self._loaded.clear()


def _raise_for(status: np.ndarray) -> None:
    if int(status[0]) != Status.OK:
        raise ProgramError(Status(int(status[0])), "the HLS kernel refused the program")
