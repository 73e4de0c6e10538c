"""Randomized chunk sequences for the PE lanes, aimed at the edge cases of docs/numerics.md.

Every set is a real CONV2D program (rtl_vectors.add_dense_program) whose input and weights are built from
chosen block mantissas and exponents, so the expected sums come from the NPU executor. An input block is
m * 2^(E - (M-1)) with the largest |m| at least 2^(M-1) (or E = -50), which quantizes back to exactly (m, E);
`add_dense_program` reads the blocks back through the quantizer anyway and `check_roundtrip` asserts that
the intended edge case is what the NPU saw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainwave.npu.numerics import BLOCK, EXP_MAX, EXP_MIN, Precision

from tests.rtl.rtl_vectors import (VectorSet, activation_blocks, add_dense_program, conv_program, run_npu,
                                   weight_blocks)

F32 = np.float32


@dataclass(frozen=True)
class Blocks:
    """How to draw blocks: mantissa `kind` and exponent `exps`.
    kinds: uniform (any mantissa), max (every lane +-(2^M - 1), one sign per block), sparse (70% zero lanes,
    20% zero blocks), small (|m| <= 3 at E = -50, the smallest values there are), signs (+-(2^M - 1) with
    random signs per lane); exps: near (base .. base + 2), wide (all of [-50, 50]), extreme (-50 or 50)."""

    kind: str = "uniform"
    exps: str = "near"


def draw_blocks(rng: np.random.Generator, n: int, bits: int, spec: Blocks, base: int) -> tuple[np.ndarray, np.ndarray]:
    """n blocks of `bits`-bit magnitudes: mantissas (n, 16) int64 and exponents (n,) that quantize back to them."""
    top = (1 << bits) - 1
    half = 1 << (bits - 1)
    if spec.exps == "near":
        e = base + rng.integers(0, 3, n)
    elif spec.exps == "wide":
        e = rng.integers(EXP_MIN, EXP_MAX + 1, n)
    else:
        e = rng.choice([EXP_MIN, EXP_MAX], n)
    sign = rng.choice([-1, 1], (n, 1))
    if spec.kind == "max":
        m = np.broadcast_to(sign * top, (n, BLOCK)).copy()
    elif spec.kind == "signs":
        m = rng.choice([-top, top], (n, BLOCK))
    elif spec.kind == "small":
        m = rng.integers(-3, 4, (n, BLOCK))
        e = np.full(n, EXP_MIN)
    else:
        m = rng.integers(-top, top + 1, (n, BLOCK))
        # one lane carries the block's top bit, so the shared exponent of the block is exactly e
        m[np.arange(n), rng.integers(0, BLOCK, n)] = sign[:, 0] * rng.integers(half, top + 1, n)
        if spec.kind == "sparse":
            lanes_off = rng.random((n, BLOCK)) < 0.7
            lanes_off[np.arange(n), np.argmax(np.abs(m), axis=1)] = False  # keep the top-bit lane
            m[lanes_off] = 0
            zero = rng.random(n) < 0.2
            m[zero] = 0
            e = np.where(zero, EXP_MIN, e)
    return m, e


def to_input(m: np.ndarray, e: np.ndarray, bits: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Blocks (pixels * nb, 16) -> the float32 input tensor whose quantized blocks they are."""
    x = (m * np.ldexp(1.0, e - (bits - 1))[:, None]).astype(F32)  # exact: 12 significant bits at most
    return x.reshape(shape)


def check_roundtrip(x: np.ndarray, m: np.ndarray, e: np.ndarray, precision: Precision) -> None:
    qm, qe = activation_blocks(x, precision)
    assert np.array_equal(qm.reshape(m.shape), m) and np.array_equal(qe.reshape(e.shape), e), \
        "an input block did not quantize back to its intended mantissas and exponent"


def add_program(vs: VectorSet, rng: np.random.Generator, label: str, precision: Precision, *, pixels: int,
                out_c: int, blocks: int, act: Blocks, wgt: Blocks, kernel: tuple[int, int] = (1, 1),
                a_override: tuple[np.ndarray, np.ndarray] | None = None,
                w_override: tuple[np.ndarray, np.ndarray] | None = None) -> int:
    """One CONV2D over a (KH, pixels + KW - 1, 16 * blocks) input with drawn blocks; returns its sequences."""
    kh, kw = kernel
    h, w = kh, pixels + kw - 1
    ab, wb = precision.mantissa_bits, precision.weight_mantissa_bits
    base_a = int(rng.integers(EXP_MIN, EXP_MAX - 1))
    base_w = int(rng.integers(EXP_MIN, EXP_MAX - 1))
    am, ae = a_override or draw_blocks(rng, h * w * blocks, ab, act, base_a)
    wm, we = w_override or draw_blocks(rng, out_c * kh * kw * blocks, wb, wgt, base_w)
    x = to_input(am, ae, ab, (h, w, blocks * BLOCK))
    check_roundtrip(x, am, ae, precision)
    add_dense_program(vs, label, precision, x, wm, we, out_c=out_c, kernel=kernel)
    return pixels * out_c


