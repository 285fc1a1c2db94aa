#!/usr/bin/env bash
# The Python stack of the tests and benchmarks (never used by the product): a local venv at .venv
# with pinned onnx, onnxruntime, numpy, pytest and Pillow. Idempotent, quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."

PY_REQS=(onnx==1.23.2 onnxruntime==1.31.1 "numpy>=2,<3" pytest==9.0.3 pillow==13.0.0)
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import onnx, onnxruntime, numpy, pytest, PIL" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "${PY_REQS[@]}"
fi
echo "setup: ok ($(.venv/bin/python -c 'import onnx, onnxruntime; print("onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__)'))"
