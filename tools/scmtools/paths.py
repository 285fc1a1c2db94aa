"""Where things are: the repository root, the build folders and the project's binaries, computed
here once for every tool and test."""
import os

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOOLS = os.path.join(ROOT, "tools")
MODELS = os.path.join(ROOT, "models")
BUILD = os.path.join(ROOT, ".build")
DEBUG = os.path.join(BUILD, "debug")  # `swift build`
RELEASE = os.path.join(BUILD, "release")  # `swift build -c release` (make demo)
NODE_TESTS = os.path.join(BUILD, "onnx-node-tests")  # tools/gen_onnx_node_tests.py's output (make node-tests)
# scm-serve: its own package (Services/SamplingService), release build (make serve-check)
SERVE = os.path.join(ROOT, "Services", "SamplingService", ".build", "release", "scm-serve")
# Data files of the ONNX node-test conformance (tools/conformance.py and Tests/crosscheck/test_conformance.py)
CONFORMANCE_EXPECTED = os.path.join(ROOT, "Tests", "crosscheck", "conformance_expected.txt")
CONFORMANCE_SKIPS = os.path.join(ROOT, "Tests", "crosscheck", "conformance_skips.tsv")


def bin_dir(env=None, default=RELEASE):
    """The folder of the project's binaries: the environment variable `env` when set (binaries
    elsewhere, e.g. a copy while a build runs), else `default`."""
    return os.environ.get(env, default) if env else default


def binary(tool, bin_dir=None):
    """The path of the project binary `tool` (scm-run, scm-infer, ...) in `bin_dir` (default: RELEASE)."""
    return os.path.join(RELEASE if bin_dir is None else bin_dir, tool)
