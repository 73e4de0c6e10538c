"""ResNet v1 featurizers (to pool5, [1, 1, 2048]) built from Keras' applications, with seeded weights or a
weights file: the shared builder of the `resnet50` and `resnet152` catalog entries."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from brainwave.models.seeded import load_or_seed

INPUT_SHAPE = (224, 224, 3)  # BGR minus the VGG means (the Brainwave ResNet-50 input stage)
OUTPUT_DIMS = (1, 1, 2048)


def resnet_builder(application: str, backbone_name: str, model_name: str) -> Callable:
    """builder(weights, seed) for `keras.applications.<application>` as a featurizer named `model_name`."""

    def build(weights: Path | None, seed: int):
        from brainwave.tf_runtime import keras

        backbone = getattr(keras.applications, application)(
            include_top=False, weights=None, input_shape=INPUT_SHAPE, pooling="avg", name=backbone_name
        )
        pooled = keras.layers.Reshape(OUTPUT_DIMS, name="pool5")(backbone.output)
        # The last BN of each residual branch ("..._3_bn") is damped so the identity path dominates.
        return load_or_seed(keras.Model(backbone.input, pooled, name=model_name), weights, seed,
                            damped=lambda name: name.endswith("_3_bn"))

    return build
