"""Through the real PYNQ library and the simulated board, the fpga backend's output bytes equal the numpy
emulator's for the catalog featurizers on a real photo (scikit-image's chelsea.png).

"""
from __future__ import annotations

import numpy as np
import pytest

VGG_MEANS_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def chelsea_rgb_224() -> np.ndarray:
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.chelsea()).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _inputs(model_ref: str) -> np.ndarray:
    rgb = chelsea_rgb_224().astype(np.float32)
    if model_ref == "resnet50":
        return (rgb[..., ::-1] - VGG_MEANS_BGR).astype(np.float32)[None]
    return ((rgb - np.float32(127.0)) / np.float32(128.0)).astype(np.float32)[None]


@pytest.mark.parametrize("model_ref", ["resnet50", "efficientnet-lite0"])
def test_fpga_backend_equals_emulator_bytes(model_ref):
    from brainwave.featurizer.backend import create_backend
    from brainwave.models.catalog import build_featurizer, resolve_featurizer

    model = build_featurizer(resolve_featurizer(model_ref))
    x = _inputs(model_ref)
    emulator = create_backend("emulator", model, {})
    fpga = create_backend("fpga", model, {"board": "kv260", "simulate": True, "timeout_s": 120})
    try:
        want = np.asarray(emulator.run(x), dtype=np.float32)
        got = fpga.run(x)
        assert got.dtype == np.float32 and got.shape == want.shape
        a, b = got.reshape(-1).view(np.uint32), want.reshape(-1).view(np.uint32)
        bad = np.flatnonzero(a != b)
        assert bad.size == 0, f"{model_ref}: {bad.size}/{a.size} floats differ, first at {bad[0]}"
        assert np.isfinite(got).all() and np.count_nonzero(got) > got.size // 4
        acc = fpga.executor
        swaps = acc.swaps
        assert fpga.run(x).tobytes() == got.tobytes()  # second request: weights already resident
        assert acc.swaps == swaps
    finally:
        fpga.close()
        emulator.close()
