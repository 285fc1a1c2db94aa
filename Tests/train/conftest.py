"""The trainer's end-to-end tests run the release binaries (`make train-check`, after `make demo`
built them): training at debug speed would take the suite too long."""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SCM_TRAIN_BIN", os.path.join(ROOT, ".build", "release"))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def scm(tool, *args):
    """Runs one of our executables; returns the CompletedProcess (text mode)."""
    return subprocess.run([os.path.join(BIN, tool), *map(str, args)], capture_output=True, text=True, timeout=600)


def inside_checkerboard(x):
    """Which 2-D points [N, 2] fall in a filled cell of the 4 x 4 checkerboard on [-4, 4]^2."""
    i, j = np.floor((x[:, 0] + 4) / 2), np.floor((x[:, 1] + 4) / 2)
    return (i >= 0) & (i < 4) & (j >= 0) & (j < 4) & ((i + j) % 2 == 0)
