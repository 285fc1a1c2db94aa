"""The trainer's end-to-end tests run the release binaries (`make train-check`, after `make demo`
built them): training at debug speed would take the suite too long."""
import os
import sys

import numpy as np

# tools/ on the path: the shared package (scmtools) and the tool modules the tests import (crosscheck_ort).
sys.path.insert(0, os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")))
from scmtools import paths, proc  # noqa: E402

ROOT = paths.ROOT
BIN = paths.bin_dir("SCM_TRAIN_BIN", paths.RELEASE)


def scm(tool, *args):
    """Runs one of our executables; returns the CompletedProcess (text mode)."""
    return proc.scm(tool, *args, bin_dir=BIN, timeout=600)


def inside_checkerboard(x):
    """Which 2-D points [N, 2] fall in a filled cell of the 4 x 4 checkerboard on [-4, 4]^2."""
    i, j = np.floor((x[:, 0] + 4) / 2), np.floor((x[:, 1] + 4) / 2)
    return (i >= 0) & (i < 4) & (j >= 0) & (j < 4) & ((i + j) % 2 == 0)
