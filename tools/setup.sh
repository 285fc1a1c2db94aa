#!/usr/bin/env bash
# Installs what building and sampling need on a fresh Debian machine (run as root, or with sudo;
# idempotent, quick when done): libprotobuf-c-dev, libpng-dev, libopenblas-dev, pkg-config and
# zlib1g-dev to build; protobuf-c-compiler to regenerate the committed C code; dataset-fashion-mnist
# for training and evaluating on Fashion-MNIST; openssl for the service's TLS test to make its
# certificate; on x86-64, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user for the
# NEON kernels' harness (make kernel-check). The Python test stack is tools/setup_python.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(libprotobuf-c-dev protobuf-c-compiler libpng-dev libopenblas-dev pkg-config zlib1g-dev dataset-fashion-mnist openssl)
# x86-64: Debian's aarch64 cross compiler and qemu-user, for `make kernel-check`'s NEON harness.
if [ "$(uname -m)" = "x86_64" ]; then PKGS+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: ok (Debian packages)"
