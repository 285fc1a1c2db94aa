# The two commands the README opens with:
#   make demo   build (release) and draw a 2-step grid of 100 garments from the shipped Fashion-MNIST
#               consistency model (models/fashion-scd.onnx); needs only the Debian packages
#   make test   everything the CI runs: Swift unit tests, Python cross-checks against onnx/onnxruntime,
#               the Examples/ package that embeds the library, `make demo` itself, the allocation
#               check of an optimized build, the trainer and the service end to end, the README's
#               quickstart as written, idle CPU, TSan and fuzzing
.PHONY: setup-python docs-check size-check serve-check load-test kernel-check crosscheck-avx2 setup build demo demo-check alloc-check train-check fuzz-check tsan-check idle-check test swift-test crosscheck node-tests example bench bench-runtime bench-optimizer bench-sampler bench-train conformance quality clean

PY := .venv/bin/python

# Debian packages (what building and sampling need); the Python stack of the tests and benchmarks.
setup:
	@./tools/setup.sh

setup-python: setup
	@./tools/setup_python.sh

build: setup
	swift build

demo: setup
	swift build -c release
	mkdir -p out
	.build/release/scm-run models/fashion-scd.onnx --steps 2 --count 100 --out out/grid.png --npy out/samples.npy

swift-test: setup
	swift test

node-tests: setup-python
	$(PY) tools/gen_onnx_node_tests.py .build/onnx-node-tests

crosscheck: build node-tests
	$(PY) -m pytest -q -p no:cacheprovider Tests/crosscheck

# The cross-checks that run convolutions, again with the AVX2 kernel family forced (on an AVX-512
# machine the default family is AVX-512; a CPU without AVX2 falls back to portable).
crosscheck-avx2: build
	SCM_KERNELS_ISA=avx2 $(PY) -m pytest -q -p no:cacheprovider Tests/crosscheck/test_runtime.py Tests/crosscheck/test_sampler.py \
	  Tests/crosscheck/test_torch_models.py Tests/crosscheck/test_backward_ops.py Tests/crosscheck/test_training.py

# The example package depends on the library by path; it must build and write its PNG.
example:
	swift build --package-path Examples
	Examples/.build/debug/sample-grid models/tiny-trigflow.onnx .build/example-grid.png
	test -s .build/example-grid.png

# `make demo` as a user runs it (release build), from scratch: its grid and samples must appear and
# match the reference sampler (Tests/crosscheck/check_demo.py), and it builds every CLI the README
# documents.
demo-check: setup-python
	rm -f out/grid.png out/samples.npy
	$(MAKE) --no-print-directory demo
	$(PY) Tests/crosscheck/check_demo.py out/grid.png out/samples.npy
	@for t in scm-run scm-export scm-inspect scm-infer scm-train scm-eval; do test -x .build/release/$$t || { echo "make demo did not build $$t"; exit 1; }; done

# Heap allocations of Session.run(_:into:), counted in an optimized build (Tests/AllocCheck);
# shares the release build of the library with `make demo`.
alloc-check: setup
	swift build -c release --product scm-alloc-check
	.build/release/scm-alloc-check

# The trainer end to end with the release binaries `make demo` built (Tests/train): a minute of
# sCT on the checkerboard must put 85% of 2-step samples in the cells; resume, kill, NaN, errors.
train-check: demo setup-python
	$(PY) -m pytest -q -p no:cacheprovider Tests/train

# libFuzzer + AddressSanitizer over model loading, verification, compilation and a run
# (tools/fuzz.sh, its own build in .build/fuzz) for FUZZ_SECONDS; a finding fails it.
FUZZ_SECONDS ?= 60
fuzz-check: setup
	tools/fuzz.sh $(FUZZ_SECONDS)

# The concurrency stress test (16 concurrent sample calls, bitwise equal to sequential runs)
# under Thread Sanitizer, in its own build (.build/tsan); any report fails it.
tsan-check: setup
	swift build --build-tests --sanitize=thread --scratch-path .build/tsan
	TSAN_OPTIONS=halt_on_error=1 swift test --skip-build --sanitize=thread --scratch-path .build/tsan --filter ConcurrencyStressTests

# CPU use of an idle process holding a sampler with worker threads, and between its requests
# (Tests/IdleCheck); shares the release build of `make demo`.
idle-check: setup
	swift build -c release --product scm-idle-check
	.build/release/scm-idle-check models/tiny-trigflow.onnx

# scm-serve (Services/SamplingService: its own package, depending on the library by path) in a
# release build, then Tests/serve: endpoints, bytes equal to scm-run alone and coalesced,
# 400/413/429/503, graceful SIGTERM. `make load-test`: the load table (tools/load_test.py, wrk),
# then the fault phases (tools/load_faults.py: idle and slowloris clients, a descriptor limit,
# many queues), which exit 1 when a bar is missed.
serve-check: demo setup-python
	swift build -c release --package-path Services/SamplingService
	$(PY) -m pytest -q -p no:cacheprovider Tests/serve

load-test: demo setup-python
	swift build -c release --package-path Services/SamplingService
	$(PY) tools/load_test.py
	$(PY) tools/load_faults.py

# The README's quickstart, run as written (tools/check_quickstart.py): every sh block of its
# Quickstart section from the repository's root, the Swift snippet compared with the example
# package it is taken from; what the blocks create is removed afterwards.
docs-check: demo setup-python
	$(PY) tools/check_quickstart.py

