"""Randomized single-instruction cases for the bit-exact sweep, packed straight from the spec.

Each case is (name, program bytes, weights bytes, input array, expected output from spec_ref).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.support import handmade, spec_ref
from tests.support.spec_ref import F32

PRECISIONS = tuple(handmade.MBITS)  # every precision code
VALUE_KINDS = ("normal", "zeros", "tiny", "huge", "equal", "negzero", "nonfinite", "wide")


def values(rng, shape, kind: str) -> np.ndarray:
    if kind == "normal":
        return rng.standard_normal(shape).astype(F32)
    if kind == "zeros":
        x = rng.standard_normal(shape).astype(F32)
        x[rng.random(shape) < 0.7] = 0.0
        return x
    if kind == "tiny":  # subnormals and values far below 2^-50 (exponent clamp)
        return (rng.standard_normal(shape) * np.exp2(rng.integers(-149, -100, shape))).astype(F32)
    if kind == "huge":  # near FLT_MAX, exponent clamp at 50, saturation
        return (rng.uniform(-1, 1, shape) * 3.4e38).astype(F32)
    if kind == "equal":
        return np.full(shape, F32(rng.standard_normal()), dtype=F32)
    if kind == "negzero":
        x = rng.standard_normal(shape).astype(F32)
        x[rng.random(shape) < 0.5] = -0.0
        return x
    if kind == "nonfinite":
        x = rng.standard_normal(shape).astype(F32)
        r = rng.random(shape)
        x[r < 0.05] = np.nan
        x[(r >= 0.05) & (r < 0.1)] = np.inf
        x[(r >= 0.1) & (r < 0.15)] = -np.inf
        bits = x.view(np.uint32)
        bits[r < 0.02] = 0xFFC00123  # negative quiet NaN with a payload
        bits[(r >= 0.02) & (r < 0.03)] = 0x7FA00000  # signaling NaN
        return x
    if kind == "signedzeros":  # +0.0 / -0.0 ties (max keeps the first), a few negatives
        x = np.where(rng.random(shape) < 0.5, F32(0.0), F32(-0.0)).astype(F32)
        x[rng.random(shape) < 0.2] = -1.0
        return x
    if kind == "positive":  # same sign near the block maximum: bfp20 chunk sums pass 2^24 and must round
        return rng.uniform(0.5, 1.0, shape).astype(F32)
    if kind == "wide":  # mixed magnitudes inside one block
        return (rng.standard_normal(shape) * np.exp2(rng.integers(-40, 40, shape))).astype(F32)
    raise ValueError(kind)


@dataclass
class Case:
    name: str
    program: bytes
    weights: bytes
    x: np.ndarray
    expected: np.ndarray


def out_size(n, k, s, p0, p1):
    return (n + p0 + p1 - k) // s + 1


def conv_case(rng, *, h, w, cin, cout, k, s, pad, groups, act, prec, residual, kind, wkind="normal") -> Case:
    kh, kw = k
    sh, sw = s
    pt, pl, pb, pr = pad
    mbits = handmade.MBITS[prec]
    oh, ow = out_size(h, kh, sh, pt, pb), out_size(w, kw, sw, pl, pr)
    x = values(rng, (h, w, cin), kind)
    wt = values(rng, (cout, kh, kw, cin // groups), wkind)
    wt = np.nan_to_num(wt, nan=0.0, posinf=1.0, neginf=-1.0)  # weights come from a compiler: finite
    bias = (rng.standard_normal(cout) * 0.1).astype(F32)
    blob, mant_off, exp_off, bias_off, deq = spec_ref.pack_conv_weights(wt, bias, cin, groups, handmade.WBITS[prec])
    res = values(rng, (oh, ow, cout), "normal") if residual else None
    insn = dict(opcode="conv2d", activation=act, precision=prec, kernel_h=kh, kernel_w=kw, stride_h=sh,
                stride_w=sw, pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr, groups=groups,
                weight_mant_offset=mant_off, weight_exp_offset=exp_off, bias_offset=bias_off,
                has_residual=int(residual))
    extra = {"residual_offset": res.size} if residual else None
    program, weights, _ = spec_ref.single_op_program(insn, (h, w, cin), (oh, ow, cout), blob, extra)
    expected = spec_ref.ref_conv(x, deq, bias, out_h=oh, out_w=ow, kh=kh, kw=kw, sh=sh, sw=sw, pt=pt, pl=pl,
                                 groups=groups, mbits=mbits, act=act, residual=res)
    name = (f"conv{h}x{w}x{cin}-{cout}_k{kh}{kw}_s{sh}{sw}_p{pt}{pl}{pb}{pr}_g{groups}_a{act}_p{prec}"
            f"_r{int(residual)}_{kind}")
    inp = spec_ref.flat_input(x, res) if residual else spec_ref.flat_input(x)
    return Case(name, program, weights, inp, expected)


def pool_case(rng, *, op, h, w, c, k, s, pad, kind) -> Case:
    kh, kw = k
    sh, sw = s
    pt, pl, pb, pr = pad
    oh, ow = out_size(h, kh, sh, pt, pb), out_size(w, kw, sw, pl, pr)
    x = values(rng, (h, w, c), kind)
    insn = dict(opcode=op, kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw, pad_top=pt, pad_left=pl,
                pad_bottom=pb, pad_right=pr)
    program, weights, _ = spec_ref.single_op_program(insn, (h, w, c), (oh, ow, c))
    expected = spec_ref.ref_pool(x, is_max=op == "maxpool", out_h=oh, out_w=ow, kh=kh, kw=kw, sh=sh, sw=sw,
                                 pt=pt, pl=pl)
    return Case(f"{op}{h}x{w}x{c}_k{kh}{kw}_s{sh}{sw}_p{pt}{pl}{pb}{pr}_{kind}", program, weights,
                spec_ref.flat_input(x), expected)


def gap_case(rng, *, h, w, c, kind) -> Case:
    x = values(rng, (h, w, c), kind)
    program, weights, _ = spec_ref.single_op_program(dict(opcode="global_avgpool"), (h, w, c), (1, 1, c))
    return Case(f"gap{h}x{w}x{c}_{kind}", program, weights, spec_ref.flat_input(x), spec_ref.ref_global_avgpool(x))


def add_case(rng, *, h, w, c, act, kind) -> Case:
    a = values(rng, (h, w, c), kind)
    b = values(rng, (h, w, c), kind)
    program, weights, _ = spec_ref.single_op_program(dict(opcode="add", activation=act), (h, w, c), (h, w, c),
                                                     extra={"in2_offset": b.size})
    expected = spec_ref.canon(spec_ref._act(a + b, act))
    return Case(f"add{h}x{w}x{c}_a{act}_{kind}", program, weights, spec_ref.flat_input(a, b), expected)


def act_case(rng, *, h, w, c, act, kind) -> Case:
    x = values(rng, (h, w, c), kind) * F32(4)
    program, weights, _ = spec_ref.single_op_program(dict(opcode="activation", activation=act), (h, w, c), (h, w, c))
    return Case(f"act{h}x{w}x{c}_a{act}_{kind}", program, weights, spec_ref.flat_input(x), spec_ref.canon(spec_ref._act(x, act)))


def pad_case(rng, *, h, w, c, pad, kind) -> Case:
    pt, pl, pb, pr = pad
    x = values(rng, (h, w, c), kind)
    insn = dict(opcode="pad", pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr)
    oshape = (h + pt + pb, w + pl + pr, c)
    program, weights, _ = spec_ref.single_op_program(insn, (h, w, c), oshape)
    expected = np.zeros(oshape, dtype=F32)
    expected[pt : pt + h, pl : pl + w] = spec_ref.canon(x)
    return Case(f"pad{h}x{w}x{c}_p{pt}{pl}{pb}{pr}_{kind}", program, weights, spec_ref.flat_input(x), expected)


def concat_case(rng, *, h, w, ca, cb, kind) -> Case:
    a = values(rng, (h, w, ca), kind)
    b = values(rng, (h, w, cb), kind)
    program, weights, _ = spec_ref.single_op_program(dict(opcode="concat"), (h, w, ca), (h, w, ca + cb),
                                                     extra={"in2_offset": b.size})
    return Case(f"concat{h}x{w}x{ca}+{cb}_{kind}", program, weights, spec_ref.flat_input(a, b),
                spec_ref.ref_concat(a, b))


def sweep(seed: int = 2026) -> list[Case]:
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN cases overflow on purpose
        return _sweep(seed)


def _sweep(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    # bfp20 cases (and the chunk-rounding ones) draw from their own stream, so the cases that existed before
    # them keep their values
    rng20 = np.random.default_rng(seed + 20)

    def stream(prec: int):
        return rng20 if prec == 3 else rng

    cases: list[Case] = []
    conv_shapes = [
        # h, w, cin, cout, k, s, pad, groups
        (5, 5, 16, 16, (1, 1), (1, 1), (0, 0, 0, 0), 1),
        (6, 7, 3, 20, (3, 3), (2, 2), (1, 1, 1, 1), 1),  # first-layer style, cin < 16
        (7, 6, 40, 24, (3, 3), (1, 1), (1, 1, 1, 1), 1),  # cin not a multiple of 16
        (9, 9, 8, 16, (7, 7), (2, 2), (3, 3, 3, 3), 1),  # stem 7x7/2
        (8, 8, 33, 17, (1, 1), (2, 2), (0, 0, 0, 0), 1),  # strided 1x1 (projection shortcut)
        (6, 6, 32, 32, (3, 3), (2, 2), (0, 0, 1, 1), 1),  # asymmetric TF 'same' padding
        (5, 4, 12, 8, (3, 2), (1, 2), (1, 0, 1, 1), 2),  # grouped, cg = 6 (chunks cut by both grids)
        (5, 5, 40, 20, (3, 3), (1, 1), (1, 1, 1, 1), 4),  # grouped, cg = 10
        (5, 5, 48, 24, (1, 1), (1, 1), (0, 0, 0, 0), 3),  # grouped, cg = 16 (aligned path)
        (6, 6, 20, 20, (3, 3), (1, 1), (1, 1, 1, 1), 20),  # depthwise
        (7, 7, 40, 40, (5, 5), (2, 2), (1, 1, 2, 2), 40),  # depthwise 5x5/2
        (5, 5, 6, 12, (3, 3), (1, 1), (1, 1, 1, 1), 6),  # depth multiplier 2 (grouped, cg = 1)
        (3, 3, 18, 10, (3, 3), (1, 1), (0, 0, 0, 0), 1),  # dense: kernel covers the whole input
        (1, 1, 70, 13, (1, 1), (1, 1), (0, 0, 0, 0), 1),  # dense on 1x1xC
    ]
    i = 0
    for shape in conv_shapes:
        h, w, cin, cout, k, s, pad, groups = shape
        for prec in PRECISIONS:
            j = i + 3 if prec == 3 else i  # bfp20 takes the kind three steps on, without moving the rotation
            kind = VALUE_KINDS[j % len(VALUE_KINDS)]
            act = j % 3
            residual = j % 2 == 0
            i += prec != 3
            cases.append(conv_case(stream(prec), h=h, w=w, cin=cin, cout=cout, k=k, s=s, pad=pad, groups=groups,
                                   act=act, prec=prec, residual=residual, kind=kind))
    # every value kind through a 3x3 conv in every precision, and through tiny / huge weights
    for kind in VALUE_KINDS:
        for prec in PRECISIONS:
            cases.append(conv_case(stream(prec), h=4, w=5, cin=24, cout=8, k=(3, 3), s=(1, 1), pad=(1, 1, 1, 1),
                                   groups=1, act=1, prec=prec, residual=False, kind=kind))
    for wkind in ("tiny", "huge", "zeros", "equal"):
        for prec in (1, 3):
            cases.append(conv_case(stream(prec), h=3, w=3, cin=16, cout=8, k=(1, 1), s=(1, 1), pad=(0, 0, 0, 0), groups=1,
                                   act=0, prec=prec, residual=False, kind="wide", wkind=wkind))
    # chunk sums above 2^24 (bfp20 rounds them to float32): dense, and grouped with chunks cut short
    for cin, cout, groups in ((48, 24, 1), (40, 20, 4)):
        for prec in PRECISIONS:
            cases.append(conv_case(rng20, h=4, w=4, cin=cin, cout=cout, k=(3, 3), s=(1, 1), pad=(1, 1, 1, 1),
                                   groups=groups, act=0, prec=prec, residual=False, kind="positive", wkind="positive"))
    for op in ("maxpool", "avgpool"):
        for j, (k, s, pad) in enumerate([((3, 3), (2, 2), (1, 1, 1, 1)), ((2, 2), (2, 2), (0, 0, 0, 0)),
                                          ((3, 3), (1, 1), (0, 0, 1, 1)), ((3, 2), (2, 1), (1, 0, 1, 1))]):
            for kind in ("normal", "nonfinite", "signedzeros", VALUE_KINDS[(j + 3) % len(VALUE_KINDS)]):
                cases.append(pool_case(rng, op=op, h=7, w=6, c=5, k=k, s=s, pad=pad, kind=kind))
    for kind, gap_kind in (("normal", "normal"), ("nonfinite", "nonfinite"), ("huge", "tiny"), ("wide", "wide")):
        cases.append(gap_case(rng, h=7, w=7, c=20, kind=gap_kind))
        for act in (0, 1, 2):
            cases.append(add_case(rng, h=3, w=4, c=9, act=act, kind=kind))
            cases.append(act_case(rng, h=3, w=4, c=9, act=act, kind=kind))
    for act in (0, 1, 2):
        cases.append(act_case(rng, h=2, w=2, c=8, act=act, kind="signedzeros"))
        cases.append(add_case(rng, h=2, w=2, c=8, act=act, kind="signedzeros"))
    for pad in ((1, 1, 1, 1), (0, 0, 1, 1), (3, 2, 0, 1)):
        cases.append(pad_case(rng, h=4, w=3, c=5, pad=pad, kind="nonfinite"))
    # CONCAT (ISA v3): its own stream, so the cases above keep their values; channel counts on and off the
    # SIMD width, one pixel of many channels (how SSD's outputs are packed), and every value kind's bits
    rng_concat = np.random.default_rng(seed + 30)
    for (h, w, ca, cb), kind in zip(((3, 4, 5, 7), (2, 3, 16, 16), (1, 1, 70, 33), (4, 2, 1, 20), (2, 2, 33, 1)),
                                    ("nonfinite", "normal", "signedzeros", "huge", "tiny")):
        cases.append(concat_case(rng_concat, h=h, w=w, ca=ca, cb=cb, kind=kind))
    return cases
