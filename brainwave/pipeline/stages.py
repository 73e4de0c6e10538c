"""Stage runtimes: a loaded TensorFlow graph, or the featurizer on a backend. One item (batch 1) per call.
(The `onnx` stage's runtime is in onnx_stage.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainwave.errors import (BrainwaveError, DefinitionError, InvalidInputError, ModelLoadError, ResourceLimitError,
                              brief, clip)
from brainwave.featurizer.backend import create_backend
from brainwave.models import build_featurizer, resolve_featurizer
from brainwave.models.catalog import FeaturizerSpec, UnknownFeaturizerError
from brainwave.pipeline.definition import BrainwaveStage, TensorflowStage, names_of
from brainwave.pipeline.featurizer_file import load_featurizer_file
from brainwave.pipeline.graph_policy import check_graph_def, check_saved_model
from brainwave.tf_runtime import tf


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


class TensorflowRuntime:
    """A frozen GraphDef (TF1 or TF2) or SavedModel, pruned to input_tensor -> output_tensor (each one name or a
    list: with several inputs, `run` takes the previous stage's outputs in order; with several outputs it returns
    them by name).

    `allow_any_op` skips the op allowlist (brainwave.pipeline.graph_policy): only for trusted models.
    """

    def __init__(self, stage: TensorflowStage, root: Path, index: int, allow_any_op: bool = False) -> None:
        self.index = index
        self.label = f"stage {index} ({stage.model_path})"
        self.allow_any_op = allow_any_op
        self.input_names, self.output_names = names_of(stage.input_tensor), names_of(stage.output_tensor)
        path = root / stage.model_path
        if path.is_dir():
            self._fn, self.inputs, self.outputs = self._load_saved_model(path)
        else:
            self._fn, self.inputs, self.outputs = self._load_graph_def(path)
        (self.input_dtype, self.input_shape), (self.output_dtype, self.output_shape) = self.inputs[0], self.outputs[0]
        for name, (dtype, shape) in zip(self.input_names, self.inputs):
            if dtype == tf.string and shape.rank and any(d not in (None, 1) for d in shape.as_list()):
                raise ModelLoadError(f"{self.label}: a string input must be a scalar or hold one image per call, "
                                     f"but {name} has shape {shape.as_list()}")

    def _load_graph_def(self, path: Path):
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(path.read_bytes())
        except Exception as exc:  # noqa: BLE001 - DecodeError and friends
            raise ModelLoadError(f"{self.label}: not a TensorFlow GraphDef (.pb): {exc}") from None
        if not self.allow_any_op:
            check_graph_def(graph_def, self.output_names, self.label)
        try:
            wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        except Exception as exc:  # noqa: BLE001 - any import failure is a bad model
            raise ModelLoadError(f"{self.label}: the graph does not import: {clip(str(exc))}") from None
        graph = wrapped.graph
        sources = [self._tensor(graph, "input_tensor", name) for name in self.input_names]
        sinks = [self._tensor(graph, "output_tensor", name) for name in self.output_names]
        try:
            fn = wrapped.prune(sources if len(sources) > 1 else sources[0], sinks if len(sinks) > 1 else sinks[0])
        except Exception as exc:  # noqa: BLE001 - e.g. the output does not depend on the input
            raise ModelLoadError(f"{self.label}: cannot run {brief(self.output_names)} from "
                                 f"{brief(self.input_names)}: {clip(str(exc))}") from None
        return fn, [(t.dtype, t.shape) for t in sources], [(t.dtype, t.shape) for t in sinks]

    def _tensor(self, graph, field_name: str, name: str):
        try:
            return graph.get_tensor_by_name(_tensor_name(name))
        except (KeyError, ValueError):
            placeholders = [op.name for op in graph.get_operations() if op.type == "Placeholder"]
            raise ModelLoadError(
                f"{self.label}: {field_name} {brief(name)} is not in the graph "
                f"(its placeholders: {clip(', '.join(placeholders) or 'none', 200)})") from None

    def _load_saved_model(self, path: Path):
        if not self.allow_any_op:
            check_saved_model(path, self.label)
        try:
            loaded = tf.saved_model.load(str(path))
            signature = loaded.signatures["serving_default"]
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{self.label}: not a loadable SavedModel with a serving_default signature: "
                                 f"{clip(str(exc))}") from None
        inputs = signature.structured_input_signature[1]
        outputs = signature.structured_outputs
        in_keys = [_match_key(inputs, name, {k: s.name for k, s in inputs.items()}) for name in self.input_names]
        out_keys = [_match_key(outputs, name, {k: t.name for k, t in outputs.items()}) for name in self.output_names]
        if None in in_keys or None in out_keys:
            raise ModelLoadError(
                f"{self.label}: serving_default has inputs {sorted(inputs)} and outputs {sorted(outputs)}; every "
                f"input_tensor {brief(self.input_names)} / output_tensor {brief(self.output_names)} must name one")

        def run(*xs):
            result = signature(**dict(zip(in_keys, xs)))
            return [result[k] for k in out_keys] if len(out_keys) > 1 else result[out_keys[0]]

        self._keep_alive = loaded  # the signature's variables live as long as `loaded`
        return (run, [(inputs[k].dtype, inputs[k].shape) for k in in_keys],
                [(outputs[k].dtype, outputs[k].shape) for k in out_keys])

    def run(self, value):
        """One item: a value, or (several inputs) the previous stage's outputs by name, taken in order."""
        values = list(value.values()) if isinstance(value, dict) else [value]
        if len(values) != len(self.input_names):
            raise InvalidInputError(f"{self.label} takes {len(self.input_names)} inputs, got {len(values)}")
        try:
            tensors = [tf.convert_to_tensor(self._fit(v, dtype, shape), dtype)
                       for v, (dtype, shape) in zip(values, self.inputs)]
            result = self._fn(*tensors)
        except tf.errors.ResourceExhaustedError as exc:
            raise ResourceLimitError(f"{self.label} ran out of memory on the input: {_tf_error_cause(exc)}") from None
        except tf.errors.OpError as exc:  # the graph refused this input: the request's fault, not the server's
            raise InvalidInputError(f"{self.label} could not process the input: {_tf_error_cause(exc)}") from None
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{self.label} cannot take the input: {clip(str(exc))}") from None
        if len(self.output_names) == 1:
            return result.numpy()
        return {name: t.numpy() for name, t in zip(self.output_names, result)}

    def _fit(self, value, dtype, shape):
        """One item shaped for an input tensor: an encoded image goes in as a scalar, or as a one-element vector
        to a string input of rank 1 or unknown rank (a batched decoder, e.g. map_fn over the images)."""
        if dtype == tf.string:
            if shape.rank == 0:
                return value
            return np.array([value], dtype=object).reshape([1] * (shape.rank or 1))
        return fit_shape(value, shape, self.label)


