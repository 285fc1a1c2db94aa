#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine (run as root; idempotent, quick when done).
#   - Debian packages: libprotobuf-c-dev (runtime), protobuf-c-compiler (protoc-c, to regenerate C code),
#     libpng-dev, libopenblas-dev.
#   - A local Python venv at .venv with onnx, onnxruntime, numpy, pytest and Pillow for cross-check tests (never used by
#     the product itself).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(libprotobuf-c-dev protobuf-c-compiler libpng-dev libopenblas-dev pkg-config zlib1g-dev dataset-fashion-mnist)
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

PY_REQS=(onnx==1.23.2 onnxruntime==1.31.1 "numpy>=2,<3" pytest==9.0.3 pillow==13.0.0)
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import onnx, onnxruntime, numpy, pytest, PIL" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "${PY_REQS[@]}"
fi
echo "setup: ok ($(.venv/bin/python -c 'import onnx, onnxruntime; print("onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__)'))"
