"""One interface for everything that runs an NPU program: the native executor, the HLS kernel's C simulation
and the (simulated or real) FPGA board.

    executor = create_executor("native")
    executor.load(program)          # validate once, repack weights, make them resident
    y = executor.run(program, x)    # x: (H, W, C) or (1, H, W, C) float32; y keeps x's batch convention

Every executor computes the same bytes (docs/numerics.md); `tests/npu/test_executors.py` runs one body over
all of them. A program the NPU refuses raises `isa.ProgramError` carrying the kernel's status code, whichever
executor found it.
"""
from __future__ import annotations

import importlib
import threading
from typing import Protocol, runtime_checkable

import numpy as np

from .isa import Program


@runtime_checkable
class Executor(Protocol):
    name: str

    def load(self, program: Program) -> None:
        """Validate `program` and keep what running it needs (repacked weights, device buffers). Idempotent."""
        ...

    def run(self, program: Program, x: np.ndarray) -> np.ndarray:
        """Run `program` on one input (loading it first if needed); float32, shaped like the program output."""
        ...

    def unload(self, program: Program) -> None:
        """Forget what `load` kept for `program` (other programs stay loaded)."""
        ...

    def close(self) -> None:
        """Free everything `load` kept."""
        ...


# name -> "module:class"; imported lazily (the simulated board needs PYNQ, C-sim a compiler).
_EXECUTORS: dict[str, str] = {
    "native": "brainwave.npu.native:NativeExecutor",
    "csim": "brainwave.npu.csim:CsimExecutor",
    "board": "brainwave.fpga.driver:NpuAccelerator",
}
_shared: dict[tuple, Executor] = {}
_shared_lock = threading.Lock()


def executor_names() -> list[str]:
    return list(_EXECUTORS)


def create_executor(name: str, **options) -> Executor:
    try:
        target = _EXECUTORS[name]
    except KeyError:
        raise ValueError(f"unknown NPU executor {name!r}; choose one of {', '.join(_EXECUTORS)}") from None
    module_name, factory = target.split(":")
    return getattr(importlib.import_module(module_name), factory)(**options)


def shared_executor(name: str, **options) -> Executor:
    """One executor per (name, options) in the process: the models served side by side share its threads, or
    its device, instead of each creating their own."""
    key = (name, tuple(sorted(options.items())))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = create_executor(name, **options)
        return _shared[key]


def split_batch(program: Program, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """(x as a C-contiguous float32 (H, W, C) array, whether it came with a batch axis of 1)."""
    from brainwave.errors import InvalidInputError

    x = np.asarray(x, dtype=np.float32)
    batched = x.ndim == 4
    if batched:
        if x.shape[0] != 1:
            raise InvalidInputError(f"the NPU runs batch size 1; got a batch of {x.shape[0]}")
        x = x[0]
    if x.shape != tuple(program.input_shape):
        raise InvalidInputError(f"input has shape {x.shape}, the program reads {tuple(program.input_shape)}")
    return np.ascontiguousarray(x), batched
