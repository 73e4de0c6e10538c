"""Weights blob layout (docs/isa.md "Weights blob"): BFP mantissas, shared exponents and float32 biases per CONV2D."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..numerics import BLOCK, Precision, pack_mantissas, pad_channels, quantize_blocks


@dataclass(frozen=True)
class PackedConv:
    mant_offset: int
    exp_offset: int
    bias_offset: int


def weight_blocks(kernel: np.ndarray, groups: int, in_c: int) -> np.ndarray:
    """kernel (out_c, kh, kw, cg) float32 -> blocks (n, 16) in the program's block order.

    Normal/grouped: for o, ky, kx, block of the group-local channels. Depthwise (groups == in_c == out_c):
    for ky, kx, block of the channels."""
    out_c, kh, kw, cg = kernel.shape
    if groups == in_c and out_c == in_c:
        per_tap = np.transpose(kernel[..., 0], (1, 2, 0))  # (kh, kw, C)
        return pad_channels(per_tap).reshape(-1, BLOCK)
    return pad_channels(kernel).reshape(-1, BLOCK)


def blob_bytes(blocks_and_channels: "list[tuple[int, int]]", precision: Precision) -> int:
    """Size of the weights blob `WeightsBlob` packs for convolutions of (weight blocks, out_c), in order, in
    `precision`: what a program's weights would take in another precision, without quantizing anything."""
    size = 0
    for blocks, out_c in blocks_and_channels:
        size += -size % 16 + blocks * precision.block_bytes + blocks
        size += -size % 4 + 4 * out_c
    return size


class WeightsBlob:
    """Appends packed convolutions; offsets obey the kernel's alignment rules."""

    def __init__(self) -> None:
        self._data = bytearray()

    def _align(self, multiple: int) -> None:
        self._data += bytes(-len(self._data) % multiple)

    def add_conv(self, kernel: np.ndarray, bias: np.ndarray, groups: int, in_c: int,
                 precision: Precision) -> PackedConv:
        mantissas, exponents = quantize_blocks(weight_blocks(kernel, groups, in_c), precision.weight_mantissa_bits)
        self._align(16)
        mant_offset = len(self._data)
        self._data += pack_mantissas(mantissas, precision)
        exp_offset = len(self._data)
        self._data += exponents.astype(np.int8).tobytes()
        self._align(4)
        bias_offset = len(self._data)
        self._data += np.asarray(bias, dtype="<f4").tobytes()
        return PackedConv(mant_offset, exp_offset, bias_offset)

    def tobytes(self) -> bytes:
        return bytes(self._data)
