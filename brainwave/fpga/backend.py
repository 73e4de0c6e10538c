"""The `fpga` featurizer backend: the compiled NPU program run on the PYNQ overlay.

`create(model, options)` compiles the Keras featurizer with `brainwave.npu.compiler.compile_keras` and runs
it on the board's NPU. Options (all optional):
  board       bitstreams/<board> to load (default $BRAINWAVE_FPGA_BOARD or "kv260")
  simulate    True: the simulated board (C-sim kernel); False: real PYNQ hardware; default: simulate unless
              running on a Zynq (aarch64/armv7l)
  precision   "bfp20" (default), "bfp16" or "bfp12"
  timeout_s   deadline of one request on the device (default 30)
  verify      run every request twice and compare (catches silent corruption; default False)
"""
from __future__ import annotations

import os

import numpy as np

from brainwave.featurizer.backend import BackendError, batch1_input

from .driver import NpuAccelerator, ProgramImage, shared_accelerator


class FpgaBackend:
    name = "fpga"

    def __init__(self, accelerator: NpuAccelerator, image: ProgramImage):
        self.accelerator = accelerator
        self.image = image
        self._closed = False

    def run(self, image: np.ndarray) -> np.ndarray:
        if self._closed:
            raise RuntimeError("fpga backend is closed")
        x = batch1_input(image, self.image.input_shape)
        return self.accelerator.run(self.image, x[0])[np.newaxis]

    def close(self) -> None:
        self._closed = True


def accelerator_from_options(options: dict) -> NpuAccelerator:
    board = options.get("board") or os.environ.get("BRAINWAVE_FPGA_BOARD", "kv260")
    kwargs = {k: options[k] for k in ("simulate", "timeout_s", "verify") if k in options}
    return shared_accelerator(board, **kwargs)


def create(model, options: dict | None = None) -> FpgaBackend:
    options = dict(options or {})
    try:
        from brainwave.npu.compiler import compile_keras
        from brainwave.npu.numerics import DEFAULT_PRECISION
    except ImportError as exc:
        raise BackendError(f"the fpga backend needs the NPU compiler (brainwave.npu.compiler): {exc}") from exc

    program = compile_keras(model, precision=options.get("precision") or DEFAULT_PRECISION)
    image = ProgramImage.from_program(program)
    return FpgaBackend(accelerator_from_options(options), image)
