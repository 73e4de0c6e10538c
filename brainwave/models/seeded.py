"""Deterministic weights for catalog networks whose ImageNet weights no package registry ships.

Nothing is downloaded: He-normal convolutions and dense layers, and batch-norm statistics drawn so that
activations keep a stable scale through the network. That is a realistic numerical workload (for
quantization and bit-exactness) without claiming any accuracy; `brainwave models` marks these entries with
`SEEDED_NOTE`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

SEEDED_NOTE = "seeded (no ImageNet weights on the package registries)"


def load_or_seed(model, weights: Path | None, seed: int, damped: Callable[[str], bool] = lambda name: False):
    """`model` with the weights file's weights if one is given (brainwave.models.weights), else seeded."""
    from brainwave.models.weights import load_weights_file

    if weights is not None:
        load_weights_file(model, weights)
    else:
        seed_weights(model, seed, damped)
    return model


def seed_weights(model, seed: int, damped: Callable[[str], bool] = lambda name: False) -> None:
    """Draw every Conv2D / Dense / BatchNormalization weight of `model` from one generator, layer by layer.

    `damped(name)`: batch norms whose gamma is scaled by 0.3 (a residual branch's last one, so the identity
    path dominates). The draw order is part of the network's identity: ResNet-50's pinned program digests
    (tests/npu/test_compiler_identity.py) depend on it.
    """
    from brainwave.tf_runtime import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel, *bias = layer.get_weights()
            fan_in = int(np.prod(kernel.shape[:-1]))
            drawn = [rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape)]
            drawn += [rng.normal(0.0, 0.01, b.shape) for b in bias]
            layer.set_weights([w.astype(np.float32) for w in drawn])
        elif isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.get_weights()[0].shape
            gamma = rng.uniform(0.7, 1.1, channels) * (0.3 if damped(layer.name) else 1.0)
            beta = rng.normal(0.0, 0.05, channels)
            mean = rng.normal(0.0, 0.05, channels)
            var = rng.uniform(0.8, 1.2, channels)
            layer.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, var)])
