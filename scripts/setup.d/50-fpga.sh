#!/usr/bin/env bash
# The `fpga` featurizer backend: PYNQ 3.0.1 (the last release that installs on x86, where the simulated board
# runs; the same on a Zynq board). Installed with WITH_TESTS=0 and 1 alike: `--backend fpga` is a runtime feature.
#
# --no-deps because pynqutils 0.1.3 pins numpy<2.0 while TensorFlow 2.21 needs numpy>=2; PYNQ's other
# requirements are installed explicitly below. What we use of PYNQ works with numpy 2 given the one shim in
# brainwave/fpga/compat.py (PynqBuffer.device). pycparser<3: pynq.lib imports pycparser.plyparser (gone in 3.0).
# setuptools<=80: pynq's declared bound (it still imports pkg_resources).
set -euo pipefail
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${PIP[@]}" --no-deps "pynq==3.0.1" "pynqutils==0.1.3" "pynqmetadata==0.2.0"
"${PIP[@]}" "setuptools<=80" "cffi>=1.15" "pycparser<3" "nest_asyncio>=1.5" "tqdm>=4" "python-magic>=0.4.25" \
  "jsonschema>=3.2.0" "pydantic>=2.0" "ipython>=8"
# The HLS kernel library the simulated board runs (also built on first use).
if command -v g++ >/dev/null && [[ -f hls/Makefile ]]; then
  make -s -C hls lib >/dev/null
fi
.venv/bin/python - <<'PY'
import numpy, pynq
from brainwave.fpga.compat import import_pynq
import_pynq()
import pynq.lib  # noqa: F401  (Overlay imports the driver plugins)
assert numpy.__version__.split(".")[0] == "2", numpy.__version__
print(f"pynq {pynq.__version__} with numpy {numpy.__version__}: ok")
PY
