"""Warm-up inputs a model.zip carries, so a model is exercised at load with real data instead of guesses.

Two forms, both optional:
* TF Serving's `assets.extra/tf_serving_warmup_requests`: a TFRecord file of PredictionLog protos, each a
  PredictRequest (its one input tensor may hold several items). Up to MAX_RECORDS records are read.
* A folder `warmup/` of sample inputs, one per file in name order: an encoded image (any extension but
  .npy) for pipelines that take images, or a `.npy` array (batch axis included) for pipelines that take
  tensors. `ServiceDefinition.add_warmup_input` writes these.
Every sample must pass the pipeline's own input checks; a malformed file is an ArchiveError.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainwave.errors import ArchiveError, BrainwaveError, brief

TF_SERVING_WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
WARMUP_DIR = "warmup"
MAX_RECORDS = 1000  # TF Serving's own cap on warm-up records
MAX_ITEMS = 1000


def read_warmup_inputs(root: Path, pipeline) -> list:
    """Items (encoded images or batch-1 arrays) from the model's warm-up files; [] when it has none."""
    items: list = []
    try:
        records = root / TF_SERVING_WARMUP_FILE
        if records.is_file():
            items += _tf_serving_items(records, pipeline)
        folder = root / WARMUP_DIR
        if folder.is_dir():
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                items += _file_items(path, pipeline)
    except BrainwaveError as exc:
        raise ArchiveError(f"warm-up data in model.zip is unusable: {exc}") from None
    if len(items) > MAX_ITEMS:
        raise ArchiveError(f"model.zip carries {len(items)} warm-up items, more than the limit of {MAX_ITEMS}")
    return items


def _tf_serving_items(path: Path, pipeline) -> list:
    from brainwave.protocol.api import api
    from brainwave.protocol.tensors import tensor_to_numpy
    from brainwave.tf_runtime import tf

    items: list = []
    try:
        for index, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
            if index >= MAX_RECORDS:
                break
            log = api().PredictionLog.FromString(record)
            if log.WhichOneof("log_type") != "predict_log":
                raise ArchiveError(f"{TF_SERVING_WARMUP_FILE} record {index} is not a predict_log "
                                   "(only Predict warm-up is supported)")
            inputs = log.predict_log.request.inputs
            if len(inputs) != 1:
                raise ArchiveError(f"{TF_SERVING_WARMUP_FILE} record {index} has {len(inputs)} inputs; the "
                                   "pipeline takes one")
            ((alias, tensor),) = inputs.items()
            items += pipeline.items(tensor_to_numpy(tensor, alias, max_elements=1 << 24), alias)
    except (tf.errors.OpError, ValueError) as exc:  # DataLossError (bad CRC, truncated), DecodeError
        raise ArchiveError(f"{TF_SERVING_WARMUP_FILE} is not a TFRecord file of PredictionLog: "
                           f"{type(exc).__name__}: {brief(str(exc), 200)}") from None
    return items


def _file_items(path: Path, pipeline) -> list:
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ArchiveError(f"{WARMUP_DIR}/{path.name} is not a numpy .npy array: {exc}") from None
        return pipeline.items(array, f"{WARMUP_DIR}/{path.name}")
    if not pipeline.takes_images:
        raise ArchiveError(f"{WARMUP_DIR}/{path.name}: this pipeline takes tensors; give warm-up inputs as .npy")
    return [path.read_bytes()]
