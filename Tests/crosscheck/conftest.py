"""Shared fixtures of the Python cross-checks (run by `make test` after the Swift build)."""
import functools
import os
import subprocess
import sys

import pytest

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SCM_BIN", os.path.join(ROOT, ".build", "debug"))
NODE_TESTS = os.environ.get("SCM_NODE_TESTS", os.path.join(ROOT, ".build", "onnx-node-tests"))
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def scm(tool, *args):
    """Runs one of our executables; returns the CompletedProcess (text mode)."""
    return subprocess.run([os.path.join(BIN, tool), *map(str, args)], capture_output=True, text=True, timeout=300)


@functools.cache
def ensure_node_tests():
    """Generates ONNX's node tests into NODE_TESTS once per session (a no-op when up to date)."""
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_onnx_node_tests.py"), NODE_TESTS], check=True,
                   capture_output=True)
    return NODE_TESTS


@pytest.fixture(scope="session")
def node_tests_dir():
    return ensure_node_tests()


def node_test_names():
    d = ensure_node_tests()
    return sorted(t for t in os.listdir(d) if os.path.exists(os.path.join(d, t, "model.onnx")))
