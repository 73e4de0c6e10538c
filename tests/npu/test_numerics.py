"""The quantizer in brainwave.npu.numerics against an independent float64 reading of docs/numerics.md."""
from __future__ import annotations

import numpy as np
import pytest

from brainwave.npu.numerics import Precision, pack_mantissas, quantize_blocks, unpack_mantissas
from tests.support import cases  # value generators: zeros, tiny, huge, equal, negzero, nonfinite, wide
from tests.support.handmade import ref_quantize


@pytest.mark.parametrize("precision", list(Precision))
@pytest.mark.parametrize("kind", cases.VALUE_KINDS + ("signedzeros",))
def test_quantizer_matches_reference(precision, kind):
    rng = np.random.default_rng(7)
    with np.errstate(over="ignore", invalid="ignore"):
        x = cases.values(rng, (64, 16), kind)
    for bits in {precision.mantissa_bits, precision.weight_mantissa_bits}:  # activations, weights
        m, e = quantize_blocks(x, bits)
        want_m, want_e = ref_quantize(x, bits)
        assert np.array_equal(m.astype(np.int64), want_m) and np.array_equal(e.astype(np.int64), want_e)


def test_rounding_is_half_to_even_and_saturates():
    # amax 1.0 -> E = 0, step 2^-6 for bfp16: 0.5 + k/128 hits exact ties
    x = np.zeros((1, 16), np.float32)
    x[0, :4] = [1.0, 2.5 / 64, 3.5 / 64, -2.5 / 64]
    m, e = quantize_blocks(x, 7)
    assert e[0] == 0 and list(m[0, :4]) == [64, 2, 4, -2]
    x[0, 0] = 1.999  # rounds to 128 steps -> saturates at 127
    m, _ = quantize_blocks(x, 7)
    assert m[0, 0] == 127


def test_nonfinite_inputs_follow_the_rules():
    x = np.zeros((1, 16), np.float32)
    x[0, :3] = [np.nan, np.inf, -np.inf]
    m, e = quantize_blocks(x, 3)
    assert e[0] == 50 and list(m[0, :3]) == [0, 7, -7]  # NaN -> 0, inf -> +-FLT_MAX saturated, E clamped


@pytest.mark.parametrize("precision", list(Precision))
def test_pack_unpack_round_trip(precision):
    rng = np.random.default_rng(3)
    lim = precision.max_weight_mantissa  # packing is for weights
    m = rng.integers(-lim, lim + 1, (37, 16)).astype(np.int16)
    packed = pack_mantissas(m, precision)
    assert len(packed) == 37 * precision.block_bytes
    assert np.array_equal(unpack_mantissas(packed, 37, precision), m)


def test_precision_parse():
    assert Precision.parse("bfp12") is Precision.BFP12 and Precision.parse(1) is Precision.BFP16
    with pytest.raises(ValueError, match="choose one of bfp16, bfp12"):
        Precision.parse("fp8")
