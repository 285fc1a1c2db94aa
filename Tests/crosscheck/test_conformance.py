"""ONNX's backend node tests run through scm-infer (tools/conformance.py), with three gates:

- the expected set (conformance_expected.txt): every listed test passes, every passing test is
  listed; listed tests run even when scm-infer stops listing their op, so dropping an op from the
  registry fails here instead of shrinking the run (and conformance_skips.tsv for the skips);
- thread counts: every passing test gives bitwise the same outputs at 1, 2 and 3 threads (the 2-
  and 3-thread runs spread every loop of two or more chunks over the threads: node tests are below
  the runtime's default threshold and would otherwise run on one thread);
- batches: every passing test whose model maps samples to samples along axis 0 (decided by ONNX's
  reference evaluator on the test's data, never by our runtime) gives its sample's rows bitwise
  equal alone and stacked with random samples, in a batch of 3 at 1 and 2 threads and in a large
  batch (2^17 elements, at most 4096 samples) at 2 threads. Tests the model does not batch along
  axis 0 are left out by reason, which batch_summary prints with the covered ops: ops that change
  axis 0 (Concat/Split/Slice/Flatten/Transpose/Shape/Reshape along it, full reductions, Gemm with
  transA, Unsqueeze at 0), shape inputs that pin it (Resize sizes, Reshape shapes, Expand shapes),
  and ops that normalize across it (Softmax/LogSoftmax axis 0, LayerNormalization axis 0, MVN).

All three come from one pass (one pool of workers, like tools/conformance.py -j).
"""
import os

import pytest

import conformance
from conftest import BIN
from scmtools.paths import CONFORMANCE_EXPECTED as EXPECTED, CONFORMANCE_SKIPS as SKIPS


@pytest.fixture(scope="module")
def sweep(node_tests_dir):
    results = conformance.run(os.path.join(BIN, "scm-infer"), node_tests_dir, SKIPS, expected_file=EXPECTED,
                              threads=(1, 2, 3), batch=True)
    counts, text = conformance.report(results)
    print("\n" + text + "\n" + conformance.batch_summary(results, node_tests_dir))
    return results, counts, text


def test_node_conformance(sweep):
    results, counts, text = sweep
    assert counts["failed"] == 0, text
    expected = conformance.load_expected(EXPECTED)
    assert {n for n, r in results.items() if r.status == "passed"} == expected, text


def test_thread_count_invariance(sweep):
    results, counts, text = sweep
    differ = {n: r.threads_reason for n, r in results.items() if r.threads == "differ"}
    assert not differ, text
    compared = {n for n, r in results.items() if r.threads == "equal"}
    assert compared == {n for n, r in results.items() if r.status == "passed"}, text


def test_batch_invariance(sweep, node_tests_dir):
    results, counts, text = sweep
    differ = {n: r.batch_reason for n, r in results.items() if r.batch == "differ"}
    assert not differ, text
    # every passing test was either compared in a batch or left out with a reason
    passed = {n for n, r in results.items() if r.status == "passed"}
    assert {n for n, r in results.items() if r.batch in ("equal", "skipped")} == passed, text
    assert all(r.batch_reason for r in results.values() if r.batch == "skipped")
