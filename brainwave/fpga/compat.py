"""Import PYNQ 3.0.1 and make it work with numpy 2 (what TensorFlow 2.21 needs).

pynq 3.0.1 (the last release with x86 support) predates numpy 2. One incompatibility matters to us:
numpy 2's `ndarray.device` (array API) is a read-only attribute, and `pynq.buffer.PynqBuffer.__new__` and
`__array_finalize__` assign `self.device`, so every `pynq.allocate` raises AttributeError. A plain class
attribute `device` on PynqBuffer shadows numpy's read-only descriptor, so the assignment lands in the
instance dict and PYNQ's own code runs unchanged.

PYNQ lives in its own directory, PYNQ_DIR (scripts/setup.d/50-fpga.sh installs it there with pip --target):
pynqutils declares numpy<2.0, and installed beside TensorFlow it makes pip print a dependency-conflict error on
every later install. Out of pip's sight it does not, and it is put on sys.path only when the fpga backend
imports it.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

PYNQ_DIR = Path(sys.prefix) / "opt" / "pynq"


def import_pynq():
    if PYNQ_DIR.is_dir() and str(PYNQ_DIR) not in sys.path:
        sys.path.append(str(PYNQ_DIR))  # appended: the environment's own numpy and friends come first
    try:
        with warnings.catch_warnings():  # PYNQ imports pkg_resources, which announces its own deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            import pynq
            import pynq.buffer
            import pynq.lib  # noqa: F401 - Overlay needs the driver plugins; imported here, inside the filter
    except ImportError as exc:
        raise ImportError(f"PYNQ is not installed ({exc}); run scripts/setup.d/50-fpga.sh") from exc
    if "device" not in pynq.buffer.PynqBuffer.__dict__:
        pynq.buffer.PynqBuffer.device = None
    return pynq
