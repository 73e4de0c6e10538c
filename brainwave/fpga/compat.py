"""Import PYNQ 3.0.1 and make it work with numpy 2 (what TensorFlow 2.21 needs).

pynq 3.0.1 (the last release with x86 support) predates numpy 2. One incompatibility matters to us:
numpy 2's `ndarray.device` (array API) is a read-only attribute, and `pynq.buffer.PynqBuffer.__new__` and
`__array_finalize__` assign `self.device`, so every `pynq.allocate` raises AttributeError. A plain class
attribute `device` on PynqBuffer shadows numpy's read-only descriptor, so the assignment lands in the
instance dict and PYNQ's own code runs unchanged. (Installing: scripts/setup.d/50-fpga.sh.)
"""
from __future__ import annotations


def import_pynq():
    try:
        import pynq
        import pynq.buffer
    except ImportError as exc:
        raise ImportError(f"PYNQ is not installed ({exc}); run scripts/setup.d/50-fpga.sh") from exc
    if "device" not in pynq.buffer.PynqBuffer.__dict__:
        pynq.buffer.PynqBuffer.device = None
    return pynq