def tie_blocks(rng: np.random.Generator, pixels: int, out_c: int, lanes: int) -> tuple[tuple, tuple, np.ndarray]:
    """bfp20 chunks whose sum lies past 2^24 on, next to or between rounding ties.

    Activation lanes 0..lanes-1 hold +-A with A a multiple of 128 in [1024, 1920] and lane 15 holds +-1;
    weight lanes 0..lanes-1 hold W in [16384, 32767] and lane 15 a remainder r. The chunk sum is
    +-(lanes * A * W + r), and lanes * A * W is a multiple of 128 while the sum is below 2^30, so the bits
    that float32 rounds away (at most the low 6) are those of r: r = 2^(s-1) + j 2^s (+-1) puts the sum on
    (next to) a tie when s bits are rounded away. Returns the activation and weight blocks and the sums."""
    sign = rng.choice([-1, 1], pixels)
    a = rng.integers(8, 16, pixels) * 128
    am = np.zeros((pixels, BLOCK), dtype=np.int64)
    am[:, :lanes] = (sign * a)[:, None]
    am[:, 15] = sign
    w = rng.integers(16384, 32768, out_c)
    s = rng.integers(1, 7, out_c)
    r = (1 << (s - 1)) + rng.integers(0, 8, out_c) * (1 << s) + rng.choice([-1, 0, 0, 1], out_c)
    wm = np.zeros((out_c, BLOCK), dtype=np.int64)
    wm[:, :lanes] = w[:, None]
    wm[:, 15] = r
    ae = rng.integers(-3, 4, pixels)
    we = rng.integers(-3, 4, out_c)
    isum = am @ wm.T
    return (am, ae), (wm, we), isum


def count_ties(isum: np.ndarray) -> int:
    """Chunk sums that are exact ties for the int-to-float32 conversion (round half to even decides)."""
    mag = np.abs(isum.astype(np.int64))
    s = np.maximum(np.floor(np.log2(np.maximum(mag, 1))).astype(np.int64) - 23, 0)
    return int(np.count_nonzero((s > 0) & (mag % (1 << s) == (1 << np.maximum(s - 1, 0)))))


def cancel_blocks(rng: np.random.Generator, n_pix: int, out_c: int, bits: int, wbits: int,
                  near: bool) -> tuple[tuple, tuple]:
    """Two blocks per pixel and channel where the second partial is exactly minus the first (near=False:
    acc returns to +0.0, from either sign) or minus the first plus one unit in one lane (near=True: massive
    cancellation, the sum keeps only a few bits and must be renormalized far)."""
    top, half = (1 << bits) - 1, 1 << (bits - 1)
    a1, e1 = draw_blocks(rng, n_pix, bits, Blocks("uniform"), int(rng.integers(-40, 40)))
    a2 = -a1
    if near:
        lane = rng.integers(0, BLOCK, n_pix)
        bump = np.where(np.abs(a2[np.arange(n_pix), lane]) < top, np.sign(a2[np.arange(n_pix), lane]) | 1, 0)
        a2[np.arange(n_pix), lane] += bump
        assert (np.abs(a2).max(axis=1) >= half).all()
    w1, we1 = draw_blocks(rng, out_c, wbits, Blocks("uniform"), int(rng.integers(-40, 40)))
    am = np.stack([a1, a2], axis=1).reshape(-1, BLOCK)
    ae = np.repeat(e1, 2)
    wm = np.stack([w1, w1], axis=1).reshape(-1, BLOCK)
    we = np.repeat(we1, 2)
    return (am, ae), (wm, we)


