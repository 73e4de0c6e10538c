"""ResNet-50 v1 featurizer (output pool5, [1, 1, 2048]), as served by Project Brainwave's `resnet50`.

With no weights file, weights come from a seeded generator (brainwave.models.seeded): He-normal convolutions
and batch-norm statistics drawn so that activations keep a stable scale through all 16 residual blocks.
"""
from __future__ import annotations

from brainwave.models.catalog import FeaturizerSpec
from brainwave.models.resnet import INPUT_SHAPE, OUTPUT_DIMS, resnet_builder
from brainwave.models.seeded import SEEDED_NOTE

build = resnet_builder("ResNet50", "resnet50", "resnet_v1_50")

SPEC = FeaturizerSpec(
    model_ref="resnet50",
    versions=("1.1.6-rc", "1.1.6", "1.0"),
    description="ResNet-50 v1 to pool5 (224x224 BGR mean-subtracted input)",
    input_shape=INPUT_SHAPE,
    output_dims=OUTPUT_DIMS,
    builder=build,
    weights_note=SEEDED_NOTE,
)
