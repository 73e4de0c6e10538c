"""The `onnx` stage: an ONNX model on the CPU through onnxruntime, one item (batch 1) per call."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainwave.errors import InvalidInputError, ModelLoadError, clip
from brainwave.pipeline.definition import OnnxStage
from brainwave.pipeline.onnx_model import load_onnx_model, onnx_session
from brainwave.pipeline.stages import fit_shape
from brainwave.tf_runtime import tf

# onnxruntime's tensor types -> what the pipeline reports (TensorFlow dtypes, like every other stage)
_DTYPES = {"tensor(float)": tf.float32, "tensor(double)": tf.float64, "tensor(float16)": tf.float16,
           "tensor(int8)": tf.int8, "tensor(uint8)": tf.uint8, "tensor(int16)": tf.int16, "tensor(int32)": tf.int32,
           "tensor(int64)": tf.int64, "tensor(bool)": tf.bool}


def _pick(values, wanted: str | None, what: str, label: str):
    if wanted is None:
        if len(values) != 1:
            raise ModelLoadError(f"{label}: the model has {len(values)} {what}s "
                                 f"({clip(', '.join(v.name for v in values), 200)}); name one as {what}_tensor")
        return values[0]
    for value in values:
        if value.name == wanted:
            return value
    raise ModelLoadError(f"{label}: {what}_tensor {wanted!r} is not one of the model's {what}s "
                         f"({clip(', '.join(v.name for v in values), 200)})")


def _spec(value, label: str) -> tuple[tf.DType, tf.TensorShape]:
    if value.type not in _DTYPES:
        raise ModelLoadError(f"{label}: {value.name!r} is a {value.type}; an onnx stage takes and returns numeric "
                             "tensors")
    return _DTYPES[value.type], tf.TensorShape([d if isinstance(d, int) else None for d in value.shape])


class OnnxRuntime:
    def __init__(self, stage: OnnxStage, root: Path, index: int) -> None:
        self.index = index
        self.label = f"stage {index} ({stage.model_path})"
        self.session = onnx_session(load_onnx_model(root / stage.model_path, self.label), self.label)
        source = _pick(self.session.get_inputs(), stage.input_tensor, "input", self.label)
        sink = _pick(self.session.get_outputs(), stage.output_tensor, "output", self.label)
        required = [i.name for i in self.session.get_inputs() if i.name != source.name]
        if required:
            raise ModelLoadError(f"{self.label}: the model needs inputs besides {source.name!r}: "
                                 f"{clip(', '.join(required), 200)}")
        self._input, self._output = source.name, sink.name
        self.input_dtype, self.input_shape = _spec(source, self.label)
        self.output_dtype, self.output_shape = _spec(sink, self.label)

    def run(self, value):
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

        x = fit_shape(np.asarray(value, dtype=self.input_dtype.as_numpy_dtype), self.input_shape, self.label)
        try:
            return self.session.run([self._output], {self._input: x})[0]
        except (InvalidArgument, Fail, RuntimeException) as exc:  # the model refused this input
            raise InvalidInputError(f"{self.label} could not process the input: {clip(str(exc))}") from None