def random_set(lane: str, seed: int = 2026) -> tuple[VectorSet, dict[str, int]]:
    """The randomized sequences for one lane ("bfp20" or "bfp16"): at least 10^6, and a count per edge case."""
    rng = np.random.default_rng(seed)
    vs = VectorSet()
    counts: dict[str, int] = {}

    def add(name: str, n: int) -> None:
        counts[name] = counts.get(name, 0) + n

    main = Precision.BFP20 if lane == "bfp20" else Precision.BFP16
    others = [Precision.BFP16, Precision.BFP12] if lane == "bfp20" else [Precision.BFP12]
    # The bulk: uniform mantissas; exponents near each other (partials of similar size, so every add
    # rounds) or anywhere in [-50, 50]; 1 to 6 chunks per sequence.
    for i in range(24):
        blocks = 1 + i % 6
        exps = "wide" if i % 4 == 3 else "near"
        add("uniform", add_program(vs, rng, f"uniform{i}", main, pixels=400, out_c=100, blocks=blocks,
                                   act=Blocks("uniform", exps), wgt=Blocks("uniform", exps)))
    for kind in ("max", "signs", "sparse", "small"):
        for i, exps in enumerate(("near", "wide", "extreme")):
            act = Blocks(kind, exps)
            wgt = Blocks("max" if kind == "small" else kind, exps)
            add(kind, add_program(vs, rng, f"{kind}-{exps}", main, pixels=200, out_c=100, blocks=2 + i,
                                  act=act, wgt=wgt))
    for exps in ("extreme", "extreme"):
        add("exponents -50/50", add_program(vs, rng, "extreme", main, pixels=300, out_c=100, blocks=3,
                                            act=Blocks("uniform", exps), wgt=Blocks("uniform", exps)))
    for near in (False, True):
        for i in range(3):
            a, w = cancel_blocks(rng, 300, 100, main.mantissa_bits, main.weight_mantissa_bits, near)
            add("near cancellation" if near else "cancellation to +0.0",
                add_program(vs, rng, f"cancel{int(near)}{i}", main, pixels=300, out_c=100, blocks=2,
                            act=Blocks(), wgt=Blocks(), a_override=a, w_override=w))
    if lane == "bfp20":
        for lanes in (1, 2, 4, 8, 15):
            a, w, isum = tie_blocks(rng, 400, 100, lanes)
            counts["rounding ties"] = counts.get("rounding ties", 0) + count_ties(isum)
            add("sums past 2^24", add_program(vs, rng, f"ties{lanes}", main, pixels=400, out_c=100, blocks=1,
                                              act=Blocks(), wgt=Blocks(), a_override=a, w_override=w))
    for p in others:
        for exps in ("near", "wide"):
            add(p.label, add_program(vs, rng, f"{p.label}-{exps}", p, pixels=200, out_c=100, blocks=3,
                                     act=Blocks("uniform", exps), wgt=Blocks("uniform", exps)))
    # Long sequences: 256 chunks (a 1x1 conv over 4096 channels) and 2048 (an 8x8 kernel over 512).
    add("long (256 chunks)", add_program(vs, rng, "long256", main, pixels=20, out_c=20, blocks=256,
                                         act=Blocks("uniform", "near"), wgt=Blocks("uniform", "near")))
    add("long (2048 chunks)", add_program(vs, rng, "long2048", main, pixels=2, out_c=4, blocks=32,
                                          kernel=(8, 8), act=Blocks("uniform", "near"),
                                          wgt=Blocks("uniform", "near")))
    counts["sequences"] = sum(v for k, v in counts.items() if k != "rounding ties")
    return vs, counts


def overflow_set() -> VectorSet:
    """Two bfp20 accumulations of 16400 * 256 identical chunks, every activation 2047 * 2^40: a 1 x 16400 kernel
    over a 1 x 16400 x 4096 input, about the smallest CONV2D whose acc can leave the float32 range (a partial
    is below 2^106 and each chunk reads 16 activations of its own). Channel 0 (weights 32767 * 2^36) overflows
    to +Inf after about 2^22 chunks and must stay there for the last few thousand; channel 1 (weights
    -28000 * 2^36, whose partials round down to 3 ulps in the top binade) ends finite in [-FLT_MAX, -2^127].
    Each is one chunk presented again and again, since all of its chunks are equal."""
    precision = Precision.BFP20
    taps, blocks = 16400, 256
    top_a, top_w = precision.max_mantissa, precision.max_weight_mantissa
    x = np.full((1, taps, blocks * BLOCK), F32(top_a * 2.0 ** (EXP_MAX - 10)), dtype=F32)
    w_mant = np.empty((2, taps * blocks, BLOCK), dtype=np.int16)
    w_mant[0] = top_w
    w_mant[1] = -28000
    w_exp = np.full(2 * taps * blocks, EXP_MAX, dtype=np.int8)
    program = conv_program(precision, x.shape, w_mant.reshape(-1, BLOCK), w_exp, out_c=2, kernel=(1, taps))
    y = run_npu(program, x).reshape(-1)
    assert np.isposinf(y[0]) and np.isfinite(y[1]) and y[1] <= -(2.0 ** 127), y

    vs = VectorSet()
    am, ae = activation_blocks(x[:, :1, :BLOCK], precision)  # every input block is this one
    a = vs.add_a(am.reshape(-1, BLOCK), ae.reshape(-1))
    wm, we = weight_blocks(program)
    for o in range(2):
        first = o * taps * blocks
        chunks = slice(first, first + taps * blocks)
        assert (wm[chunks] == wm[first]).all() and (we[chunks] == we[first]).all()
        w = vs.add_w(wm[first], we[first:first + 1])
        vs.add_jobs(f"overflow channel {o}", precision, np.array([[[w, a, a, taps * blocks]]]),
                    np.array([[y[o], y[o]]]))
    return vs
