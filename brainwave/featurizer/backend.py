"""The interface every featurizer backend implements, and the registry that picks one at serve time.

A backend turns one preprocessed image tensor (batch 1, NHWC float32) into the featurizer's output
(batch 1, float32). Backends are created from a catalog network (a Keras model): the `float`
backend runs it in TensorFlow, the `emulator` backend compiles it to an NPU program and runs that
in numpy, the `fpga` backend runs the same program on the FPGA overlay.
"""
from __future__ import annotations

import importlib
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from brainwave.errors import BrainwaveError


class BackendError(BrainwaveError, RuntimeError):
    """The backend could not run the featurizer (device fault, bad program...)."""


class BackendUnavailableError(BackendError):
    """The device is temporarily unusable (maps to gRPC UNAVAILABLE)."""


class BackendTimeoutError(BackendError):
    """The device missed its deadline (maps to gRPC DEADLINE_EXCEEDED)."""


@runtime_checkable
class FeaturizerBackend(Protocol):
    """Runs one featurizer network at batch size 1."""

    name: str

    def run(self, image: np.ndarray) -> np.ndarray:
        """`image` is float32 of shape (1, H, W, C); returns float32 of shape (1, ...)."""
        ...

    def close(self) -> None:
        """Release device resources; the backend is unusable afterwards."""
        ...


def batch1_input(image: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """`image` as float32 (1, *input_shape), or a ValueError saying what shape was expected."""
    x = np.asarray(image, dtype=np.float32)
    want = (1, *input_shape)
    if x.shape != want:
        raise ValueError(f"expected an image of shape {want}, got {x.shape}")
    return x


# name -> "module:factory"; imported lazily so that `float` never pulls in NPU or PYNQ code.
# A factory takes (keras_model, options dict) and returns a FeaturizerBackend.
_BACKENDS: dict[str, str] = {
    "float": "brainwave.featurizer.float_backend:create",
    "emulator": "brainwave.npu.backend:create_emulator",
    "fpga": "brainwave.npu.backend:create_fpga",
}


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def create_backend(name: str, model, options: dict | None = None) -> FeaturizerBackend:
    """Build backend `name` for a catalog network (a Keras model)."""
    try:
        target = _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown featurizer backend {name!r}; choose one of {', '.join(backend_names())}") from None
    module_name, factory_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f"featurizer backend {name!r} is not available: {exc}") from exc
    factory: Callable = getattr(module, factory_name)
    return factory(model, dict(options or {}))
