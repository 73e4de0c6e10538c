#!/usr/bin/env bash
# Set up, then serve a sample pipeline, score a real photo over gRPC and print the top-5.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python samples/quickstart.py "$@"
