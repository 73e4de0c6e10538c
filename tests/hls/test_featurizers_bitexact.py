"""Whole featurizers on a real photo: the numpy emulator and the C-simulated HLS kernel give identical bytes.

ResNet-50 (seeded weights) on BGR minus the VGG means; EfficientNet-Lite0 (real weights) on RGB (x-127)/128.
The photo is scikit-image's chelsea.png resized to 224x224.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

VGG_MEANS_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def chelsea_rgb_224() -> np.ndarray:
    """uint8 (224, 224, 3) RGB."""
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.chelsea()).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def resnet50_input() -> np.ndarray:
    rgb = chelsea_rgb_224().astype(np.float32)
    return (rgb[..., ::-1] - VGG_MEANS_BGR).astype(np.float32)[None]


def efficientnet_lite0_input() -> np.ndarray:
    rgb = chelsea_rgb_224().astype(np.float32)
    return ((rgb - np.float32(127.0)) / np.float32(128.0)).astype(np.float32)[None]


def _compile(model_ref: str):
    from brainwave.models import build_featurizer, resolve_featurizer
    from brainwave.npu.compiler import compile_keras

    spec = resolve_featurizer(model_ref)
    model = build_featurizer(spec)
    return compile_keras(model), model


def _check(model_ref: str, x: np.ndarray, hls_build, record):
    from brainwave.npu import csim
    from brainwave.npu.emulator import Emulator

    program, _ = _compile(model_ref)
    t0 = time.perf_counter()
    emu = np.asarray(Emulator(program).run(x), dtype=np.float32)
    emu_s = time.perf_counter() - t0
    out, csim_s = csim.run_csim(program, x)
    out = np.asarray(out, dtype=np.float32)
    assert out.size == emu.size, f"csim {out.shape} vs emulator {emu.shape}"
    a = out.reshape(-1).view(np.uint32)
    b = emu.reshape(-1).view(np.uint32)
    bad = np.flatnonzero(a != b)
    assert bad.size == 0, (
        f"{model_ref}: {bad.size}/{a.size} floats differ; first at {bad[0]}: csim {out.reshape(-1)[bad[0]]!r} "
        f"emulator {emu.reshape(-1)[bad[0]]!r}"
    )
    assert np.all(np.isfinite(out)) and np.count_nonzero(out) > out.size // 4, "degenerate features"
    record[model_ref] = {"csim_seconds": round(csim_s, 3), "emulator_seconds": round(emu_s, 3),
                         "outputs": int(out.size)}
    return out


@pytest.fixture(scope="module")
def record():
    rec: dict = {}
    yield rec
    target = os.environ.get("BRAINWAVE_HLS_TIMINGS")
    if target and rec:
        Path(target).write_text(json.dumps(rec, indent=2))
    for name, r in rec.items():
        print(f"\n{name}: csim {r['csim_seconds']} s, emulator {r['emulator_seconds']} s")


def test_resnet50_emulator_equals_csim(hls_build, record):
    _check("resnet50", resnet50_input(), hls_build, record)


def test_efficientnet_lite0_emulator_equals_csim(hls_build, record):
    _check("efficientnet-lite0", efficientnet_lite0_input(), hls_build, record)
