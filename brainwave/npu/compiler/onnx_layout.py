"""Where an ONNX tensor's elements sit in the NPU's H x W x C arena tensor.

ONNX convolutions read N x C x H x W; the NPU keeps H x W x C. The frontend does not move data: it records,
for every ONNX value, the `Layout` that maps it onto the arena tensor (ir.Layout). Transposes only change
that record; reshapes are free when they keep the element order, and a channels-first flatten is left for
the dense layer after it to absorb (passes/dense_to_conv.py).
"""
from __future__ import annotations

import numpy as np

from .ir import Layout

NCHW = (0, 2, 3, 1)  # physical (N, H, W, C) from an N x C x H x W frame
NHWC = (0, 1, 2, 3)


def nchw(shape: tuple[int, ...]) -> Layout:
    """A 4-D tensor in ONNX's usual N x C x H x W order, or any other rank seen as a flat 1 x N vector."""
    shape = tuple(int(d) for d in shape)
    frame = shape if len(shape) == 4 else (1, int(np.prod(shape)), 1, 1)
    return Layout(shape, frame, NCHW)


def physical(layout: Layout) -> tuple[int, int, int]:
    """The H x W x C arena shape."""
    return tuple(layout.frame[layout.perm[j]] for j in (1, 2, 3))


def is_nchw(layout: Layout) -> bool:
    return len(layout.shape) == 4 and layout.perm == NCHW


def channel_axis(layout: Layout) -> int | None:
    """The axis of `layout.shape` that is the arena's C axis (None when the tensor is not 4-D or flat)."""
    if len(layout.shape) == 4:
        return layout.perm[3]
    return len(layout.shape) - 1 if int(np.prod(layout.shape[:-1])) == 1 else None


def keeps_order(layout: Layout) -> bool:
    """Whether reading the arena tensor row-major gives the ONNX tensor's elements in row-major order."""
    axes = [layout.perm[j] for j in range(4) if layout.frame[layout.perm[j]] > 1]
    return axes == sorted(axes)


def transposed(layout: Layout, perm: tuple[int, ...]) -> Layout:
    """The layout of Transpose(perm) of a 4-D tensor: output axis i is input axis perm[i]."""
    inverse = np.argsort(perm)
    shape = tuple(layout.shape[p] for p in perm)
    return Layout(shape, shape, tuple(int(inverse[p]) for p in layout.perm))
