"""Loading featurizer weights from a file a user supplies."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainwave.errors import BrainwaveError


class WeightsFileError(BrainwaveError, ValueError):
    pass


def load_weights_file(model, path: Path) -> None:
    """Load Keras weights (`*.weights.h5`) or an `.npz` of arrays keyed `layer/index`."""
    if not path.is_file():
        raise WeightsFileError(f"weights file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            for layer in model.layers:
                current = layer.get_weights()
                if not current:
                    continue
                keys = [f"{layer.name}/{i}" for i in range(len(current))]
                missing = [k for k in keys if k not in arrays]
                if missing:
                    raise WeightsFileError(f"{path}: no array for {missing[0]}")
                layer.set_weights([arrays[k].astype(np.float32) for k in keys])
        return
    if path.name.endswith(".weights.h5"):
        model.load_weights(str(path))
        return
    raise WeightsFileError(f"{path}: weights must be a Keras '.weights.h5' or an '.npz' file")


def save_weights_npz(model, path: Path) -> None:
    """Write `model`'s weights in the `.npz` layout `load_weights_file` reads."""
    arrays = {
        f"{layer.name}/{i}": w for layer in model.layers for i, w in enumerate(layer.get_weights())
    }
    np.savez(path, **arrays)
