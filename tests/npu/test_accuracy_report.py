"""benchmarks/accuracy_report.py on a few inputs: its inputs, metrics, JSON and plot carry real measurements."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.support import benchmark_module

accuracy_report = benchmark_module("accuracy_report")

INPUTS = 8


def test_variations_are_deterministic_and_varied():
    photos = accuracy_report.load_photos()
    assert len(photos) == len(accuracy_report.PHOTOS) and all(p.ndim == 3 and p.shape[2] == 3 for p in photos)
    first, again = accuracy_report.variations(photos, INPUTS), accuracy_report.variations(photos, INPUTS)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # seeded
    assert all(x.shape == (224, 224, 3) and x.dtype == np.uint8 for x in first)
    # Input 0 and input len(PHOTOS) come from the same photo but a different crop/flip.
    more = accuracy_report.variations(photos, len(photos) + 1)
    assert not np.array_equal(more[0], more[len(photos)])
    assert accuracy_report.preprocess("resnet50", first[0]).dtype == np.float32
    assert abs(float(accuracy_report.preprocess("efficientnet-lite0", first[0]).max())) <= 1.0
    for network in accuracy_report.NETWORKS:  # the photo the featurizer benchmark and the executor tests feed
        x = accuracy_report.photo_input(network)
        assert x.shape == (1, 224, 224, 3) and x.dtype == np.float32 and x.flags.c_contiguous
        assert x.tobytes() == accuracy_report.photo_input(network).tobytes()


def test_metrics():
    assert accuracy_report.sqnr_db(1.0, 0.0) == math.inf
    ref = np.array([3.0, 4.0])
    assert abs(accuracy_report.sqnr_db(*accuracy_report.energies(ref, ref * 1.1)) - 20.0) < 1e-9  # 10% noise
    f = np.eye(3)
    head = accuracy_report.Classifier(np.eye(3), np.zeros(3), "identity", True)
    a = accuracy_report.agreement(f, f[[0, 2, 1]], head)
    assert abs(a.top1 - 1 / 3) < 1e-9 and a.cosine_min == 0.0 and abs(a.cosine_mean - 1 / 3) < 1e-9
    assert a.top5 == 1.0  # three classes: every one is in the top 5
    # softmax of a one-hot logit row over 3 classes: e / (e + 2) = 0.58 >= 0.5, so every input counts as confident
    assert a.n_confident == 3 and abs(a.top1_confident - 1 / 3) < 1e-9
    flat = accuracy_report.agreement(f, f, accuracy_report.Classifier(np.zeros((3, 3)), np.zeros(3), "flat", False))
    assert flat.n_confident == 0 and math.isnan(flat.top1_confident)  # a uniform softmax is never confident


def test_refuses_fewer_than_one_input():
    with pytest.raises(SystemExit):
        accuracy_report.parse_args(["--inputs", "0"])


def test_report_on_a_few_inputs(tmp_path):
    out, png = tmp_path / "accuracy.json", tmp_path / "sqnr.png"
    assert accuracy_report.main(["--inputs", str(INPUTS), "--networks", "efficientnet-lite0",
                                 "--precisions", "bfp20", "bfp12", "--sqnr-images", "2",
                                 "--json", str(out), "--plot", str(png)]) == 0
    report = json.loads(out.read_text())  # strict JSON: no NaN/Infinity
    assert {"config", "notes", "goal", "results"} <= report.keys()
    assert report["config"]["inputs"] == INPUTS and "accumulated" in report["notes"]["sqnr"]
    (result,) = report["results"]
    assert result["network"] == "efficientnet-lite0" and result["inputs"] == INPUTS
    assert result["classifier"]["imagenet"] is True
    p = result["precisions"]["bfp20"]  # the default precision, which the goal is about
    assert {"top1_agreement", "cosine_mean", "cosine_min", "sqnr_min_db", "sqnr_median_db", "sqnr_output_db",
            "sqnr_worst_layers", "layers"} <= p.keys()
    assert 0.0 <= p["top1_agreement"] <= p["top5_contains_float_top1"] <= 1.0
    assert 0 <= p["confident_inputs"] <= INPUTS
    assert 0.999 < p["cosine_min"] <= p["cosine_mean"] <= 1.0
    finite = [layer["sqnr_db"] for layer in p["layers"] if layer["sqnr_db"] is not None]
    assert len(p["layers"]) == 50 and len(finite) >= 0.9 * len(p["layers"])
    assert p["layers"][0]["sqnr_db"] > 50  # the stem has seen a single quantization of input and weights
    assert p["sqnr_min_db"] == min(finite) and len(p["sqnr_worst_layers"]) == 5
    goal = report["goal"]
    assert goal["precision"] == "bfp20"
    assert goal["measured"] == p["top1_agreement"] and goal["met"] == (p["top1_agreement"] >= 0.98)
    bfp12 = result["precisions"]["bfp12"]  # allowed to be poor on EfficientNet (it is), but must be measured
    assert 0.0 <= bfp12["top1_agreement"] <= 1.0 and -1.0 <= bfp12["cosine_min"] <= bfp12["cosine_mean"] <= 1.0
    assert p["sqnr_median_db"] > bfp12["sqnr_median_db"] + 24  # 8 more mantissa bits must show
    assert png.stat().st_size > 10_000


def test_resnet50_classifier_is_flagged_random():
    head = accuracy_report.classifier("resnet50")
    assert head.kernel.shape == (2048, 1000) and head.bias.shape == (1000,)
    assert not head.imagenet and "RANDOM" in head.description
