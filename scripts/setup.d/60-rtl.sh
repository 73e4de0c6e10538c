#!/usr/bin/env bash
# Verilator (simulates the RTL PE lane in tests/rtl) and Yosys (synthesizes it for the resource counts);
# only with --test. Debian packages; `apt-get update` only when the install fails on a stale package list.
set -euo pipefail
[[ "${WITH_TESTS:-0}" == 1 ]] || exit 0
command -v verilator >/dev/null && command -v yosys >/dev/null && exit 0
command -v apt-get >/dev/null || { echo "verilator and yosys are needed for tests/rtl (no apt-get here)"; exit 1; }
SUDO=()
[[ $(id -u) == 0 ]] || SUDO=(sudo)
install() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes \
    apt-get install -y -q --no-install-recommends verilator yosys >/dev/null
}
install || { "${SUDO[@]}" apt-get update -q >/dev/null && install; }
