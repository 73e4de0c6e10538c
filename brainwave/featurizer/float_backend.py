"""The `float` backend: the catalog network in float32 TensorFlow, the accuracy reference."""
from __future__ import annotations

import numpy as np
from brainwave.tf_runtime import tf


class FloatBackend:
    name = "float"

    def __init__(self, model) -> None:
        self._model = model
        input_shape = tuple(model.inputs[0].shape[1:])
        # One traced graph for batch 1: avoids Keras' per-call Python overhead and retracing.
        self._forward = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec((1, *input_shape), tf.float32)],
            reduce_retracing=True,
        )

    def run(self, image: np.ndarray) -> "np.ndarray | list[np.ndarray]":
        """The output, or a list of them for a model with several (a detector's heads), in the model's order."""
        out = self._forward(tf.convert_to_tensor(image, tf.float32))
        return [t.numpy() for t in out] if isinstance(out, (list, tuple)) else out.numpy()

    def close(self) -> None:
        self._forward = None


def create(model, options: dict) -> FloatBackend:
    return FloatBackend(model)
