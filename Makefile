# The two commands the README opens with:
#   make demo   build (release) and inspect the committed tiny TrigFlow model
#   make test   everything the CI runs: Swift unit tests + Python cross-checks against onnx/onnxruntime
.PHONY: setup build demo test swift-test crosscheck node-tests bench bench-optimizer conformance clean

PY := .venv/bin/python

setup:
	@./tools/setup.sh

build: setup
	swift build

demo: setup
	swift build -c release --product scm-inspect
	.build/release/scm-inspect models/tiny-trigflow.onnx

swift-test: setup
	swift test

node-tests: setup
	$(PY) tools/gen_onnx_node_tests.py .build/onnx-node-tests

crosscheck: build node-tests
	$(PY) -m pytest -q -p no:cacheprovider Tests/crosscheck

test: swift-test crosscheck

# ONNX backend node tests through scm-infer: prints `conformance: N passed, M failed, K skipped`.
conformance: build node-tests
	$(PY) tools/conformance.py

# Our runtime vs onnxruntime on a TrigFlow UNet (release build; batch 1 and 64, 1 and 2 threads).
bench: setup
	swift build -c release --product scm-infer
	$(PY) tools/bench_runtime.py

# Unoptimized vs optimized 2-step sampling (release build; batch 1 and 64), onnxruntime alongside.
bench-optimizer: setup
	swift build -c release --product scm-infer
	swift build -c release --product scm-export
	$(PY) tools/bench_optimizer.py

clean:
	rm -rf .build
