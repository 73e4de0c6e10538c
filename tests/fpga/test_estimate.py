from __future__ import annotations

import io

import pytest

from brainwave.fpga import perf


def test_estimate_of_smoke_program_from_instructions(smoke):
    img, _, _ = smoke
    layers = perf.layers_from_program(img.program)
    assert [L.op for L in layers][:1] == ["PAD"]
    est = perf.estimate_layers(layers, "kv260")
    assert est.total_cycles > 0 and est.latency_ms == est.total_cycles / 200e3


def test_conv_cycles_follow_the_mac_array():
    conv = perf.Layer("CONV2D", (56, 56, 256), (56, 56, 64), (1, 1), (1, 1), (0, 0, 0, 0), 1, 1)
    c = perf.layer_cycles(conv, perf.get_board("kv260"))
    ideal = perf.layer_macs(conv) / 16  # one 16-wide MAC per cycle
    assert ideal <= c <= 1.5 * ideal
    # a 64-bit port (PYNQ-Z2) halves the bfp16 weight rate; bfp12 blocks are 8 bytes and fit
    z2 = perf.layer_cycles(conv, perf.get_board("pynq-z2"))
    assert z2 > 1.8 * c
    conv12 = perf.Layer("CONV2D", (56, 56, 256), (56, 56, 64), (1, 1), (1, 1), (0, 0, 0, 0), 1, 2)
    assert perf.layer_cycles(conv12, perf.get_board("pynq-z2")) < 1.2 * c
    # bfp20 blocks are 32 bytes: two beats of the 128-bit weights port per block MAC
    conv20 = perf.Layer("CONV2D", (56, 56, 256), (56, 56, 64), (1, 1), (1, 1), (0, 0, 0, 0), 1, 3)
    assert 1.8 * c < perf.layer_cycles(conv20, perf.get_board("kv260")) < 2.2 * c


def test_resnet50_estimate_runs_and_is_labelled():
    pytest.importorskip("keras")
    import argparse

    from brainwave.models.catalog import build_featurizer, resolve_featurizer

    model = build_featurizer(resolve_featurizer("resnet50"))
    out = io.StringIO()
    est = perf.print_estimate("resnet50", model, "kv260", file=out)
    text = out.getvalue()
    assert "ESTIMATE" in text and "12.85 ms" in text and "< 2 ms" in text
    assert 3.5e9 < est.macs < 4.2e9  # ResNet-50 at 224x224 is ~3.9 GMAC
    assert est.total_cycles >= est.macs / 16
    assert 0.5e3 < est.latency_ms < 5e3
    ap = argparse.ArgumentParser()
    perf.add_estimate_arguments(ap)
    assert ap.parse_args(["--estimate", "zcu104"]).estimate == "zcu104"
