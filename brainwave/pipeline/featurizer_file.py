"""A `brainwave` stage's own network: an ONNX (.onnx) or Keras (.keras) file inside model.zip, run on the
backend chosen at serve time like a catalog featurizer.

    emulator / fpga   compiled to an NPU program (brainwave.npu.compiler), run by the shared executor
    float             the file itself: onnxruntime for ONNX, TensorFlow for Keras (the accuracy reference)

The stage takes and returns tensors shaped as the file's model does (an ONNX model's N x C x H x W input
included): the NPU side converts layouts at the edges (compiler.onnx_frontend.OnnxProgram).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainwave.errors import ModelLoadError
from brainwave.featurizer.backend import create_backend
from brainwave.npu.numerics import DEFAULT_PRECISION
from brainwave.pipeline.onnx_model import MAX_TENSOR_ELEMENTS, load_onnx_model, onnx_session


@dataclass
class LoadedFeaturizer:
    backend: object  # run(x with its batch axis of 1) -> output with its batch axis; close()
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


class OnnxOnNpu:
    """An ONNX featurizer's NPU program behind an NPU backend, in the ONNX model's layouts."""

    def __init__(self, backend, compiled) -> None:
        self.name = backend.name
        self._backend, self._compiled = backend, compiled

    def run(self, image: np.ndarray) -> np.ndarray:
        hwc = self._compiled.input.to_npu(image)
        return self._compiled.output.from_npu(self._backend.run(hwc[np.newaxis])[0])

    def close(self) -> None:
        self._backend.close()


class OnnxFloat:
    """The ONNX featurizer as written, in float32 on onnxruntime."""

    name = "float"

    def __init__(self, session) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name

    def run(self, image: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.asarray(image, np.float32)})[0]

    def close(self) -> None:
        self._session = None


def load_featurizer_file(path: Path, backend: str, options: dict | None, label: str) -> LoadedFeaturizer:
    if path.suffix == ".keras":
        return _keras(path, backend, options, label)
    model = load_onnx_model(path, label)
    if backend == "float":
        session = onnx_session(model, label)
        dims = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
        output = session.get_outputs()[0].shape
        return LoadedFeaturizer(OnnxFloat(session), tuple(dims), tuple(d if isinstance(d, int) else 1 for d in output))
    from brainwave.npu.backend import program_backend
    from brainwave.npu.compiler import compile_onnx

    compiled = compile_onnx(model, (options or {}).get("precision") or DEFAULT_PRECISION)
    npu = program_backend(backend, compiled.program, compiled.program.output_shape, options)
    return LoadedFeaturizer(OnnxOnNpu(npu, compiled), compiled.input.shape, compiled.output.shape)


def _keras(path: Path, backend: str, options: dict | None, label: str) -> LoadedFeaturizer:
    from brainwave.tf_runtime import keras

    model = keras.saving.load_model(path, compile=False, safe_mode=True)  # safe_mode: no deserialized lambdas
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelLoadError(f"{label}: a featurizer has one input and one output")
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape) or int(np.prod(shape)) > MAX_TENSOR_ELEMENTS:
        raise ModelLoadError(f"{label}: input shape {shape} must be fixed and at most {MAX_TENSOR_ELEMENTS} elements")
    output = tuple(int(d) for d in model.outputs[0].shape[1:])
    return LoadedFeaturizer(create_backend(backend, model, options), (1, *shape), (1, *output))
