"""The native executor: NPU programs run on the CPU in C++ (src/), byte for byte as the HLS kernel.

    executor = NativeExecutor()                 # threads: $BRAINWAVE_NPU_THREADS or os.cpu_count()
    executor.load(program)                      # validate, repack the weights (once per program object)
    y = executor.run(program, x)                # x: (H, W, C) or (1, H, W, C) float32
    executor.simd                               # "avx512vnni", "avx2" or "portable"

SIMD paths: AVX-512 VNNI (vpdpwssd), AVX2 (vpmaddwd) and portable C++, chosen by CPUID; `simd=` or
$BRAINWAVE_NPU_SIMD forces one (an error if this CPU lacks it). All give the same bytes (docs/numerics.md).
Runs from several threads are safe: they take turns on the executor's thread pool, in arrival order.

A loaded program is cached per Program object (by identity) until the object is garbage collected, `unload`
or `close`; like weights resident on a board, a later change to that object is not seen: load a new one.
"""
from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from brainwave.npu.executor import split_batch
from brainwave.npu.isa import Instruction, Program
from brainwave.npu.ops import validate

from ._library import SIMD_PATHS, Library, NativeError

__all__ = ["NativeExecutor", "NativeError", "SIMD_PATHS", "available_simd"]


def available_simd() -> list[str]:
    """The SIMD paths this CPU can run, fastest first."""
    return Library.get().simd_paths()


def _option(value, env: str) -> str | None:
    if value is not None:
        return str(value)
    return os.environ.get(env) or None


def _threads(option: int | None) -> int:
    value = _option(option, "BRAINWAVE_NPU_THREADS")
    if value is None:
        return os.cpu_count() or 1
    try:
        threads = int(value)
    except ValueError:
        raise NativeError(f"threads must be a positive integer (BRAINWAVE_NPU_THREADS), got {value!r}") from None
    if threads < 1:
        raise NativeError(f"threads must be at least 1, got {threads}")
    return threads


@dataclass
class _Loaded:
    handle: int
    finalizer: weakref.finalize


class NativeExecutor:
    """The `Executor` protocol (brainwave.npu.executor) on libbwnative."""

    name = "native"

    def __init__(self, threads: int | None = None, simd: str | None = None, library: Library | None = None):
        self._lib = library or Library.get()
        self.threads = _threads(threads)
        self._engine, self.simd = self._lib.create_engine(_option(simd, "BRAINWAVE_NPU_SIMD"), self.threads)
        self._loaded: dict[int, _Loaded] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when the last run in flight returns
        self._running = 0
        self._closed = False

    def load(self, program: Program) -> None:
        self._handle(program)

    def unload(self, program: Program) -> None:
        """Free `program`'s native copy, once no run is in flight (a run may be using it)."""
        with self._lock:
            while self._running:
                self._idle.wait()
            entry = self._loaded.pop(id(program), None)
        if entry is not None:
            entry.finalizer.detach()
            self._lib.free_program(entry.handle)

    def trace(self, program: Program, x: np.ndarray) -> list[tuple[Instruction, np.ndarray]]:
        """Run `program` once, returning each instruction with a copy of the tensor it wrote (per-layer
        comparisons such as benchmarks/accuracy_report.py's SQNR)."""
        outputs: list[np.ndarray] = []

        def observe(index: int, arena) -> None:
            d = program.instructions[index]
            size = d.out_h * d.out_w * d.out_c
            view = np.ctypeslib.as_array(arena, shape=(d.out_offset + size,))[d.out_offset:]
            outputs.append(view.reshape(d.out_shape).copy())

        self._execute(program, x, observe)
        return list(zip(program.instructions, outputs))

    def run(self, program: Program, x: np.ndarray) -> np.ndarray:
        return self._execute(program, x)

    def _execute(self, program: Program, x: np.ndarray, observe=None) -> np.ndarray:
        x, batched = split_batch(program, x)
        with self._lock:
            self._check_open()
            self._running += 1  # before taking the handle: unload() and close() wait for runs in flight
        try:
            handle = self._handle(program)
            out = np.empty(program.output_shape, dtype=np.float32)
            self._lib.run(self._engine, handle, x, out, observe)  # releases the GIL (the observer retakes it)
        finally:
            with self._lock:
                self._running -= 1
                if not self._running:
                    self._idle.notify_all()
        return out[np.newaxis] if batched else out

    def close(self) -> None:
        """Wait for runs in flight, then free every loaded program and the thread pool. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while self._running:
                self._idle.wait()
            loaded, self._loaded = list(self._loaded.values()), {}
        for entry in loaded:
            entry.finalizer.detach()
            self._lib.free_program(entry.handle)
        self._lib.destroy_engine(self._engine)

    def __enter__(self) -> "NativeExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise NativeError("the native executor is closed")

    def _handle(self, program: Program) -> int:
        key = id(program)
        with self._lock:
            self._check_open()
            if key in self._loaded:
                return self._loaded[key].handle
        validate(program)  # ProgramError with the kernel's status and a readable reason
        handle = self._lib.load_program(program.program_bytes(), program.weights)
        with self._lock:
            if self._closed or key in self._loaded:  # closed meanwhile, or another thread loaded it first
                self._lib.free_program(handle)
                self._check_open()
                return self._loaded[key].handle
            finalizer = weakref.finalize(program, NativeExecutor._forget, weakref.ref(self), key)
            self._loaded[key] = _Loaded(handle, finalizer)
        return handle

    @staticmethod
    def _forget(executor_ref: "weakref.ref[NativeExecutor]", key: int) -> None:
        """The Program object is gone (so no run can be using it): free its native copy."""
        executor = executor_ref()
        if executor is None:
            return
        with executor._lock:
            entry = executor._loaded.pop(key, None)
        if entry is not None:
            executor._lib.free_program(entry.handle)
