#!/usr/bin/env python3
"""A crude quality figure for Fashion-MNIST samples until scm-eval exists (issue 14):
the Frechet distance between samples and the test set in the space of the training set's first
64 principal components (pixels in [-1, 1]), plus the same figure for 2000 training images as the
floor. Not a perceptual metric: compare runs with it, not with published FIDs.

    tools/pixel_fd.py SAMPLES.npy [--count 2000]
"""
import argparse
import gzip

import numpy as np

DIR = "/usr/share/datasets/fashion-mnist"


def images(split):
    with gzip.open(f"{DIR}/{split}-images-idx3-ubyte.gz") as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16)
    return data.reshape(-1, 784).astype(np.float64) / 127.5 - 1


def frechet(a, b):
    from numpy.linalg import eigvals
    mu = a.mean(0) - b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # trace(sqrt(ca cb)) from the eigenvalues of ca cb (real, non-negative up to rounding)
    tr = np.sum(np.sqrt(np.clip(eigvals(ca @ cb).real, 0, None)))
    return float(mu @ mu + np.trace(ca) + np.trace(cb) - 2 * tr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("samples")
    ap.add_argument("--count", type=int, default=2000)
    a = ap.parse_args()
    train, test = images("train"), images("t10k")
    mean = train.mean(0)
    _, _, vt = np.linalg.svd(train[:10000] - mean, full_matrices=False)
    basis = vt[:64].T
    project = lambda x: (x - mean) @ basis
    s = np.load(a.samples).reshape(-1, 784).astype(np.float64)[: a.count]
    ref = project(test[: a.count])
    print(f"samples: {len(s)}, PCA-64 Frechet distance to the test set: {frechet(project(s), ref):.2f}; "
          f"floor (training images): {frechet(project(train[:a.count]), ref):.2f}")


if __name__ == "__main__":
    main()
