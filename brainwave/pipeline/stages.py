"""Stage runtimes: a loaded TensorFlow graph, or the featurizer on a backend. One item (batch 1) per call."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from brainwave.errors import DefinitionError, InvalidInputError, ModelLoadError
from brainwave.featurizer.backend import create_backend
from brainwave.models import build_featurizer, resolve_featurizer
from brainwave.models.catalog import UnknownFeaturizerError
from brainwave.pipeline.definition import BrainwaveStage, TensorflowStage


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


class TensorflowRuntime:
    """A frozen GraphDef (TF1 or TF2) or SavedModel, pruned to input_tensor -> output_tensor."""

    def __init__(self, stage: TensorflowStage, root: Path, index: int) -> None:
        self.index = index
        self.label = f"stage {index} ({stage.model_path})"
        path = root / stage.model_path
        if path.is_dir():
            self._fn, self.input_dtype, self.input_shape = self._load_saved_model(path, stage)
        else:
            self._fn, self.input_dtype, self.input_shape = self._load_graph_def(path, stage)

    def _load_graph_def(self, path: Path, stage: TensorflowStage):
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(path.read_bytes())
        except Exception as exc:  # DecodeError and friends
            raise ModelLoadError(f"{self.label}: not a TensorFlow GraphDef (.pb): {exc}") from None
        try:
            wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        except Exception as exc:
            raise ModelLoadError(f"{self.label}: the graph does not import: {exc}") from None
        graph = wrapped.graph
        tensors = {}
        for field_name, name in (("input_tensor", stage.input_tensor), ("output_tensor", stage.output_tensor)):
            try:
                tensors[field_name] = graph.get_tensor_by_name(_tensor_name(name))
            except (KeyError, ValueError):
                placeholders = [op.name for op in graph.get_operations() if op.type == "Placeholder"]
                raise ModelLoadError(
                    f"{self.label}: {field_name} {name!r} is not in the graph "
                    f"(its placeholders: {', '.join(placeholders) or 'none'})") from None
        fn = wrapped.prune(tensors["input_tensor"], tensors["output_tensor"])
        return fn, tensors["input_tensor"].dtype, tensors["input_tensor"].shape

    def _load_saved_model(self, path: Path, stage: TensorflowStage):
        try:
            loaded = tf.saved_model.load(str(path))
            signature = loaded.signatures["serving_default"]
        except Exception as exc:
            raise ModelLoadError(f"{self.label}: not a loadable SavedModel with a serving_default signature: {exc}") from None
        inputs = signature.structured_input_signature[1]
        outputs = signature.structured_outputs
        in_key = _match_key(inputs, stage.input_tensor, {k: s.name for k, s in inputs.items()})
        out_key = _match_key(outputs, stage.output_tensor, {k: t.name for k, t in outputs.items()})
        if in_key is None or out_key is None:
            raise ModelLoadError(
                f"{self.label}: serving_default has inputs {sorted(inputs)} and outputs {sorted(outputs)}; "
                f"input_tensor {stage.input_tensor!r} / output_tensor {stage.output_tensor!r} must name one of each")
        spec = inputs[in_key]

        def run(x):
            return signature(**{in_key: x})[out_key]

        self._keep_alive = loaded  # the signature's variables live as long as `loaded`
        return run, spec.dtype, spec.shape

    def run(self, value):
        try:
            tensor = tf.convert_to_tensor(_fit_shape(value, self.input_shape, self.label), self.input_dtype)
            return self._fn(tensor).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as exc:
            raise InvalidInputError(f"{self.label} could not process the input: {_tf_error_cause(exc)}") from None
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{self.label} cannot take the input: {exc}") from None


def _tf_error_cause(exc: tf.errors.OpError) -> str:
    """The line of a TensorFlow error that says what was wrong, without its traceback and node dump."""
    lines = [line.strip() for line in (exc.message or "").splitlines()]
    noise = ("Graph execution error", "Detected at node", "File ", "[[")
    causes = [line for line in lines if line and not line.startswith(noise)]
    return causes[-1] if causes else type(exc).__name__


def _match_key(mapping: dict, wanted: str, tensor_names: dict[str, str]):
    if wanted in mapping:
        return wanted
    for key, name in tensor_names.items():
        if name and _tensor_name(name) == _tensor_name(wanted):
            return key
    return None


def _fit_shape(value, shape: tf.TensorShape, label: str):
    """Reshape a batch-1 value to the rank a stage expects when only size-1 axes differ."""
    if not isinstance(value, np.ndarray) or shape.rank is None or value.ndim == shape.rank:
        return value
    target = [1 if d is None else d for d in shape.as_list()]
    if int(np.prod(target)) == value.size:
        return value.reshape(target)
    raise InvalidInputError(f"{label} expects shape {shape.as_list()} but got {list(value.shape)}")


class FeaturizerRuntime:
    """The `brainwave` stage: a catalog network on the backend chosen at serve time."""

    def __init__(self, stage: BrainwaveStage, root: Path, index: int, backend: str, backend_options: dict | None) -> None:
        self.index = index
        try:
            self.spec = resolve_featurizer(stage.model_ref, stage.model_version)
        except UnknownFeaturizerError as exc:
            raise DefinitionError(f"stage {index}: {exc}") from None
        if stage.output_tensor_dims is not None and tuple(stage.output_tensor_dims) != tuple(self.spec.output_dims):
            raise DefinitionError(
                f"stage {index}: output_tensor_dims {list(stage.output_tensor_dims)} does not match featurizer "
                f"{self.spec.model_ref}'s output {list(self.spec.output_dims)}")
        self.label = f"stage {index} ({self.spec.model_ref} on {backend})"
        weights = root / stage.weights_path if stage.weights_path else None
        try:
            model = build_featurizer(self.spec, weights)
            self.backend = create_backend(backend, model, backend_options)
        except (ValueError, OSError) as exc:
            raise ModelLoadError(f"{self.label}: {exc}") from None
        self.input_shape = (1, *self.spec.input_shape)
        self.output_shape = (1, *self.spec.output_dims)

    def run(self, value):
        image = np.asarray(value, dtype=np.float32)
        if image.size != int(np.prod(self.input_shape)):
            raise InvalidInputError(f"{self.label} expects an input of shape {list(self.input_shape)}, got {list(image.shape)}")
        out = self.backend.run(image.reshape(self.input_shape))
        return np.asarray(out, dtype=np.float32).reshape(self.output_shape)

    def close(self) -> None:
        self.backend.close()
