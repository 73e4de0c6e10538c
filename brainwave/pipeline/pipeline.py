"""A loaded pipeline: stages run in order on one item (batch size 1), with per-stage timings."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from brainwave.errors import BrainwaveError, ModelLoadError
from brainwave.pipeline.archive import DEFAULT_LIMITS, ArchiveLimits, extract_model_zip
from brainwave.pipeline.definition import BrainwaveStage, ServiceDefinition
from brainwave.pipeline.images import DEFAULT_MAX_PIXELS, check_encoded_image, synthetic_png
from brainwave.pipeline.stages import FeaturizerRuntime, TensorflowRuntime


@dataclass(frozen=True)
class RunResult:
    output: np.ndarray
    stage_seconds: tuple[float, ...]


class Pipeline:
    """Load with `Pipeline.load(model_zip, backend=...)`; `run(item)` is thread-safe."""

    def __init__(self, definition: ServiceDefinition, root: Path, backend: str = "float",
                 backend_options: dict | None = None, max_image_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.definition = definition
        self.backend = backend
        self.max_image_pixels = max_image_pixels
        self.stages = []
        try:
            for index, stage in enumerate(definition.pipeline):
                if isinstance(stage, BrainwaveStage):
                    self.stages.append(FeaturizerRuntime(stage, root, index, backend, backend_options))
                else:
                    self.stages.append(TensorflowRuntime(stage, root, index))
        except BaseException:
            self.close()
            raise
        first = self.stages[0]
        if isinstance(first, TensorflowRuntime):
            self.input_dtype = first.input_dtype
            self.input_shape = first.input_shape
        else:
            self.input_dtype, self.input_shape = tf.float32, tf.TensorShape(first.input_shape)
        self.stage_labels = tuple(s.label for s in self.stages)
        self.output_dtype = tf.float32
        self.output_shape = tf.TensorShape(None)

    @property
    def takes_images(self) -> bool:
        """Brainwave convention: a string input to the first stage is an encoded image."""
        return self.input_dtype == tf.string

    @classmethod
    def load(cls, model_zip: str | Path, backend: str = "float", backend_options: dict | None = None,
             limits: ArchiveLimits = DEFAULT_LIMITS, max_image_pixels: int = DEFAULT_MAX_PIXELS,
             warm_up: bool = True) -> "Pipeline":
        """Extract, load every stage and run one warm-up item; nothing is left behind on failure."""
        with extract_model_zip(Path(model_zip), limits) as extracted:
            pipeline = cls(extracted.definition, extracted.root, backend, backend_options, max_image_pixels)
        # Graphs are in memory now; the extracted files were removed by the context manager.
        if warm_up:
            try:
                result = pipeline.run(pipeline.warm_up_item())
            except BrainwaveError as exc:
                pipeline.close()
                raise ModelLoadError(f"the pipeline failed its warm-up run: {exc}") from None
            pipeline.output_shape = tf.TensorShape([None, *result.output.shape[1:]])
            pipeline.output_dtype = tf.as_dtype(result.output.dtype)
        return pipeline

    def warm_up_item(self):
        if self.takes_images:
            return synthetic_png()
        shape = [1 if d is None else d for d in (self.input_shape.as_list() if self.input_shape.rank is not None else [1])]
        return np.zeros(shape, dtype=self.input_dtype.as_numpy_dtype)

    def run(self, item) -> RunResult:
        """Run one item (encoded image bytes, or an array with batch dimension 1) through every stage."""
        if self.takes_images:
            check_encoded_image(item, "the image", self.max_image_pixels)
        value = item
        seconds = []
        for stage in self.stages:
            start = time.perf_counter()
            value = stage.run(value)
            seconds.append(time.perf_counter() - start)
        output = np.asarray(value)
        if output.ndim == 0 or output.shape[0] != 1:
            output = output.reshape((1, *output.shape))
        return RunResult(output, tuple(seconds))

    def close(self) -> None:
        for stage in self.stages:
            if hasattr(stage, "close"):
                stage.close()
        self.stages = []