def _tf_error_cause(exc: tf.errors.OpError) -> str:
    """The line of a TensorFlow error that says what was wrong, without its traceback and node dump."""
    lines = [line.strip() for line in (exc.message or "").splitlines()]
    noise = ("Graph execution error", "Detected at node", "File ", "[[")
    causes = [line for line in lines if line and not line.startswith(noise)]
    return clip(causes[-1]) if causes else type(exc).__name__


def _match_key(mapping: dict, wanted: str, tensor_names: dict[str, str]):
    if wanted in mapping:
        return wanted
    for key, name in tensor_names.items():
        if name and _tensor_name(name) == _tensor_name(wanted):
            return key
    return None


def fit_shape(value, shape: tf.TensorShape, label: str):
    """Reshape a batch-1 value to the rank a stage expects when only size-1 axes differ."""
    if not isinstance(value, np.ndarray) or shape.rank is None or value.ndim == shape.rank:
        return value
    target = [1 if d is None else d for d in shape.as_list()]
    if int(np.prod(target)) == value.size:
        return value.reshape(target)
    raise InvalidInputError(f"{label} expects shape {shape.as_list()} but got {list(value.shape)}")


def _check_output_dims(stage: BrainwaveStage, index: int, dims, featurizer: str) -> None:
    if stage.output_tensor_dims is not None and tuple(stage.output_tensor_dims) != tuple(dims):
        raise DefinitionError(f"stage {index}: output_tensor_dims {list(stage.output_tensor_dims)} does not match "
                              f"featurizer {featurizer}'s output {list(dims)}")


