#!/usr/bin/env bash
# The `fpga` featurizer backend: PYNQ 3.0.1 (the last release that installs on x86, where the simulated board
# runs; the same on a Zynq board). Installed with WITH_TESTS=0 and 1 alike: `--backend fpga` is a runtime feature.
#
# PYNQ goes into its own directory (.venv/opt/pynq, see brainwave/fpga/compat.py) with --no-deps: pynqutils
# 0.1.3 pins numpy<2.0 while TensorFlow 2.21 needs numpy>=2, and pip reports that conflict on every install
# if pynqutils sits in the environment. What we use of PYNQ works with numpy 2 given the one shim in
# compat.py. setuptools<=80 goes there too: PYNQ still imports pkg_resources, which later setuptools (that
# other packages require) no longer have. Its other requirements go into the environment: pycparser<3
# (pynq.lib imports pycparser.plyparser, gone in 3.0).
set -euo pipefail
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
PYNQ_DIR=$(.venv/bin/python -c 'from brainwave.fpga.compat import PYNQ_DIR; print(PYNQ_DIR)')
if [[ ! -d "$PYNQ_DIR/pynq" ]]; then
  "${PIP[@]}" --no-deps --target "$PYNQ_DIR" "pynq==3.0.1" "pynqutils==0.1.3" "pynqmetadata==0.2.0" \
    "setuptools==80.9.0"
fi
"${PIP[@]}" "cffi>=1.15" "pycparser<3" "nest_asyncio>=1.5" "tqdm>=4" "python-magic>=0.4.25" \
  "jsonschema>=3.2.0" "pydantic>=2.0" "ipython>=8"
.venv/bin/python - <<'PY'
import numpy
from brainwave.fpga.compat import import_pynq
pynq = import_pynq()
import pynq.lib  # noqa: F401  (Overlay imports the driver plugins)
from brainwave.npu.csim import load_library
load_library()  # the HLS kernel the simulated board runs, built now rather than on the first request
assert numpy.__version__.split(".")[0] == "2", numpy.__version__
print(f"pynq {pynq.__version__} with numpy {numpy.__version__}, C-sim kernel built: ok")
PY
