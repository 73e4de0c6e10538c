#!/usr/bin/env bash
# Set up the project on a fresh machine: .venv/ with the package and its data. Idempotent.
#   scripts/setup.sh          runtime (demo)
#   scripts/setup.sh --test   runtime + test tools (tensorflow-serving-api client, Azurite, HLS C-sim build)
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
if [[ $WITH_TESTS == 1 ]]; then
  "${PIP[@]}" install -q -e ".[test]"
  # The official TF Serving client, used by the compatibility tests. --no-deps: it only needs
  # TensorFlow's protos, and its declared tensorflow pin would pull a second (GPU) TensorFlow.
  "${PIP[@]}" install -q --no-deps "tensorflow-serving-api==2.21.0"
else
  "${PIP[@]}" install -q -e .
fi
for hook in scripts/setup.d/*.sh; do
  [[ -e "$hook" ]] || continue
  echo "==> $(basename "$hook" .sh)"
  WITH_TESTS=$WITH_TESTS bash "$hook"
done
echo "==> setup done"
