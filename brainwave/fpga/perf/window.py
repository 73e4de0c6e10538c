"""Which input cells and rows the window of a CONV2D or a pool reads (shared by the v1 and v2 costs)."""
from __future__ import annotations

from brainwave.npu.isa import Instruction


def _taps_per_output(n_out: int, k: int, s: int, p: int, n_in: int) -> list[int]:
    """Per output position along one axis: the window cells that fall inside the input."""
    return [sum(1 for kk in range(k) if 0 <= o * s - p + kk < n_in) for o in range(n_out)]


def tap_count(d: Instruction) -> int:
    """Sum over output pixels of the taps inside the input (the axes are independent)."""
    ys = _taps_per_output(d.out_h, d.kernel_h, d.stride_h, d.pad_top, d.in_h)
    xs = _taps_per_output(d.out_w, d.kernel_w, d.stride_w, d.pad_left, d.in_w)
    return sum(ys) * sum(xs)


def _row_is_read(d: Instruction, iy: int) -> bool:
    for ky in range(d.kernel_h):
        v = iy + d.pad_top - ky  # output row x stride, if tap row ky of some window lands on input row iy
        if v >= 0 and v % d.stride_h == 0 and v // d.stride_h < d.out_h:
            return True
    return False


def touched_rows(d: Instruction) -> list[bool]:
    """Per input row: whether any window reads it (rows a stride skips are never fetched)."""
    return [_row_is_read(d, iy) for iy in range(d.in_h)]
