"""ResNet-152 v1 featurizer (output pool5, [1, 1, 2048]), Azure's `Resnet152` featurizer: ResNet-50's
bottleneck blocks 3-8-36-3 instead of 3-4-6-3, 11.3 GMAC. Seeded weights (brainwave.models.seeded)."""
from __future__ import annotations

from brainwave.models.catalog import FeaturizerSpec
from brainwave.models.resnet import INPUT_SHAPE, OUTPUT_DIMS, resnet_builder
from brainwave.models.seeded import SEEDED_NOTE

SPEC = FeaturizerSpec(
    model_ref="resnet152",
    versions=("1.0",),
    description="ResNet-152 v1 to pool5 (224x224 BGR mean-subtracted input)",
    input_shape=INPUT_SHAPE,
    output_dims=OUTPUT_DIMS,
    builder=resnet_builder("ResNet152", "resnet152", "resnet_v1_152"),
    weights_note=SEEDED_NOTE,
)
