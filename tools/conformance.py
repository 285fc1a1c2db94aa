#!/usr/bin/env python3
"""ONNX backend node tests through our runtime.

    tools/conformance.py [--bin .build/debug] [--tests .build/onnx-node-tests] [--skips FILE] [-j N]

Runs every node test whose ops are all supported (`scm-infer --list-ops`) through `scm-infer`,
compares each output with the test's expected output as ONNX's runner does (rtol 1e-3,
atol 1e-7 for floats, exact otherwise, same dtype and shape) and prints

    conformance: N passed, M failed, K skipped

followed by the failures and skips with their reasons. A test is skipped when scm-infer exits
with status 3 (a documented unsupported dtype, attribute or mode). With --skips, each skip must
be listed in FILE (test name, tab, reason) and each listed test must still be skipped; any
mismatch is reported as a failure. Exit status 1 when anything failed.
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))


def supported_ops(binary):
    out = subprocess.run([binary, "--list-ops"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def candidates(tests_dir, ops):
    names = []
    for t in sorted(os.listdir(tests_dir)):
        p = os.path.join(tests_dir, t, "model.onnx")
        if not os.path.exists(p):
            continue
        m = onnx.load(p, load_external_data=False)
        used = {n.op_type for n in m.graph.node if n.domain in ("", "ai.onnx")}
        if used and used <= ops and all(n.domain in ("", "ai.onnx") for n in m.graph.node):
            names.append(t)
    return names


def compare(expected, actual):
    if expected.dtype != actual.dtype:
        return f"dtype {actual.dtype}, expected {expected.dtype}"
    if expected.shape != actual.shape:
        return f"shape {actual.shape}, expected {expected.shape}"
    if np.issubdtype(expected.dtype, np.floating):
        try:
            np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-7)
        except AssertionError as e:
            return " ".join(str(e).split())[:300]
    elif not np.array_equal(expected, actual):
        return "values differ"
    return None


def data_files(data_set, kind):
    """The `input_<i>.pb` or `output_<i>.pb` files of a test data set, in index order."""
    n = len(kind) + 1
    return sorted((f for f in os.listdir(data_set) if f.startswith(kind + "_")), key=lambda f: int(f[n:-3]))


def run_one(binary, tests_dir, name):
    """Returns (status, reason): status in passed / failed / skipped."""
    d = os.path.join(tests_dir, name)
    sets = sorted(s for s in os.listdir(d) if s.startswith("test_data_set_"))
    for s in sets:
        ds = os.path.join(d, s)
        inputs, outputs = data_files(ds, "input"), data_files(ds, "output")
        with tempfile.TemporaryDirectory() as tmp:
            args = [binary, os.path.join(d, "model.onnx"), "--output-dir", tmp]
            if inputs:
                args += ["--inputs", *[os.path.join(ds, f) for f in inputs]]
            r = subprocess.run(args, capture_output=True, text=True, timeout=600)
            err = r.stderr.strip().splitlines()
            msg = err[-1] if err else ""
            if r.returncode == 3:
                return "skipped", msg.replace("scm-infer: error: ", "")
            if r.returncode != 0:
                return "failed", f"exit {r.returncode}: {msg}"
            for f in outputs:
                exp_t = onnx.TensorProto()
                with open(os.path.join(ds, f), "rb") as fh:
                    exp_t.ParseFromString(fh.read())
                got = os.path.join(tmp, f)
                if not os.path.exists(got):
                    return "failed", f"{f} was not written"
                got_t = onnx.TensorProto()
                with open(got, "rb") as fh:
                    got_t.ParseFromString(fh.read())
                why = compare(numpy_helper.to_array(exp_t), numpy_helper.to_array(got_t))
                if why:
                    return "failed", f"{s}/{f}: {why}"
    return "passed", ""


def load_skips(path):
    skips = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                name, _, reason = line.partition("\t")
                skips[name] = reason
    return skips


def run(binary, tests_dir, skips_file=None, jobs=None):
    ops = supported_ops(binary)
    names = candidates(tests_dir, ops)
    with concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count()) as ex:
        results = dict(zip(names, ex.map(lambda n: run_one(binary, tests_dir, n), names)))
    if skips_file:
        documented = load_skips(skips_file)
        for name, (status, reason) in list(results.items()):
            if status == "skipped" and name not in documented:
                results[name] = ("failed", f"skipped but not documented in {os.path.basename(skips_file)}: {reason}")
        for name in documented:
            if name in results and results[name][0] == "passed":
                results[name] = ("failed", f"listed as skipped in {os.path.basename(skips_file)} but now passes: remove it")
    return results


def report(results):
    counts = {k: sum(1 for s, _ in results.values() if s == k) for k in ("passed", "failed", "skipped")}
    lines = [f"conformance: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"]
    for kind in ("failed", "skipped"):
        for name, (s, reason) in sorted(results.items()):
            if s == kind:
                lines.append(f"  {kind}: {name}: {reason}")
    return counts, "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build", "debug"))
    ap.add_argument("--tests", default=os.path.join(ROOT, ".build", "onnx-node-tests"))
    ap.add_argument("--skips", default=os.path.join(ROOT, "Tests", "crosscheck", "conformance_skips.tsv"))
    ap.add_argument("-j", type=int, default=None)
    a = ap.parse_args()
    results = run(os.path.join(a.bin, "scm-infer"), a.tests, a.skips if os.path.exists(a.skips) else None, a.j)
    counts, text = report(results)
    print(text)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
