#!/usr/bin/env bash
# Set up the project on a fresh machine: .venv/ with the package, its data and the native libraries. Idempotent.
#   scripts/setup.sh          runtime (demo)
#   scripts/setup.sh --test   runtime + test tools (tensorflow-serving-api client, Azurite, Verilator/Yosys...)
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TESTS=0
[[ "${1:-}" == "--test" ]] && WITH_TESTS=1

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24"

echo "==> installing brainwave and its dependencies (TensorFlow is large: the first run takes a few minutes)"
# PYTHONWARNINGS: setuptools' editable-install notice is a warning printed through pip; it is not ours to act on.
if [[ $WITH_TESTS == 1 ]]; then
  PYTHONWARNINGS=ignore "${PIP[@]}" install -q -e ".[serve,test]"
  # The official TF Serving client, used by the compatibility tests. --no-deps: it only needs
  # TensorFlow's protos, and its declared tensorflow pin would pull a second (GPU) TensorFlow.
  "${PIP[@]}" install -q --no-deps "tensorflow-serving-api==2.21.0"
else
  PYTHONWARNINGS=ignore "${PIP[@]}" install -q -e ".[serve]"
fi
for hook in scripts/setup.d/*.sh; do
  [[ -e "$hook" ]] || continue
  echo "==> $(basename "$hook" .sh)"
  WITH_TESTS=$WITH_TESTS bash "$hook"
done
echo "==> setup done"
