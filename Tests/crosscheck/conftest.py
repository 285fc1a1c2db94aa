"""Shared fixtures of the Python cross-checks (run by `make test` after the Swift build)."""
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


@pytest.fixture(scope="session")
def node_tests_dir():
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_onnx_node_tests.py"), NODE_TESTS], check=True,
                   capture_output=True)
    return NODE_TESTS


def node_test_names():
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_onnx_node_tests.py"), NODE_TESTS], check=True,
                   capture_output=True)
    return sorted(d for d in os.listdir(NODE_TESTS) if os.path.exists(os.path.join(NODE_TESTS, d, "model.onnx")))
