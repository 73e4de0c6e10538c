"""A deliberately plain numpy reading of docs/numerics.md, for single-instruction programs.

The expected outputs every executor is compared with (tests/npu/test_executors.py): written from the spec
text only (no shared code with brainwave.npu), slow and simple. Float64 is used only where the spec says the result is exact (dequantized
products within one chunk); every float32 accumulation is a float32 numpy add in the spec's order.
"""
from __future__ import annotations

import numpy as np

from tests.support.handmade import pack_mantissas, pack_program, ref_quantize

F32 = np.float32


def canon(y: np.ndarray) -> np.ndarray:
    """docs/numerics.md: every NaN an instruction writes is the canonical quiet NaN 0x7FC00000."""
    y = np.array(y, dtype=F32)
    y.view(np.uint32)[np.isnan(y)] = 0x7FC00000
    return y


def _act(y: np.ndarray, act: int) -> np.ndarray:
    if act == 0:
        return y
    r = np.where(y > F32(0), y, F32(0)).astype(F32)
    if act == 2:
        r = np.where(r < F32(6), r, F32(6)).astype(F32)
    return r


def conv_weights(rng, out_c, kh, kw, cin, groups, scale=1.0):
    cg = cin // groups
    return (rng.standard_normal((out_c, kh, kw, cg)) * scale).astype(F32)


def pack_conv_weights(w: np.ndarray, bias: np.ndarray, cin: int, groups: int, wbits: int):
    """w: (out_c, kh, kw, cg) float32 -> (weights blob, mant_off, exp_off, bias_off, deq blocks), quantized with
    `wbits` weight magnitude bits."""
    out_c, kh, kw, cg = w.shape
    depthwise = groups == cin and out_c == cin
    if depthwise:
        nb = (cin + 15) // 16
        blocks = np.zeros((kh, kw, nb * 16), dtype=F32)
        blocks[..., :cin] = np.transpose(w[..., 0], (1, 2, 0))
        blocks = blocks.reshape(kh, kw, nb, 16)
    else:
        nb = (cg + 15) // 16
        blocks = np.zeros((out_c, kh, kw, nb * 16), dtype=F32)
        blocks[..., :cg] = w
        blocks = blocks.reshape(out_c, kh, kw, nb, 16)
    m, E = ref_quantize(blocks, wbits)
    mant = pack_mantissas(m.reshape(-1, 16), wbits)
    exps = E.reshape(-1).astype(np.int8).tobytes()
    exp_off = len(mant)
    bias_off = (exp_off + len(exps) + 15) // 16 * 16
    blob = mant + exps + bytes(bias_off - exp_off - len(exps)) + np.asarray(bias, dtype="<f4").tobytes()
    deq = m * np.ldexp(1.0, E - (wbits - 1))[..., None]  # float64, exact
    return blob, 0, exp_off, bias_off, deq


