"""VGG-16 featurizer (output fc7, [1, 1, 4096]), Azure's `Vgg16` featurizer: 13 convolutions and the first two
dense layers of Keras' VGG16, 15.5 GMAC. fc6 reads the flattened 7 x 7 x 512 pool5, so the compiler turns it
into one 7 x 7 convolution over it (`dense-to-conv`, docs/compiler.md); its 4096 outputs are the NPU's
channel limit. Seeded weights (brainwave.models.seeded): no batch norms, He-normal layers keep the scale."""
from __future__ import annotations

from pathlib import Path

from brainwave.models.catalog import FeaturizerSpec
from brainwave.models.seeded import SEEDED_NOTE, load_or_seed

INPUT_SHAPE = (224, 224, 3)  # BGR minus the VGG means, as for ResNet
OUTPUT_DIMS = (1, 1, 4096)


def build(weights: Path | None, seed: int):
    from brainwave.tf_runtime import keras

    vgg = keras.applications.VGG16(include_top=True, weights=None, input_shape=INPUT_SHAPE)
    fc7 = keras.layers.Reshape(OUTPUT_DIMS, name="fc7")(vgg.get_layer("fc2").output)
    return load_or_seed(keras.Model(vgg.input, fc7, name="vgg_16"), weights, seed)  # without `predictions`


SPEC = FeaturizerSpec(
    model_ref="vgg16",
    versions=("1.0",),
    description="VGG-16 to fc7 (224x224 BGR mean-subtracted input)",
    input_shape=INPUT_SHAPE,
    output_dims=OUTPUT_DIMS,
    builder=build,
    weights_note=SEEDED_NOTE,
)
