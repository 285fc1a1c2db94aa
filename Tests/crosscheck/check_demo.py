#!/usr/bin/env python3
"""Checks what `make demo` wrote (run by `make demo-check`, part of `make test`):

    Tests/crosscheck/check_demo.py out/grid.png out/samples.npy

The demo draws 100 samples of the shipped Fashion-MNIST consistency model
(models/fashion-scd.onnx) in 2 steps with seed 0. samples.npy must hold them as float32
[100, 1, 28, 28], equal to the reference sampler (trigflow_ref.py: NumPy + onnxruntime, the
documented noise generator) within the scm-run cross-checks' tolerance (plus onnxruntime's own
spread between its optimized and unoptimized graphs on this machine); grid.png must be the
10 x 10 grid of those samples (302 x 302 gray pixels, 2-pixel padding) through the documented pixel
map; and the shipped classifier (models/fashion-classifier.onnx, run by onnxruntime) must find
garments of all ten classes among them. Exits 1 with a message on the first failure.
"""
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")))
from scmtools import trigflow_ref as ref  # noqa: E402
from scmtools.onnxrt import ort_session  # noqa: E402
from scmtools.paths import MODELS  # noqa: E402

MODEL = os.path.join(MODELS, "fashion-scd.onnx")
CLASSIFIER = os.path.join(MODELS, "fashion-classifier.onnx")
COUNT, STEPS, SEED, SHAPE = 100, 2, 0, (1, 28, 28)
COLUMNS, PAD = 10, 2
SIDE = PAD + COLUMNS * (SHAPE[1] + PAD)
TOL = 1e-4  # as Tests/crosscheck/test_sampler.py
CLASS_COUNTS = None


def check(grid_path, npy_path):
    for path in (grid_path, npy_path):
        if not os.path.isfile(path):
            return f"{path} was not written"
    samples = np.load(npy_path)
    if samples.dtype != np.float32 or samples.shape != (COUNT, *SHAPE):
        return f"{npy_path}: {samples.dtype} {samples.shape}, expected float32 {(COUNT, *SHAPE)}"
    net = ref.Network(MODEL)
    noise = ref.seeded_noise(SEED, STEPS, COUNT, SHAPE)
    expected = ref.consistency_sample(net, net.schedule(STEPS), noise).astype(np.float64)
    # onnxruntime's own float32 rounding: the same sampler on its unoptimized graph. Two chained
    # evaluations of the 1.28 M-parameter network carry a first-step difference through the second,
    # and on some CPUs onnxruntime's two graphs disagree by a sizeable part of TOL at a pixel
    # (4.6e-5 on an AVX-512 Xeon); the bar adds that spread to TOL instead of calling it ours.
    unoptimized = ref.Network(MODEL, optimize=False)
    plain = ref.consistency_sample(unoptimized, unoptimized.schedule(STEPS), noise).astype(np.float64)
    spread = float(np.abs(expected - plain).max())
    err = float(np.abs(samples.astype(np.float64) - expected).max())
    if not err <= TOL + spread:
        return (f"{npy_path}: max abs error {err} against the reference sampler (bar {TOL} + {spread:.3g}, "
                f"onnxruntime's own spread between its optimized and unoptimized graphs)")
    img = Image.open(grid_path)
    if img.format != "PNG" or img.mode != "L" or img.size != (SIDE, SIDE):
        return f"{grid_path}: {img.format} {img.mode} {img.size}, expected a {SIDE} x {SIDE} gray PNG"
    px = ref.pixels(samples, -1, 1)
    grid = np.zeros((SIDE, SIDE), np.uint8)
    cell = SHAPE[1] + PAD
    for i in range(COUNT):
        r, c = divmod(i, COLUMNS)
        grid[PAD + r * cell: PAD + r * cell + SHAPE[1], PAD + c * cell: PAD + c * cell + SHAPE[2]] = px[i, 0]
    if not np.array_equal(np.asarray(img), grid):
        return f"{grid_path}: pixels differ from the grid of {npy_path}"
    session = ort_session(CLASSIFIER, 1, inter_threads=1)
    logits = session.run(["logits"], {"x": np.clip(samples, -1, 1)})[0]
    counts = np.bincount(logits.argmax(axis=1), minlength=10)
    if not (counts > 0).all():
        names = ref.metadata(CLASSIFIER)["scm.classes"].split(",")
        missing = [names[k] for k in range(10) if counts[k] == 0]
        return f"{npy_path}: the classifier finds no {', '.join(missing)} among the {COUNT} samples (per class: {counts.tolist()})"
    global CLASS_COUNTS
    CLASS_COUNTS = counts.tolist()
    return None


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    problem = check(*sys.argv[1:])
    if problem:
        print(f"demo-check: FAILED: {problem}", file=sys.stderr)
        return 1
    print(f"demo-check: ok ({sys.argv[1]}: {COLUMNS} x {COLUMNS} grid of the {COUNT} samples in {sys.argv[2]}, which match "
          f"the reference sampler; the classifier's count per class: {CLASS_COUNTS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
