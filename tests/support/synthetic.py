"""A ResNet-50-shaped program packed by hand (random weights), for timing the C-sim without the compiler.

Same layer shapes and instruction mix as ResNet-50 v1 to pool5 (53 convs with folded batch norm, residual
adds fused into the third conv of each bottleneck, 3x3/2 max pool, global average pool).
"""
from __future__ import annotations

import numpy as np

from tests.support import handmade, spec_ref
from tests.support.handmade import pack_program
from tests.support.spec_ref import F32


class Packer:
    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.insns: list[dict] = []
        self.weights = bytearray()
        self.arena = 0

    def tensor(self, h, w, c) -> dict:
        t = dict(offset=self.arena, h=h, w=w, c=c)
        self.arena += h * w * c
        return t

    def conv(self, src, cout, k, s, act, prec, residual=None, same=True):
        kh = kw = k
        if same:  # TF 'same'
            oh, ow = -(-src["h"] // s), -(-src["w"] // s)
            ph = max((oh - 1) * s + kh - src["h"], 0)
            pw = max((ow - 1) * s + kw - src["w"], 0)
            pt, pb, pl, pr = ph // 2, ph - ph // 2, pw // 2, pw - pw // 2
        else:
            oh, ow = (src["h"] - kh) // s + 1, (src["w"] - kw) // s + 1
            pt = pb = pl = pr = 0
        wt = (self.rng.standard_normal((cout, kh, kw, src["c"])) * np.sqrt(2.0 / (kh * kw * src["c"]))).astype(F32)
        bias = (self.rng.standard_normal(cout) * 0.05).astype(F32)
        blob, mant_off, exp_off, bias_off, _ = spec_ref.pack_conv_weights(wt, bias, src["c"], 1, handmade.WBITS[prec])
        base = (len(self.weights) + 15) // 16 * 16
        self.weights += bytes(base - len(self.weights)) + blob
        dst = self.tensor(oh, ow, cout)
        self.insns.append(dict(
            opcode="conv2d", activation=act, precision=prec, in_offset=src["offset"], in_h=src["h"], in_w=src["w"],
            in_c=src["c"], out_offset=dst["offset"], out_h=oh, out_w=ow, out_c=cout, kernel_h=kh, kernel_w=kw,
            stride_h=s, stride_w=s, pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr, groups=1,
            weight_mant_offset=base + mant_off, weight_exp_offset=base + exp_off, bias_offset=base + bias_off,
            has_residual=int(residual is not None), residual_offset=residual["offset"] if residual else 0))
        return dst

    def pool(self, op, src, k, s, pad):
        oh = (src["h"] + 2 * pad - k) // s + 1
        ow = (src["w"] + 2 * pad - k) // s + 1
        dst = self.tensor(oh, ow, src["c"])
        self.insns.append(dict(opcode=op, in_offset=src["offset"], in_h=src["h"], in_w=src["w"], in_c=src["c"],
                               out_offset=dst["offset"], out_h=oh, out_w=ow, out_c=src["c"], kernel_h=k, kernel_w=k,
                               stride_h=s, stride_w=s, pad_top=pad, pad_left=pad, pad_bottom=pad, pad_right=pad))
        return dst

    def gap(self, src):
        dst = self.tensor(1, 1, src["c"])
        self.insns.append(dict(opcode="global_avgpool", in_offset=src["offset"], in_h=src["h"], in_w=src["w"],
                               in_c=src["c"], out_offset=dst["offset"], out_h=1, out_w=1, out_c=src["c"]))
        return dst

    def program(self, inp, out) -> tuple[bytes, bytes]:
        header = dict(arena_words=self.arena, weights_bytes=len(self.weights), input_offset=inp["offset"],
                      input_h=inp["h"], input_w=inp["w"], input_c=inp["c"], output_offset=out["offset"],
                      output_h=out["h"], output_w=out["w"], output_c=out["c"])
        return pack_program(header, self.insns), bytes(self.weights)


def resnet50_like(prec: int = 1, seed: int = 0) -> tuple[bytes, bytes]:
    p = Packer(seed)
    x = p.tensor(224, 224, 3)
    y = p.conv(x, 64, 7, 2, act=1, prec=prec)
    y = p.pool("maxpool", y, 3, 2, 1)
    for stage, (mid, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
        for b in range(blocks):
            s = 2 if (b == 0 and stage > 0) else 1
            shortcut = p.conv(y, mid * 4, 1, s, act=0, prec=prec) if b == 0 else y
            t = p.conv(y, mid, 1, s, act=1, prec=prec)
            t = p.conv(t, mid, 3, 1, act=1, prec=prec)
            y = p.conv(t, mid * 4, 1, 1, act=1, prec=prec, residual=shortcut)
    out = p.gap(y)
    return p.program(x, out)
