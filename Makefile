# The two commands the README opens with:
#   make demo   build (release) and inspect the committed tiny TrigFlow model
#   make test   everything the CI runs: Swift unit tests + Python cross-checks against onnx/onnxruntime
.PHONY: setup build demo test swift-test crosscheck node-tests clean

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

clean:
	rm -rf .build