def _check_outputs(stage: BrainwaveStage, index: int, spec: FeaturizerSpec) -> None:
    """A featurizer with several outputs: the stage's output_tensor and output_tensor_dims, where given, are
    the catalog's names and dims, in order."""
    names, dims = [o.name for o in spec.outputs], [list(o.dims) for o in spec.outputs]
    if stage.output_tensor is not None and list(stage.output_tensor) != names:
        raise DefinitionError(f"stage {index}: output_tensor {brief(stage.output_tensor)} does not match featurizer "
                              f"{spec.model_ref}'s outputs {brief(names)}")
    if stage.output_tensor_dims is not None and list(stage.output_tensor_dims) != dims:
        raise DefinitionError(f"stage {index}: output_tensor_dims {brief(stage.output_tensor_dims)} does not match "
                              f"featurizer {spec.model_ref}'s outputs {brief(dims)}")


class FeaturizerRuntime:
    """The `brainwave` stage: a catalog network, or the stage's own .onnx/.keras file, on the backend chosen at
    serve time. A catalog featurizer with several outputs (`FeaturizerSpec.outputs`) returns them by name."""

    def __init__(self, stage: BrainwaveStage, root: Path, index: int, backend: str, backend_options: dict | None) -> None:
        self.index = index
        self.output_names: list[str] = []  # several outputs, or [] for the one
        if stage.output_tensor is not None and stage.model_path is not None:
            raise DefinitionError(f"stage {index}: 'output_tensor' names the outputs of a catalog featurizer with "
                                  "several; a model_path featurizer has one output")
        if stage.model_path is not None:
            self.label = f"stage {index} ({stage.model_path} on {backend})"
            loaded = self._load(lambda: load_featurizer_file(root / stage.model_path, backend, backend_options,
                                                             self.label))
            self.backend, input_shape, output_shape = loaded.backend, loaded.input_shape, loaded.output_shape
            try:
                _check_output_dims(stage, index, output_shape[1:], stage.model_path)
            except DefinitionError:
                self.backend.close()
                raise
        else:
            try:
                self.spec = resolve_featurizer(stage.model_ref, stage.model_version)
            except UnknownFeaturizerError as exc:
                raise DefinitionError(f"stage {index}: {exc}") from None
            if self.spec.outputs:
                _check_outputs(stage, index, self.spec)
                self.output_names = [o.name for o in self.spec.outputs]
            elif stage.output_tensor is not None:
                raise DefinitionError(f"stage {index}: featurizer {self.spec.model_ref} has one output; "
                                      "'output_tensor' lists the outputs of one with several")
            else:
                _check_output_dims(stage, index, self.spec.output_dims, self.spec.model_ref)
            self.label = f"stage {index} ({self.spec.model_ref} on {backend})"
            weights = root / stage.weights_path if stage.weights_path else None
            self.backend = self._load(lambda: create_backend(backend, build_featurizer(self.spec, weights),
                                                             backend_options))
            input_shape, output_shape = (1, *self.spec.input_shape), (1, *self.spec.output_dims)
        self.input_dtype, self.input_shape = tf.float32, tf.TensorShape(input_shape)
        self.output_dtype, self.output_shape = tf.float32, tf.TensorShape(output_shape)
        self.outputs = [(tf.float32, tf.TensorShape((1, *o.dims))) for o in self.spec.outputs] if self.output_names \
            else [(self.output_dtype, self.output_shape)]

    def _load(self, load):
        try:
            return load()
        except ModelLoadError:  # already names the stage
            raise
        except BrainwaveError as exc:
            raise ModelLoadError(f"{self.label}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a model or weights file is user data: any failure reading it is a bad model
            raise ModelLoadError(f"{self.label}: cannot load the featurizer: {type(exc).__name__}: "
                                 f"{clip(str(exc))}") from None

    def run(self, value):
        image = np.asarray(value, dtype=np.float32)
        if image.size != self.input_shape.num_elements():
            raise InvalidInputError(f"{self.label} expects an input of shape {self.input_shape.as_list()}, "
                                    f"got {list(image.shape)}")
        out = self.backend.run(image.reshape(self.input_shape.as_list()))
        if self.output_names:  # one array per output, in the spec's order
            return {name: np.asarray(part, dtype=np.float32).reshape(shape.as_list())
                    for name, part, (_, shape) in zip(self.output_names, out, self.outputs)}
        return np.asarray(out, dtype=np.float32).reshape(self.output_shape.as_list())

    def close(self) -> None:
        self.backend.close()
