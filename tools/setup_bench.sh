#!/usr/bin/env bash
# The Python venv of `make bench` only, at .venv-bench: numpy, onnx and onnxruntime at the pins of
# tools/setup_python.sh (read from its PY_REQS line, so the two never drift) plus OpenVINO, the second peer
# of tools/bench.py, and matplotlib for tools/training_curve.py's plots. Kept out of .venv so that `make test` never installs or imports OpenVINO.
# Idempotent: a stamp of the requirements it installed makes a second call take well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

OPENVINO=openvino==2026.4.1
MATPLOTLIB=matplotlib==3.11.2
eval "$(grep '^PY_REQS=' tools/setup_python.sh)"
REQS=()
for r in "${PY_REQS[@]}"; do
  case "$r" in onnx==*|onnxruntime==*|numpy*) REQS+=("$r") ;; esac
done
[ ${#REQS[@]} -eq 3 ] || { echo "setup_bench: expected onnx, onnxruntime and numpy in tools/setup_python.sh's PY_REQS" >&2; exit 1; }
REQS+=("$OPENVINO" "$MATPLOTLIB")

VENV=.venv-bench
STAMP="$VENV/.bench-reqs"
want="${REQS[*]}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
versions() { "$VENV/bin/python" -c 'import onnx, onnxruntime, numpy, openvino, matplotlib; print("onnxruntime", onnxruntime.__version__, "openvino", openvino.__version__)' 2>/dev/null; }
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ] || ! got="$(versions)"; then
  "$VENV/bin/pip" install -q --disable-pip-version-check "${REQS[@]}"
  echo "$want" > "$STAMP"
  got="$(versions)"
fi
echo "setup_bench: ok ($got)"
