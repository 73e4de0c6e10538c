#!/usr/bin/env bash
# Provide debian:bookworm-slim to a Docker engine that cannot reach an image registry: debootstrap a minimal
# bookworm root filesystem from this machine's own Debian mirror, slim it as the official image is slimmed
# (no docs, man pages, locales or apt lists), and `docker import` it under that tag. The root filesystem
# tarball is cached, so only the first run on a machine pays for debootstrap; later runs only import it.
#
#   deploy/docker/base-image.sh [TAG]        (default TAG: debian:bookworm-slim; needs root and debootstrap)
#
# Cache: $BRAINWAVE_IMAGE_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/brainwave/images.
set -euo pipefail
TAG="${1:-debian:bookworm-slim}"
CACHE="${BRAINWAVE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/brainwave/images}"
TARBALL="$CACHE/debian-bookworm-minbase.tar"

docker image inspect "$TAG" >/dev/null 2>&1 && exit 0

# The mirror apt already uses here (deb822 or one-line sources), so the image is built from the same archive.
mirror() {
  local uri
  uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1)
  [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [[ -n $uri ]] || { echo "no Debian mirror found in this machine's apt sources" >&2; exit 1; }
  echo "$uri"
}

if [[ ! -s $TARBALL ]]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is needed to make $TAG (apt-get install debootstrap)" >&2; exit 1; }
  mkdir -p "$CACHE"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  chmod 755 "$rootfs"  # it becomes the image's /: mktemp's 700 would lock every other user out
  debootstrap --variant=minbase bookworm "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1 \
    || { tail -n 5 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
         "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  tar --numeric-owner -C "$rootfs" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
fi
docker import --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$TARBALL" "$TAG" >/dev/null
