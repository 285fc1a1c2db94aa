"""Shared fixtures of the Python cross-checks (run by `make test` after the Swift build)."""
import functools
import os
import subprocess
import sys

import pytest

# tools/ on the path: the shared package (scmtools) and the tool modules the tests import (make_tiny_model,
# conformance, crosscheck_ort).
sys.path.insert(0, os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")))
from scmtools import paths, proc  # noqa: E402

ROOT = paths.ROOT
BIN = paths.bin_dir("SCM_BIN", paths.DEBUG)
NODE_TESTS = os.environ.get("SCM_NODE_TESTS", paths.NODE_TESTS)


def scm(tool, *args):
    """Runs one of our executables; returns the CompletedProcess (text mode)."""
    return proc.scm(tool, *args, bin_dir=BIN, timeout=300)


@functools.cache
def ensure_node_tests():
    """Generates ONNX's node tests into NODE_TESTS once per session (a no-op when up to date)."""
    subprocess.run([sys.executable, os.path.join(paths.TOOLS, "gen_onnx_node_tests.py"), NODE_TESTS], check=True,
                   capture_output=True)
    return NODE_TESTS


@pytest.fixture(scope="session")
def node_tests_dir():
    return ensure_node_tests()


def node_test_names():
    d = ensure_node_tests()
    return sorted(t for t in os.listdir(d) if os.path.exists(os.path.join(d, t, "model.onnx")))
