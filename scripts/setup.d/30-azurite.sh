#!/usr/bin/env bash
# Azurite (the Azure Storage emulator, npm package `azurite`) for the registry tests; only with --test.
set -euo pipefail
[[ "${WITH_TESTS:-0}" == 1 ]] || exit 0
if [[ ! -x .azurite/node_modules/.bin/azurite-blob ]]; then
  command -v npm >/dev/null || { echo "npm is needed to install Azurite (apt-get install nodejs npm)"; exit 1; }
  npm install --silent --no-audit --no-fund --prefix .azurite "azurite@3"
fi
