"""Reading a user's ONNX file safely, and onnxruntime sessions sized like TensorFlow's pools.

An ONNX file from model.zip is hostile until checked: it is parsed from bytes (never from a path, so nothing is
resolved beside it), refused if any tensor keeps its data in an external file (onnx and onnxruntime would open
paths the model names), checked by onnx.checker, and refused if any declared or inferred tensor is absurdly
large (an allocation a constant-folding session would make at load). Every failure is a ModelLoadError naming
the stage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from brainwave.errors import ModelLoadError, clip

MAX_TENSOR_ELEMENTS = 1 << 28  # 1 GiB of float32 in one tensor: past any CNN a stage would serve
_QUIET = 3  # onnxruntime severity: errors only


def load_onnx_model(path: Path, label: str):
    """The checked ModelProto in `path`."""
    import onnx

    try:
        model = onnx.load_model_from_string(Path(path).read_bytes())
    except Exception as exc:  # noqa: BLE001 - DecodeError and friends: not an ONNX file
        raise ModelLoadError(f"{label}: not an ONNX model: {clip(str(exc) or type(exc).__name__)}") from None
    external = next((t.name for t in _tensors(model.graph) if _is_external(t)), None)
    if external is not None:
        raise ModelLoadError(f"{label}: tensor {external!r} keeps its data in an external file; model.zip stages "
                             "must embed their weights (onnx.save(model, path, save_as_external_data=False))")
    try:
        onnx.checker.check_model(model)
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - ValidationError, InferenceError
        raise ModelLoadError(f"{label}: not a valid ONNX model: {clip(str(exc))}") from None
    for name, dims in _declared_shapes(inferred.graph):
        if any(d < 0 for d in dims) or int(np.prod(dims, dtype=object)) > MAX_TENSOR_ELEMENTS:
            raise ModelLoadError(f"{label}: tensor {name!r} has shape {clip(str(dims), 80)}, more than "
                                 f"{MAX_TENSOR_ELEMENTS} elements")
    return model


def _tensors(graph) -> Iterator:
    """Every TensorProto in a graph: initializers, sparse ones, node attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            yield from ([attr.t] if attr.HasField("t") else [])
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _tensors(sub)


def _is_external(tensor) -> bool:
    from onnx import TensorProto

    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _declared_shapes(graph) -> Iterator[tuple[str, list[int]]]:
    for info in [*graph.input, *graph.output, *graph.value_info]:
        dims = info.type.tensor_type.shape.dim
        yield info.name, [d.dim_value for d in dims if d.HasField("dim_value")]
    for tensor in graph.initializer:
        yield tensor.name, list(tensor.dims)


def onnx_session(model, label: str):
    """An onnxruntime CPU session for `model`, with as many threads as TensorFlow's pools (`brainwave serve`
    sizes them with --tf-threads; 0 lets both use every core) and only errors logged."""
    import onnxruntime as ort

    from brainwave.tf_runtime import tf

    ort.set_default_logger_severity(_QUIET)
    options = ort.SessionOptions()
    options.log_severity_level = _QUIET
    options.intra_op_num_threads = tf.config.threading.get_intra_op_parallelism_threads()
    options.inter_op_num_threads = tf.config.threading.get_inter_op_parallelism_threads()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's Fail, InvalidGraph, NotImplemented...
        raise ModelLoadError(f"{label}: onnxruntime cannot load the model: {clip(str(exc))}") from None