def ref_conv(x, deq_w, bias, *, out_h, out_w, kh, kw, sh, sw, pt, pl, groups, mbits, act, residual=None):
    """Spec 1 'Dot product' + 'Vector unit' for one CONV2D."""
    H, W, C = x.shape
    nb = (C + 15) // 16
    xp = np.zeros((H, W, nb * 16), dtype=F32)
    xp[..., :C] = x
    ma, Ea = ref_quantize(xp.reshape(H, W, nb, 16), mbits)
    deq_a = (ma * np.ldexp(1.0, Ea - (mbits - 1))[..., None]).reshape(H, W, nb * 16)  # float64, exact
    out_c = bias.shape[0]
    cg = C // groups
    opg = out_c // groups
    depthwise = groups == C and out_c == C
    acc = np.zeros((out_h, out_w, out_c), dtype=F32)
    oy = np.arange(out_h)[:, None]
    ox = np.arange(out_w)[None, :]
    for ky in range(kh):
        for kx in range(kw):
            iy = oy * sh - pt + ky
            ix = ox * sw - pl + kx
            valid = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
            a = deq_a[np.clip(iy, 0, H - 1), np.clip(ix, 0, W - 1)]  # (out_h, out_w, nb*16)
            a = np.where(valid[..., None], a, 0.0)  # skipped tap: adds +0.0, which leaves acc unchanged
            if depthwise:
                wt = deq_w[ky, kx].reshape(-1)[:C]  # per-channel weights
                acc = acc + (a[..., :C] * wt).astype(F32)  # one chunk per channel
                continue
            for g in range(groups):
                base = g * cg
                osl = slice(g * opg, (g + 1) * opg)
                wg = deq_w[osl, ky, kx].reshape(opg, -1)  # (opg, nbw*16), group-local channels
                c = base
                while c < base + cg:  # chunks cut at activation and weight block boundaries
                    n = min(16 - c % 16, 16 - (c - base) % 16, base + cg - c)
                    part = np.einsum("hwc,oc->hwo", a[..., c : c + n], wg[:, c - base : c - base + n])
                    acc[..., osl] = acc[..., osl] + part.astype(F32)
                    c += n
    y = acc + bias.astype(F32)
    if residual is not None:
        y = y + residual
    return canon(_act(y, act))


def ref_pool(x, *, is_max, out_h, out_w, kh, kw, sh, sw, pt, pl):
    H, W, C = x.shape
    out = np.zeros((out_h, out_w, C), dtype=F32)
    for oy in range(out_h):
        for ox in range(out_w):
            cells = [
                x[oy * sh - pt + ky, ox * sw - pl + kx]
                for ky in range(kh)
                for kx in range(kw)
                if 0 <= oy * sh - pt + ky < H and 0 <= ox * sw - pl + kx < W
            ]
            if not cells:
                continue  # +0.0f (docs/numerics.md "Edge cases")
            if is_max:
                m = cells[0].copy()
                for v in cells[1:]:
                    m = np.where(v > m, v, m)
                out[oy, ox] = m
            else:
                s = np.zeros(C, dtype=F32)
                for v in cells:
                    s = s + v
                out[oy, ox] = s / F32(len(cells))
    return canon(out)


def ref_global_avgpool(x):
    H, W, C = x.shape
    s = np.zeros(C, dtype=F32)
    for y in range(H):
        for xx in range(W):
            s = s + x[y, xx]
    return canon(s / F32(H * W)).reshape(1, 1, C)


def ref_concat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CONCAT: each pixel's channels of a, then of b; a copy, NaNs stored canonical."""
    return canon(np.concatenate([a, b], axis=-1))


def single_op_program(insn: dict, in_shape, out_shape, weights: bytes = b"", extra: dict | None = None):
    """One instruction. The program input is a flat 1x1xN tensor at arena offset 0 holding the instruction's
    input followed by the extra tensors `extra` names (field -> element count, e.g. residual_offset, in2_offset),
    so a single instruction can read several host-provided tensors. Output after them.
    Returns (program, weights, offsets)."""
    n_in = int(np.prod(in_shape))
    off = n_in
    offsets = {"in_offset": 0}
    for field, size in (extra or {}).items():
        offsets[field] = off
        off += size
    total_in = off
    offsets["out_offset"] = off
    n_out = int(np.prod(out_shape))
    full = dict(insn, in_h=in_shape[0], in_w=in_shape[1], in_c=in_shape[2], out_h=out_shape[0],
                out_w=out_shape[1], out_c=out_shape[2], **offsets)
    header = dict(arena_words=off + n_out, weights_bytes=len(weights), input_offset=0, input_h=1,
                  input_w=1, input_c=total_in, output_offset=off, output_h=out_shape[0],
                  output_w=out_shape[1], output_c=out_shape[2])
    return pack_program(header, [full]), weights, offsets


def flat_input(*tensors) -> np.ndarray:
    return np.concatenate([np.asarray(t, dtype=F32).reshape(-1) for t in tensors]).reshape(1, 1, -1)
