"""The NPU featurizer backends: a catalog network compiled to an NPU program, run by an executor.

    emulator   the native executor (brainwave.npu.native): bit-exact, on the CPU
    fpga       the NPU overlay through PYNQ (brainwave.fpga.driver), or its simulated board

Options: `precision` ("bfp20", the default, "bfp16" or "bfp12"; docs/numerics.md); emulator: `threads`,
`simd`; fpga: `board` (default $BRAINWAVE_FPGA_BOARD or kv260), `simulate`, `timeout_s`, `verify`.
Executors are shared per process (brainwave.npu.executor.shared_executor): models served side by side share
the executor's threads or the device.
"""
from __future__ import annotations

import numpy as np

from brainwave.featurizer.backend import BackendError, batch1_input

from .compiler import CompileError, compile_keras
from .executor import Executor, shared_executor
from .isa import Program
from .numerics import DEFAULT_PRECISION

_EXECUTOR_OPTIONS = {"emulator": ("native", ("threads", "simd")),
                     "fpga": ("board", ("board", "simulate", "timeout_s", "verify"))}


class NpuBackend:
    """A compiled program resident on an executor; `run` takes (1, H, W, C) float32, batch 1."""

    def __init__(self, name: str, executor: Executor, program: Program, output_dims: tuple[int, ...]):
        self.name = name
        self.executor = executor
        self.program = program
        self.output_dims = output_dims
        executor.load(program)
        self._closed = False

    def run(self, image: np.ndarray) -> "np.ndarray | list[np.ndarray]":
        """The output, or for a program with several (isa.Program.outputs) one (1, H, W, C) array each."""
        if self._closed:
            raise BackendError(f"the {self.name} backend is closed")
        x = batch1_input(image, self.program.input_shape)
        y = self.executor.run(self.program, x)
        if self.program.outputs:
            return self.program.split(y)
        return y.reshape((1, *self.output_dims))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.executor.unload(self.program)


def _create(backend: str, model, options: dict | None) -> NpuBackend:
    options = dict(options or {})
    try:
        program = compile_keras(model, precision=options.get("precision") or DEFAULT_PRECISION)
    except CompileError as exc:
        raise BackendError(f"cannot compile {model.name!r} for the NPU: {exc}") from exc
    return program_backend(backend, program, tuple(int(d) for d in model.outputs[0].shape[1:]), options)


def program_backend(backend: str, program: Program, output_dims: tuple[int, ...],
                    options: dict | None = None) -> NpuBackend:
    """Backend `backend` ("emulator" or "fpga") for a program compiled elsewhere (e.g. from ONNX)."""
    options = dict(options or {})
    executor_name, keys = _EXECUTOR_OPTIONS[backend]
    executor = shared_executor(executor_name, **{k: options[k] for k in keys if options.get(k) is not None})
    return NpuBackend(backend, executor, program, output_dims)


def create_emulator(model, options: dict | None = None) -> NpuBackend:
    return _create("emulator", model, options)


def create_fpga(model, options: dict | None = None) -> NpuBackend:
    return _create("fpga", model, options)
