"""The `emulator` featurizer backend: the catalog network compiled to an NPU program and run bit-exactly in numpy.

Options: `precision` ("bfp20", the default, "bfp16" or "bfp12"; docs/numerics.md).
"""
from __future__ import annotations

import numpy as np

from brainwave.featurizer.backend import BackendError, batch1_input

from .compiler import CompileError, compile_keras
from .emulator import Emulator
from .isa import Program
from .numerics import DEFAULT_PRECISION


class EmulatorBackend:
    name = "emulator"

    def __init__(self, program: Program, output_dims: tuple[int, ...]):
        self.program = program
        self.emulator = Emulator(program)
        self.output_dims = output_dims
        self._closed = False

    def run(self, image: np.ndarray) -> np.ndarray:
        if self._closed:
            raise RuntimeError("emulator backend is closed")
        x = batch1_input(image, self.program.input_shape)
        return self.emulator.run(x).reshape((1, *self.output_dims))

    def close(self) -> None:
        self._closed = True


def create_emulator(model, options: dict | None = None) -> EmulatorBackend:
    options = dict(options or {})
    try:
        program = compile_keras(model, precision=options.get("precision") or DEFAULT_PRECISION)
    except (CompileError, ValueError) as exc:
        raise BackendError(f"cannot compile {model.name!r} for the NPU: {exc}") from exc
    return EmulatorBackend(program, tuple(int(d) for d in model.outputs[0].shape[1:]))