test: size-check kernel-check swift-test crosscheck crosscheck-avx2 example demo-check alloc-check train-check serve-check docs-check idle-check tsan-check fuzz-check

# The C kernels' harness (Tests/kernels/kernel_harness.c): every kernel family this CPU has
# (portable, AVX2, AVX-512) on random convolution, Winograd, weight-gradient and pointwise cases,
# against a naive reference, the portable family, and itself over thread counts 1-3 and batch
# sizes. Built straight from the kernel sources with clang (the compiler SwiftPM uses; cc gets
# -ffp-contract=off, the contraction rule the sources' FP_CONTRACT pragmas state for clang).
# Then, where Debian's aarch64 cross compiler and qemu-user are installed (tools/setup.sh installs
# them on x86-64), the same harness for arm64 (portable and NEON) under qemu-aarch64.
KCC := $(shell command -v clang >/dev/null 2>&1 && echo clang || echo cc -ffp-contract=off)
KSRC := -ISources/CKernels/include -ISources/CKernels Sources/CKernels/*.c Tests/kernels/kernel_harness.c -lm
kernel-check: setup
	@mkdir -p .build/kernels
	@rm -f .build/kernels/*.conv
	$(KCC) -O2 -pthread $(KSRC) -o .build/kernels/kernel_harness
	SCM_KERNEL_HARNESS_KEEP=.build/kernels .build/kernels/kernel_harness
	@if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then \
	  echo "arm64 (aarch64-linux-gnu-gcc, qemu-aarch64):"; \
	  aarch64-linux-gnu-gcc -O2 -ffp-contract=off -pthread $(KSRC) -o .build/kernels/kernel_harness_arm64 && \
	  SCM_KERNEL_HARNESS_KEEP=.build/kernels qemu-aarch64 -L /usr/aarch64-linux-gnu .build/kernels/kernel_harness_arm64 && \
	  if [ -f .build/kernels/avx2.conv ]; then \
	    cmp -s .build/kernels/avx2.conv .build/kernels/neon.conv && echo "neon vs avx2 (convolutions): bitwise equal" || \
	    { echo "neon vs avx2 (convolutions): FAIL, not bitwise equal"; exit 1; }; fi; \
	elif [ "$$(uname -m)" = x86_64 ]; then echo "kernel-check: aarch64-linux-gnu-gcc or qemu-aarch64 missing (tools/setup.sh installs them on x86-64)"; exit 1; \
	else echo "kernel-check: no aarch64 cross tools on $$(uname -m): the NEON family is checked on x86-64 hosts"; fi

# ONNX backend node tests through scm-infer: prints `conformance: N passed, M failed, K skipped`,
# then the thread (1/2/3) and batch invariance sweeps over the passing tests (tools/conformance.py -h).
conformance: build node-tests
	$(PY) tools/conformance.py

# Whole 1/2/4-step sampling, batch 1 and 64, 2 threads: scm-run vs onnxruntime and OpenVINO (f32
# and bf16) on the same files in the same run (tools/bench.py: images/s, ratios, GFLOP/s and its
# share of an FMA-loop peak; then bf16 accuracy), then one sCT training step at batch 64. Runs in
# its own venv, .venv-bench (tools/setup_bench.sh), so OpenVINO stays out of `make test`'s .venv.
# `make bench-runtime`: one network evaluation via scm-infer.
bench: setup
	swift build -c release
	@./tools/setup_bench.sh
	.venv-bench/bin/python tools/bench.py

bench-runtime: setup-python
	swift build -c release --product scm-infer
	$(PY) tools/bench_runtime.py

# Unoptimized vs optimized 2-step sampling (release build; batch 1 and 64), onnxruntime alongside.
bench-optimizer: setup-python
	swift build -c release --product scm-infer
	swift build -c release --product scm-export
	$(PY) tools/bench_optimizer.py

# Images/s of 1-, 2- and 4-step sampling at batch 64 (release build), onnxruntime alongside.
bench-sampler: setup-python
	swift build -c release
	$(PY) tools/bench_sampler.py

# One compiled sCT training step of a 32/64/64 UNet at batch 64: seconds, FLOPs, GFLOP/s, arena bytes.
bench-train: setup-python
	swift build -c release --product scm-infer
	swift build -c release --product scm-export
	$(PY) tools/bench_train.py

# The quality tables of models/README.md, regenerated from the shipped models (release build):
# scm-run then scm-eval per row, 10,000 samples each: the demo's sCD model against the default-UNet
# flow model's PF-ODE (about 1.5 hours on 2 cores, mostly Heun 32 and 64), the small sCT and flow
# models (about 40 minutes), the checkerboard (seconds).
quality: demo setup-python
	$(PY) tools/quality_table.py fashion --sct models/fashion-scd.onnx --flow models/fashion-flow-default.onnx
	$(PY) tools/quality_table.py fashion
	$(PY) tools/quality_table.py checkerboard

# The repository stays small: no checkpoint, no tracked file over 6 MiB outside models/ and
# Tests/fixtures/, the tracked tree under 80 MB (tools/check_tree_size.sh).
size-check:
	@./tools/check_tree_size.sh

clean:
	rm -rf .build Examples/.build Services/SamplingService/.build
