"""ONNX's backend node tests run through scm-infer (tools/conformance.py)."""
import os

import conformance
from conftest import BIN, ROOT


def test_node_conformance(node_tests_dir):
    skips = os.path.join(ROOT, "Tests", "crosscheck", "conformance_skips.tsv")
    results = conformance.run(os.path.join(BIN, "scm-infer"), node_tests_dir, skips)
    counts, text = conformance.report(results)
    print("\n" + text)
    assert counts["passed"] > 400, text
    assert counts["failed"] == 0, text
