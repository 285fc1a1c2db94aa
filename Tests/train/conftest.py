"""The trainer's end-to-end tests run the release binaries (`make train-check`, after `make demo`
built them): training at debug speed would take the suite too long."""
import os
import subprocess
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SCM_TRAIN_BIN", os.path.join(ROOT, ".build", "release"))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def scm(tool, *args):
    """Runs one of our executables; returns the CompletedProcess (text mode)."""
    return subprocess.run([os.path.join(BIN, tool), *map(str, args)], capture_output=True, text=True, timeout=600)
