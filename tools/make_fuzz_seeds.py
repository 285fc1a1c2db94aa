#!/usr/bin/env python3
"""Writes the fuzzer's seed corpus of valid models: Tests/corpus/fuzz/seed/.

usage: tools/make_fuzz_seeds.py NODE_TESTS_DIR [OUT]
NODE_TESTS_DIR is what tools/gen_onnx_node_tests.py writes. Takes, from the ONNX node tests that
pass through our runtime (Tests/crosscheck/conformance_expected.txt), the smallest model of each
op type and of each distinct attribute set, up to 4 per op, each under 2 KB; plus the committed
tiny TrigFlow UNet. Deterministic for one onnx version.
"""
import os
import shutil
import sys

import onnx

from scmtools.paths import CONFORMANCE_EXPECTED, MODELS, ROOT

src = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "Tests", "corpus", "fuzz", "seed")
expected = [l.strip() for l in open(CONFORMANCE_EXPECTED)
            if l.strip() and not l.startswith("#")]
by_op = {}
for name in expected:
    path = os.path.join(src, name, "model.onnx")
    if not os.path.exists(path) or os.path.getsize(path) > 2048:
        continue
    m = onnx.load(path)
    key = tuple(sorted({n.op_type for n in m.graph.node}))
    attrs = tuple(sorted({a.name for n in m.graph.node for a in n.attribute}))
    by_op.setdefault(key, {}).setdefault(attrs, []).append((os.path.getsize(path), name))
os.makedirs(out, exist_ok=True)
for f in os.listdir(out):
    os.remove(os.path.join(out, f))
count = 0
for key in sorted(by_op):
    variants = sorted(min(v) for v in by_op[key].values())[:4]
    for _, name in variants:
        shutil.copy(os.path.join(src, name, "model.onnx"), os.path.join(out, name + ".onnx"))
        count += 1
shutil.copy(os.path.join(MODELS, "tiny-trigflow.onnx"), os.path.join(out, "tiny-trigflow.onnx"))
print(f"{count + 1} seed models in {out}")
