#!/usr/bin/env python3
"""Checks what `make demo` wrote (run by `make demo-check`, part of `make test`):

    Tests/crosscheck/check_demo.py out/grid.png out/samples.npy

The demo draws 64 samples of models/tiny-trigflow.onnx in 2 steps with seed 0. samples.npy must
hold them as float32 [64, 1, 8, 8], equal to the reference sampler (trigflow_ref.py: NumPy +
onnxruntime, the documented noise generator) within the scm-run cross-checks' tolerance;
grid.png must be the 8 x 8 grid of those samples (82 x 82 gray pixels, 2-pixel padding) through
the documented pixel map. Exits 1 with a message on the first failure.
"""
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.realpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import trigflow_ref as ref  # noqa: E402

MODEL = os.path.join(ROOT, "models", "tiny-trigflow.onnx")
COUNT, STEPS, SEED, SHAPE = 64, 2, 0, (1, 8, 8)
TOL = 1e-4  # as Tests/crosscheck/test_sampler.py


def check(grid_path, npy_path):
    for path in (grid_path, npy_path):
        if not os.path.isfile(path):
            return f"{path} was not written"
    samples = np.load(npy_path)
    if samples.dtype != np.float32 or samples.shape != (COUNT, *SHAPE):
        return f"{npy_path}: {samples.dtype} {samples.shape}, expected float32 {(COUNT, *SHAPE)}"
    net = ref.Network(MODEL)
    expected = ref.consistency_sample(net, net.schedule(STEPS), ref.seeded_noise(SEED, STEPS, COUNT, SHAPE))
    err = float(np.abs(samples.astype(np.float64) - expected).max())
    if not err <= TOL:
        return f"{npy_path}: max abs error {err} against the reference sampler (bar {TOL})"
    img = Image.open(grid_path)
    if img.format != "PNG" or img.mode != "L" or img.size != (82, 82):
        return f"{grid_path}: {img.format} {img.mode} {img.size}, expected an 82 x 82 gray PNG"
    px = ref.pixels(samples, -1, 1)
    grid = np.zeros((82, 82), np.uint8)
    for i in range(COUNT):
        r, c = divmod(i, 8)
        grid[2 + r * 10: 10 + r * 10, 2 + c * 10: 10 + c * 10] = px[i, 0]
    if not np.array_equal(np.asarray(img), grid):
        return f"{grid_path}: pixels differ from the grid of {npy_path}"
    return None


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    problem = check(*sys.argv[1:])
    if problem:
        print(f"demo-check: FAILED: {problem}", file=sys.stderr)
        return 1
    print(f"demo-check: ok ({sys.argv[1]}: 8 x 8 grid of the 64 samples in {sys.argv[2]}, which match the reference sampler)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
