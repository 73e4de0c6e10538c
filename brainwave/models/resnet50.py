"""ResNet-50 v1 featurizer (output pool5, [1, 1, 2048]), as served by Project Brainwave's `resnet50`.

With no weights file, weights come from a seeded generator: He-normal convolutions and batch-norm
statistics drawn so that activations keep a stable scale through all 16 residual blocks. That gives a
realistic numerical workload (for quantization and bit-exactness tests) without downloading anything.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainwave.models.catalog import FeaturizerSpec
from brainwave.models.weights import load_weights_file

INPUT_SHAPE = (224, 224, 3)
OUTPUT_DIMS = (1, 1, 2048)


def build(weights: Path | None, seed: int):
    from brainwave.tf_runtime import keras

    backbone = keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=INPUT_SHAPE, pooling="avg", name="resnet50"
    )
    pooled = keras.layers.Reshape(OUTPUT_DIMS, name="pool5")(backbone.output)
    model = keras.Model(backbone.input, pooled, name="resnet_v1_50")
    if weights is not None:
        load_weights_file(model, weights)
    else:
        _seed_weights(model, seed)
    return model


def _seed_weights(model, seed: int) -> None:
    from brainwave.tf_runtime import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            fan_in = int(np.prod(kernel.shape[:3]))
            kernel = rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape)
            bias = rng.normal(0.0, 0.01, bias.shape)
            layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        elif isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.get_weights()[0].shape
            # The last BN of each residual branch ("..._3_bn") is damped so the identity path dominates.
            gamma_scale = 0.3 if layer.name.endswith("_3_bn") else 1.0
            gamma = rng.uniform(0.7, 1.1, channels) * gamma_scale
            beta = rng.normal(0.0, 0.05, channels)
            mean = rng.normal(0.0, 0.05, channels)
            var = rng.uniform(0.8, 1.2, channels)
            layer.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, var)])


SPEC = FeaturizerSpec(
    model_ref="resnet50",
    versions=("1.1.6-rc", "1.1.6", "1.0"),
    description="ResNet-50 v1 to pool5 (224x224 BGR mean-subtracted input)",
    input_shape=INPUT_SHAPE,
    output_dims=OUTPUT_DIMS,
    builder=build,
)
