"""PredictionService: Predict and GetModelMetadata; Classify / Regress / MultiInference are UNIMPLEMENTED.

Signature of every pipeline (what GetModelMetadata reports and Predict checks):
    serving_default: inputs {"images": <stage-0 input>}  ->  outputs {"output_alias": <last stage output>}
The input may also be named by the first stage's tensor name (e.g. "in_images:0"), and an output_filter may
name the last stage's output tensor, as Brainwave's clients did. A last stage with several outputs (a
detector's) gives one signature output per tensor, keyed by its name ("ssd_300_vgg/block4_box/Reshape:0", as
Azure's SSD-VGG service did); output_filter picks among them (with or without ":0"), and without it Predict
returns them all.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence, TypeVar

import grpc
import numpy as np

from brainwave.errors import CancelledError, InvalidInputError, brief, clip
from brainwave.featurizer.backend import BackendError
from brainwave.pipeline.definition import TensorflowStage, names_of
from brainwave.protocol.api import SIGNATURE_DEF_MAP_URL, api
from brainwave.protocol.tensors import numpy_dtype_name, numpy_to_tensor, tensor_to_numpy
from brainwave.serving.limits import PixelBudget, RequestLimits
from brainwave.serving.metrics import ServingMetrics, note_servable
from brainwave.serving.servables import Servable, ServableManager
from brainwave.serving.status import RequestError

log = logging.getLogger("brainwave.serving")

SIGNATURE_NAME = "serving_default"
INPUT_ALIAS = "images"
OUTPUT_ALIAS = "output_alias"
PREDICT_METHOD = "tensorflow/serving/predict"


class CallControl(Protocol):
    """What the prediction core asks of a call, whatever its protocol (a gRPC ServicerContext is one)."""

    def is_active(self) -> bool: ...

    def time_remaining(self) -> float | None: ...


@dataclass(frozen=True)
class InputSpec:
    """What the served model's input takes: its numpy dtype (None: encoded images, as strings) and the most
    elements one request may carry to it."""

    dtype: np.dtype | None
    max_elements: int


@dataclass(frozen=True)
class Prediction:
    servable: Servable
    outputs: dict[str, np.ndarray]  # output key -> the stacked outputs of every item


Wire = TypeVar("Wire")
# (input as sent, its alias, what the model takes) -> array; a TensorProto decoder for gRPC, a JSON one for REST
InputDecoder = Callable[[Wire, str, InputSpec], np.ndarray]


def decode_tensor(tensor, alias: str, spec: InputSpec) -> np.ndarray:
    return tensor_to_numpy(tensor, alias, spec.max_elements)


class PredictionHandlers:
    def __init__(self, manager: ServableManager, metrics: ServingMetrics, limits: RequestLimits | None = None,
                 pixel_budget: PixelBudget | None = None) -> None:
        self.manager = manager
        self.metrics = metrics
        self.limits = limits or RequestLimits()
        self.pixel_budget = pixel_budget or PixelBudget(2 * self.limits.max_request_pixels)
        # Mirrored canary comparisons run off the request path, one at a time; when busy they are skipped.
        self._mirror_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mirror")
        self._mirror_backlog = 0

    # --- shared -----------------------------------------------------------------------------
    def target(self, model_spec) -> tuple[str, int | None, str | None]:
        name = model_spec.name or self.manager.default_model_name()
        if not name:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"model_spec.name is required when several models are served: {', '.join(self.manager.model_names())}")
        kind = model_spec.WhichOneof("version_choice")
        if kind == "version":
            return name, model_spec.version.value, None
        if kind == "version_label":
            return name, None, model_spec.version_label
        return name, None, None

    def resolve(self, model_spec) -> Servable:
        return self.manager.resolve(*self.target(model_spec))

    @staticmethod
    def check_signature_name(signature_name: str) -> None:
        if signature_name not in ("", SIGNATURE_NAME):
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature key "{clip(signature_name, 80)}" not found.')

    @staticmethod
    def fill_model_spec(target, servable: Servable) -> None:
        target.name = servable.name
        target.version.value = servable.version
        target.signature_name = SIGNATURE_NAME

    # --- Predict -------------------------------------------------------------------------------
    def predict(self, request, context):
        name, version, label = self.target(request.model_spec)
        result = self.run_predict(name, version, label, request.model_spec.signature_name, request.inputs,
                                  decode_tensor, request.output_filter, context)
        response = api().PredictResponse()
        self.fill_model_spec(response.model_spec, result.servable)
        for key, array in result.outputs.items():
            response.outputs[key].CopyFrom(numpy_to_tensor(array))
        return response

    def run_predict(self, name: str, version: int | None, label: str | None, signature_name: str,
                    inputs: Mapping[str, Wire], decode: InputDecoder, output_filter: Sequence[str],
                    control: CallControl) -> Prediction:
        """The protocol-neutral Predict: routing, lease, limits, cancellation, stats and canary mirroring. gRPC
        and REST differ only in how they decode `inputs` and encode the result."""
        self.check_signature_name(signature_name)
        with self.manager.lease(name, version, label) as lease:
            servable = lease.servable
            note_servable(servable)
            start, ok = time.perf_counter(), False
            try:
                items, outputs, keys = self._run(inputs, decode, output_filter, servable, control)
                ok = True
            finally:
                servable.stats.record(time.perf_counter() - start, ok)
        if lease.routed:
            self._maybe_mirror(name, servable, items, outputs)
        if isinstance(outputs[0], dict):  # several outputs: `keys` maps each requested key to its tensor
            return Prediction(servable, {key: np.concatenate([o[tensor] for o in outputs], axis=0)
                                         for key, tensor in keys.items()})
        stacked = np.concatenate(outputs, axis=0)
        return Prediction(servable, {key: stacked for key in keys})

    def input_spec(self, pipeline) -> InputSpec:
        dtype = None if pipeline.takes_images else np.dtype(pipeline.input_dtype.as_numpy_dtype)
        return InputSpec(dtype, self.limits.elements_for(pipeline))

    def _run(self, inputs: Mapping[str, Wire], decode: InputDecoder, output_filter: Sequence[str],
             servable: Servable, control: CallControl):
        """Check everything the request declares before any work, reserve its decoded pixels, then run its items
        one by one, stopping as soon as the client has gone away."""
        pipeline = servable.pipeline
        alias = self._single_input(inputs, pipeline)
        keys = self._output_keys(output_filter, pipeline)
        array = decode(inputs[alias], alias, self.input_spec(pipeline))
        items = pipeline.items(array, alias)
        if len(items) > self.limits.max_items:
            raise InvalidInputError(f"input {brief(alias)} holds {len(items)} items; the limit per request is "
                                    f"{self.limits.max_items}")
        pixels = sum(pipeline.decoded_pixels(item) for item in items)
        if pixels > self.limits.max_request_pixels:
            raise InvalidInputError(f"the request's images decode to {pixels} pixels, more than the limit of "
                                    f"{self.limits.max_request_pixels} per request")

        def gone() -> bool:
            return not control.is_active()

        outputs = []
        with self.pixel_budget.reserve(pixels, control.time_remaining()):
            for item in items:
                if gone():
                    raise CancelledError("the client cancelled the request")
                try:
                    result = pipeline.run(item, should_stop=gone)
                except BackendError as exc:
                    self.metrics.observe_device_error(pipeline, exc)
                    raise
                self.metrics.observe_stages(servable, result.stage_seconds)
                if log.isEnabledFor(logging.DEBUG):
                    timings = ", ".join(f"{label}: {s * 1000:.2f} ms" for label, s in zip(pipeline.stage_labels, result.stage_seconds))
                    log.debug("%s v%d: %s", servable.name, servable.version, timings)
                outputs.append(result.output)
        return items, outputs, keys

    def _maybe_mirror(self, name: str, served: Servable, items: list, outputs: list) -> None:
        peer = self.manager.mirror_peer(name, served)
        if peer is None:
            return
        if self._mirror_backlog >= 4:  # never let comparisons queue up behind live traffic
            self.manager.release(peer)
            return
        self._mirror_backlog += 1
        self._mirror_pool.submit(self._mirror, name, served, peer, items, outputs)

    def _mirror(self, name: str, served: Servable, peer: Servable, items: list, outputs: list) -> None:
        try:
            canary = self.manager.canary(name)
            canary_side = served if canary and served.version == canary.version else peer
            for item, output in zip(items, outputs):
                other = peer.pipeline.run(item).first()
                mine = next(iter(output.values())) if isinstance(output, dict) else output
                canary_side.stats.record_mirror(int(np.argmax(mine)) == int(np.argmax(other)))
        except Exception as exc:  # noqa: BLE001 - a failed comparison must never affect serving
            log.warning("mirrored comparison on %s v%d failed: %s: %s", name, peer.version, type(exc).__name__,
                        clip(str(exc)))
        finally:
            self._mirror_backlog -= 1
            self.manager.release(peer)

    @staticmethod
    def _input_names(pipeline) -> set[str]:
        names = {INPUT_ALIAS}
        first = pipeline.definition.pipeline[0]
        if isinstance(first, TensorflowStage):
            tensor = names_of(first.input_tensor)[0]
            names |= {tensor, tensor.split(":")[0]}
        return names

    def _single_input(self, inputs: Mapping, pipeline) -> str:
        accepted = self._input_names(pipeline)
        sent = set(inputs)
        if len(sent) != 1:
            extra = sorted(sent - accepted)
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                clip(f"input size does not match signature: {len(sent)}!=1 len({{{','.join(sorted(sent))}}}) != len({{{INPUT_ALIAS}}}). "
                     f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{'' if sent & accepted else INPUT_ALIAS}}}."))
        (alias,) = sent
        if alias not in accepted:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input tensor alias not found in signature: {clip(alias, 80)}. Inputs expected to be in the set {{{INPUT_ALIAS}}}.")
        return alias

    @staticmethod
    def _output_keys(output_filter: Sequence[str], pipeline) -> "list[str] | dict[str, str]":
        """The response's keys: for one output a list (each names the same tensor), for several a dict from
        each key to the tensor name it selects."""
        if pipeline.outputs:
            return _named_output_keys(output_filter, [name for name, _, _ in pipeline.outputs])
        last = pipeline.definition.pipeline[-1]
        tensor_name = names_of(last.output_tensor)[0] if isinstance(last, TensorflowStage) else None
        wanted = list(output_filter) or [OUTPUT_ALIAS]
        allowed = {OUTPUT_ALIAS} | ({tensor_name, tensor_name.split(":")[0]} if tensor_name else set())
        for key in wanted:
            if key not in allowed:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"output tensor alias not found in signature: {clip(key, 80)} Outputs expected to be in the set {{{OUTPUT_ALIAS}}}.")
        if len(set(wanted)) != len(wanted):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names an output more than once: "
                                                                 f"{brief(wanted)}")
        return wanted

    # --- GetModelMetadata -------------------------------------------------------------------------
    def get_model_metadata(self, request, context):
        servable = self.resolve(request.model_spec)
        note_servable(servable)
        fields = list(request.metadata_field)
        if not fields:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field")
        unsupported = [f for f in fields if f != "signature_def"]
        if unsupported:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {clip(unsupported[0], 80)} is not supported")
        signature_map = api().SignatureDefMap()
        signature_map.signature_def[SIGNATURE_NAME].CopyFrom(signature_def(servable.pipeline))
        response = api().GetModelMetadataResponse()
        self.fill_model_spec(response.model_spec, servable)
        any_message = response.metadata["signature_def"]
        any_message.type_url = SIGNATURE_DEF_MAP_URL
        any_message.value = signature_map.SerializeToString()
        return response

    @staticmethod
    def unimplemented(name: str):
        def handler(request, context):
            raise RequestError(grpc.StatusCode.UNIMPLEMENTED,
                               f"{name} is not implemented: brainwave pipelines are served through Predict")
        return handler


def _named_output_keys(output_filter: Sequence[str], names: list[str]) -> dict[str, str]:
    by_key = {**{name.split(":")[0]: name for name in names}, **{name: name for name in names}}
    wanted = list(output_filter) or names
    for key in wanted:
        if key not in by_key:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"output tensor alias not found in signature: {clip(key, 80)} Outputs expected to be in "
                               f"the set {{{clip(','.join(names), 400)}}}.")
    if len({by_key[key] for key in wanted}) != len(wanted):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names an output more than once: "
                                                             f"{brief(wanted)}")
    return {key: by_key[key] for key in wanted}


def signature_def(pipeline):
    signature = api().SignatureDef()
    signature.method_name = PREDICT_METHOD
    first, last = pipeline.definition.pipeline[0], pipeline.definition.pipeline[-1]
    inp = signature.inputs[INPUT_ALIAS]
    inp.name = names_of(first.input_tensor)[0] if isinstance(first, TensorflowStage) else INPUT_ALIAS
    inp.dtype = api().DataType["DT_STRING" if pipeline.takes_images else numpy_dtype_name(pipeline.input_dtype.as_numpy_dtype)]
    _fill_shape(inp.tensor_shape, [-1] if pipeline.takes_images else pipeline.input_shape.as_list())
    if pipeline.outputs:
        for name, dtype, shape in pipeline.outputs:
            _fill_tensor_info(signature.outputs[name], name, dtype, shape)
        return signature
    _fill_tensor_info(signature.outputs[OUTPUT_ALIAS],
                      names_of(last.output_tensor)[0] if isinstance(last, TensorflowStage) else OUTPUT_ALIAS,
                      pipeline.output_dtype, pipeline.output_shape)
    return signature


def _fill_tensor_info(info, name: str, dtype, shape) -> None:
    info.name = name
    info.dtype = api().DataType[numpy_dtype_name(dtype.as_numpy_dtype)]
    if shape.rank is None:
        info.tensor_shape.unknown_rank = True
    else:
        _fill_shape(info.tensor_shape, shape.as_list())


def _fill_shape(shape_proto, dims) -> None:
    for size in dims:
        shape_proto.dim.add().size = -1 if size is None else size
