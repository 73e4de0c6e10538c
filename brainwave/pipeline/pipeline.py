"""A loaded pipeline: stages run in order on one item (batch size 1), with per-stage timings."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from brainwave.errors import BrainwaveError, CancelledError, InvalidInputError, ModelLoadError, brief, clip
from brainwave.pipeline.archive import DEFAULT_LIMITS, ArchiveLimits, extract_model_zip
from brainwave.pipeline.definition import BrainwaveStage, OnnxStage, ServiceDefinition
from brainwave.pipeline.images import DEFAULT_MAX_PIXELS, check_encoded_image, without_png_color_profile
from brainwave.pipeline.stages import FeaturizerRuntime, TensorflowRuntime
from brainwave.pipeline.warmup import read_warmup_inputs
from brainwave.protocol.tensors import dtype_label, numpy_dtype_name
from brainwave.tf_runtime import tf

log = logging.getLogger("brainwave.pipeline")

DEFAULT_MAX_ITEMS = 64  # batch-1 items one request may carry


@dataclass(frozen=True)
class RunResult:
    output: "np.ndarray | dict[str, np.ndarray]"  # by tensor name when the last stage has several outputs
    stage_seconds: tuple[float, ...]

    def first(self) -> np.ndarray:
        """The output, or the first of several (what a mirrored comparison's top-1 reads)."""
        return next(iter(self.output.values())) if isinstance(self.output, dict) else self.output


class Pipeline:
    """Load with `Pipeline.load(model_zip, backend=...)`; `run(item)` is thread-safe."""

    def __init__(self, definition: ServiceDefinition, root: Path, backend: str = "float",
                 backend_options: dict | None = None, max_image_pixels: int = DEFAULT_MAX_PIXELS,
                 allow_any_op: bool = False) -> None:
        self.definition = definition
        self.backend = backend
        self.max_image_pixels = max_image_pixels
        self.stages = []
        try:
            for index, stage in enumerate(definition.pipeline):
                self.stages.append(_load_stage(stage, root, index, backend, backend_options, allow_any_op))
        except BaseException:
            self.close()
            raise
        try:
            _check_links(self.stages)
        except BaseException:
            self.close()
            raise
        first, last = self.stages[0], self.stages[-1]
        self.input_dtype, self.input_shape = first.input_dtype, first.input_shape
        # What GetModelMetadata reports: declared by the graphs, batch axis left open.
        self.output_dtype = last.output_dtype
        self.output_shape = _open_batch(last.output_shape)
        # Several outputs (the last stage's, by tensor name): [(name, dtype, shape)]; [] for the usual one.
        self.outputs = [(name, dtype, _open_batch(shape)) for name, (dtype, shape)
                        in zip(_output_names(last), last.outputs)] if len(_output_names(last)) > 1 else []
        self.stage_labels = tuple(s.label for s in self.stages)
        self.warmup_inputs: list = []

    @property
    def takes_images(self) -> bool:
        """Brainwave convention: a string input to the first stage is an encoded image."""
        return self.input_dtype == tf.string

    @classmethod
    def load(cls, model_zip: str | Path, backend: str = "float", backend_options: dict | None = None,
             limits: ArchiveLimits = DEFAULT_LIMITS, max_image_pixels: int = DEFAULT_MAX_PIXELS,
             warm_up: bool = True, allow_any_op: bool = False) -> "Pipeline":
        """Extract, load every stage and warm up (see `warm_up`); nothing is left behind on failure."""
        with extract_model_zip(Path(model_zip), limits) as extracted:
            pipeline = cls(extracted.definition, extracted.root, backend, backend_options, max_image_pixels,
                           allow_any_op)
            try:
                pipeline.warmup_inputs = read_warmup_inputs(extracted.root, pipeline)
            except BaseException:
                pipeline.close()
                raise
        # Graphs are in memory now; the extracted files were removed by the context manager.
        if warm_up:
            try:
                pipeline.warm_up()
            except BaseException:
                pipeline.close()
                raise
        return pipeline

    # --- requests ----------------------------------------------------------------------------------
    def items(self, array: np.ndarray, alias: str = "images") -> list:
        """Cut a request tensor into batch-1 items: strings are one encoded image each; numeric arrays are split
        on the batch axis. Checks dtype, shape and count; builds nothing larger than the items themselves."""
        want = "DT_STRING" if self.takes_images else numpy_dtype_name(self.input_dtype.as_numpy_dtype)
        got = numpy_dtype_name(array.dtype)
        if got != want:
            raise InvalidInputError(f"Expects arg[0] ({clip(alias, 80)}) to be {dtype_label(want)} but {dtype_label(got)} is provided")
        if self.takes_images:
            if array.ndim > 1:
                raise InvalidInputError(f"input {brief(alias)} must be a scalar or a vector of encoded images, "
                                        f"got shape {list(array.shape)}")
            items = list(array.reshape(-1))
        else:
            expected = self.input_shape.as_list() if self.input_shape.rank is not None else None
            if expected is not None:
                if array.ndim == len(expected) - 1:
                    array = array[np.newaxis]
                if array.ndim != len(expected) or any(e is not None and e != g for e, g in zip(expected[1:], array.shape[1:])):
                    raise InvalidInputError(f"input {brief(alias)} has shape {list(array.shape)}; expected "
                                            f"{[-1 if e is None else e for e in expected]}")
            if array.ndim == 0:
                array = array[np.newaxis]
            items = [array[i:i + 1] for i in range(array.shape[0])]
        if not items:
            raise InvalidInputError(f"input {brief(alias)} holds no items")
        return items

    def decoded_pixels(self, item) -> int:
        """What decoding `item` costs, in pixels (0 for tensors); raises InvalidInputError for a bad image."""
        if not self.takes_images:
            return 0
        return check_encoded_image(_as_bytes(item), "the image", self.max_image_pixels).pixels

    def run(self, item, should_stop: Callable[[], bool] | None = None) -> RunResult:
        """Run one item (encoded image bytes, or an array with batch dimension 1) through every stage.
        `should_stop` is asked between stages; when it says so, CancelledError ends the run."""
        value = item
        if self.takes_images:
            value = _as_bytes(item)
            check_encoded_image(value, "the image", self.max_image_pixels)
            value = without_png_color_profile(value)
        return self._run_from(0, value, should_stop)

    def _run_from(self, start: int, value, should_stop: Callable[[], bool] | None = None) -> RunResult:
        seconds = []
        for stage in self.stages[start:]:
            if should_stop is not None and should_stop():
                raise CancelledError(f"cancelled before {stage.label}")
            begin = time.perf_counter()
            value = stage.run(value)
            seconds.append(time.perf_counter() - begin)
        if isinstance(value, dict):
            return RunResult({name: _batch_of_one(v) for name, v in value.items()}, tuple(seconds))
        return RunResult(_batch_of_one(value), tuple(seconds))

    # --- warm-up -----------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Run the model's own warm-up inputs, if it has any (they must all succeed, as in TF Serving).
        Otherwise run zeros through the stages whose input the declared shapes fully determine (the featurizer
        and what follows it); a failure there only warns, since it may depend on data: the first request decides.
        """
        if self.warmup_inputs:
            for index, item in enumerate(self.warmup_inputs):
                try:
                    self.run(item)
                except BrainwaveError as exc:
                    raise ModelLoadError(f"the model's warm-up input {index} failed: {exc}") from None
            return
        start = next((i for i, s in enumerate(self.stages) if _fully_defined_numeric(s)), None)
        if start is None:
            return
        stage = self.stages[start]
        zeros = np.zeros(stage.input_shape.as_list(), dtype=stage.input_dtype.as_numpy_dtype)
        try:
            self._run_from(start, zeros)
        except BrainwaveError as exc:
            log.warning("warm-up with zeros from %s failed (serving anyway; add warm-up inputs to model.zip to "
                        "check the whole pipeline at load): %s", stage.label, clip(str(exc)))

    def close(self) -> None:
        for stage in self.stages:
            if hasattr(stage, "close"):
                stage.close()
        self.stages = []


def _load_stage(stage, root: Path, index: int, backend: str, backend_options: dict | None, allow_any_op: bool):
    """One stage runtime; a failure that is not already the project's own error becomes a ModelLoadError naming
    the stage, so no malformed model can surface as an internal error."""
    try:
        if isinstance(stage, BrainwaveStage):
            return FeaturizerRuntime(stage, root, index, backend, backend_options)
        if isinstance(stage, OnnxStage):
            from brainwave.pipeline.onnx_stage import OnnxRuntime  # onnxruntime loads only for models that use it

            return OnnxRuntime(stage, root, index)
        return TensorflowRuntime(stage, root, index, allow_any_op)
    except BrainwaveError:
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary where a malformed model becomes a load error
        raise ModelLoadError(f"stage {index}: cannot be loaded: {type(exc).__name__}: {clip(str(exc))}") from None


def _fully_defined_numeric(stage) -> bool:
    return _input_count(stage) == 1 and stage.input_dtype != tf.string and stage.input_shape.is_fully_defined()


def _output_names(stage) -> list[str]:
    """The names of a stage's outputs when it has several (a TF stage names even its one output)."""
    return list(getattr(stage, "output_names", []))


def _input_count(stage) -> int:
    return len(getattr(stage, "input_names", [None]))


def _output_count(stage) -> int:
    return max(1, len(_output_names(stage)))


def _check_links(stages: list) -> None:
    """Each stage takes as many inputs as the one before it gives outputs; the first takes one."""
    if _input_count(stages[0]) != 1:
        raise ModelLoadError(f"{stages[0].label} takes {_input_count(stages[0])} inputs; the first stage takes the "
                             "request's one input")
    for before, after in zip(stages, stages[1:]):
        if _output_count(before) != _input_count(after):
            raise ModelLoadError(f"{after.label} takes {_input_count(after)} inputs but {before.label} gives "
                                 f"{_output_count(before)} outputs")


def _open_batch(shape: tf.TensorShape) -> tf.TensorShape:
    return shape if shape.rank is None else tf.TensorShape([None, *shape.as_list()[1:]])


def _batch_of_one(value) -> np.ndarray:
    output = np.asarray(value)
    return output if output.ndim and output.shape[0] == 1 else output.reshape((1, *output.shape))


def _as_bytes(item) -> bytes:
    return item if isinstance(item, bytes) else bytes(item)
