"""Block floating point as the NPU defines it (docs/numerics.md): the precisions, and the quantizer and packing
the compiler uses for weights. The executors quantize activations themselves, in C and C++ (hls/src,
brainwave/npu/native/src), to the same bytes.

A block is 16 float32 values along the channel axis. It is stored as one shared int8 exponent E and 16
integer mantissas m; a value is m * 2^(E - (M-1)) where M is the precision's magnitude bits. Quantization
here is exact: it only scales by powers of two and rounds once (half to even).
Mantissas are int16 arrays whatever the precision (bfp20 weights need all 16 bits); packing narrows them.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

BLOCK = 16
EXP_MIN = -50
EXP_MAX = 50
FLT_MAX = np.float32(np.finfo(np.float32).max)


class Precision(IntEnum):
    """MAC precisions; the value is the program's `precision` field. Named like MSFP, by the bits of one
    activation counted as sign + magnitude + the 8-bit shared exponent."""

    BFP16 = 1  # MSFP16-like: sign + 7-bit magnitude, 8-bit shared exponent per 16 values
    BFP12 = 2  # MSFP12-like: sign + 3-bit magnitude
    BFP20 = 3  # activations sign + 11 bits, weights sign + 15 (the whole int16 lane); the default

    @property
    def mantissa_bits(self) -> int:
        """Magnitude bits M of the activations (quantized at run time)."""
        return _FORMATS[self][0]

    @property
    def weight_mantissa_bits(self) -> int:
        """Magnitude bits of the weights. Equal to M, except bfp20: weights are quantized once by the compiler
        and stored in 16-bit lanes, so they use all 15 bits (12 x 16-bit products still fit one DSP48E2)."""
        return _FORMATS[self][1]

    @property
    def max_mantissa(self) -> int:
        return (1 << self.mantissa_bits) - 1

    @property
    def max_weight_mantissa(self) -> int:
        return (1 << self.weight_mantissa_bits) - 1

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def block_bytes(self) -> int:
        """Bytes of packed mantissas per block: two 4-bit lanes per byte (bfp12), int8 lanes (bfp16),
        int16 little-endian lanes (bfp20)."""
        return BLOCK * _FORMATS[self][2] // 8

    @classmethod
    def labels(cls) -> list[str]:
        """Every precision's name, as the CLI and the benchmarks accept it."""
        return [p.label for p in cls]

    @classmethod
    def parse(cls, value: "str | int | Precision") -> "Precision":
        if isinstance(value, Precision):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                pass
        else:
            try:
                return cls(int(value))
            except ValueError:
                pass
        names = ", ".join(cls.labels())
        raise ValueError(f"unknown NPU precision {value!r}; choose one of {names}")


# precision -> (activation magnitude bits, weight magnitude bits, bits per packed weight lane)
_FORMATS = {Precision.BFP16: (7, 7, 8), Precision.BFP12: (3, 3, 4), Precision.BFP20: (11, 15, 16)}
DEFAULT_PRECISION = Precision.BFP20  # the one that keeps EfficientNet-Lite0 within 98% top-1 of float (docs)


def pad_channels(x: np.ndarray) -> np.ndarray:
    """Zero-pad the last axis to a multiple of BLOCK (float32)."""
    x = np.asarray(x, dtype=np.float32)
    c = x.shape[-1]
    padded = -(-c // BLOCK) * BLOCK
    if padded == c:
        return x
    out = np.zeros(x.shape[:-1] + (padded,), dtype=np.float32)
    out[..., :c] = x
    return out


def shared_exponents(blocks: np.ndarray) -> np.ndarray:
    """E per block (last axis = 16 finite float32 lanes): floor(log2(max |x|)) clamped; -50 for an all-zero block."""
    amax = np.max(np.abs(blocks), axis=-1)
    _, e = np.frexp(amax)  # amax = f * 2^e with f in [0.5, 1), exact also for subnormals
    exps = np.clip(e.astype(np.int32) - 1, EXP_MIN, EXP_MAX)
    exps[amax == 0] = EXP_MIN
    return exps


def _sanitize(x: np.ndarray) -> np.ndarray:
    """NaN -> 0, +-Inf -> +-FLT_MAX (float32)."""
    x = np.asarray(x, dtype=np.float32)
    if np.isfinite(x).all():
        return x
    return np.nan_to_num(x, nan=0.0, posinf=FLT_MAX, neginf=-FLT_MAX)


def quantize_blocks(blocks: np.ndarray, mantissa_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocks (..., 16) float32 -> (mantissas int16 (..., 16), exponents int8 (...)), with `mantissa_bits`
    magnitude bits (a precision's `mantissa_bits` for activations, `weight_mantissa_bits` for weights)."""
    if blocks.shape[-1] != BLOCK:
        raise ValueError(f"blocks must have {BLOCK} lanes on the last axis, got shape {blocks.shape}")
    x = _sanitize(blocks)
    exps = shared_exponents(x)
    # 1/step = 2^((M-1) - E) is a power of two in [2^-49, 2^64]: the product is exact (or < 0.5 when it
    # underflows, which rounds to 0 as the exact quotient would).
    inv_step = np.ldexp(np.float32(1.0), (mantissa_bits - 1) - exps).astype(np.float32)
    lim = (1 << mantissa_bits) - 1
    m = np.clip(np.rint(x * inv_step[..., None]), -lim, lim)  # np.rint rounds half to even
    return m.astype(np.int16), exps.astype(np.int8)


def pack_mantissas(mantissas: np.ndarray, precision: Precision) -> bytes:
    """Blocks of int mantissas (n, 16) -> bytes: int8 lanes (bfp16), int16 little-endian lanes (bfp20) or
    4-bit two's complement, lane 2i in the low nibble and 2i+1 in the high nibble (bfp12)."""
    m = np.asarray(mantissas).reshape(-1, BLOCK)
    if precision is Precision.BFP20:
        return m.astype("<i2").tobytes()
    m = m.astype(np.int8)
    if precision is Precision.BFP16:
        return m.tobytes()
    nib = (m.view(np.uint8) & 0x0F)
    return (nib[:, 0::2] | (nib[:, 1::2] << 4)).astype(np.uint8).tobytes()


def unpack_mantissas(data: bytes | np.ndarray, blocks: int, precision: Precision) -> np.ndarray:
    """Inverse of pack_mantissas: (blocks, 16) int16."""
    raw = np.frombuffer(data, dtype=np.uint8, count=blocks * precision.block_bytes)
    if precision is Precision.BFP20:
        return raw.view("<i2").astype(np.int16).reshape(blocks, BLOCK)
    if precision is Precision.BFP16:
        return raw.view(np.int8).astype(np.int16).reshape(blocks, BLOCK)
    raw = raw.reshape(blocks, BLOCK // 2)
    out = np.empty((blocks, BLOCK), dtype=np.int16)
    out[:, 0::2] = ((raw & 0x0F) << 4).view(np.int8) >> 4  # sign-extend the nibble
    out[:, 1::2] = (raw & 0xF0).view(np.int8) >> 4
    return out
