"""DenseNet-121 featurizer (global-pool output, [1, 1, 1024]), Azure's `Densenet121` featurizer, 2.8 GMAC.

Every layer of a dense block reads the concatenation of all the block's earlier outputs (the NPU's CONCAT,
docs/isa.md) through a batch norm and a ReLU: with a ReLU between them the batch norm cannot fold into the
convolution after it, so it becomes a 1 x 1 depthwise convolution with the ReLU fused (`batchnorm-to-depthwise`,
docs/compiler.md); the batch norms after convolutions fold as usual. Input: RGB scaled to [0, 1], minus the
ImageNet means, divided by their standard deviations. Seeded weights (brainwave.models.seeded).
"""
from __future__ import annotations

from pathlib import Path

from brainwave.models.catalog import FeaturizerSpec
from brainwave.models.seeded import SEEDED_NOTE, load_or_seed

INPUT_SHAPE = (224, 224, 3)
OUTPUT_DIMS = (1, 1, 1024)


def build(weights: Path | None, seed: int):
    from brainwave.tf_runtime import keras

    backbone = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=INPUT_SHAPE,
                                              pooling="avg", name="densenet121")
    pooled = keras.layers.Reshape(OUTPUT_DIMS, name="features")(backbone.output)
    return load_or_seed(keras.Model(backbone.input, pooled, name="densenet121"), weights, seed)


SPEC = FeaturizerSpec(
    model_ref="densenet121",
    versions=("1.0",),
    description="DenseNet-121 to the global average pool (224x224 RGB, ImageNet mean/std input)",
    input_shape=INPUT_SHAPE,
    output_dims=OUTPUT_DIMS,
    builder=build,
    weights_note=SEEDED_NOTE,
)
