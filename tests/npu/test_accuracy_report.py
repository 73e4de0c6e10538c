"""The accuracy report's measurements on a few inputs: real numbers, not placeholders."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import accuracy_report  # noqa: E402


def test_report_on_a_few_inputs(tmp_path):
    inputs = accuracy_report.variations(accuracy_report.load_photos(), 6)
    assert len(inputs) == 6 and inputs[0].shape == (224, 224, 3) and inputs[0].dtype == np.uint8
    assert not np.array_equal(inputs[0], inputs[len(accuracy_report.PHOTOS) % 6])
    result = accuracy_report.evaluate("efficientnet-lite0", ["bfp16", "bfp12"], inputs, sqnr_images=2)
    bfp16, bfp12 = result["precisions"]["bfp16"], result["precisions"]["bfp12"]
    for p in (bfp16, bfp12):
        assert 0.0 <= p["top1_agreement"] <= 1.0
        assert -1.0 <= p["cosine_min"] <= p["cosine_mean"] <= 1.0
        assert len(p["layers"]) == 50 and all(np.isfinite(layer["sqnr_db"]) for layer in p["layers"])
    assert bfp16["cosine_min"] > 0.9  # bfp12 is allowed to be poor on EfficientNet (measured: it is)
    assert bfp16["sqnr_median_db"] > bfp12["sqnr_median_db"] + 6  # 4 more mantissa bits must show
    assert bfp16["layers"][0]["sqnr_db"] > 30  # the first layer has seen one quantization only
    accuracy_report.plot([result], tmp_path / "sqnr.png")
    assert (tmp_path / "sqnr.png").stat().st_size > 10_000


def test_sqnr_and_agreement_metrics():
    ref = np.array([3.0, 4.0])
    assert accuracy_report.sqnr_db(ref, ref) == float("inf")
    assert abs(accuracy_report.sqnr_db(ref, ref * 1.1) - 20.0) < 1e-9  # noise 10% of the signal: 20 dB
    f = np.eye(3)
    a = accuracy_report.agreement(f, f[[0, 2, 1]], np.eye(3), np.zeros(3))
    assert abs(a.top1 - 1 / 3) < 1e-9 and a.cosine_min == 0.0 and abs(a.cosine_mean - 1 / 3) < 1e-9
