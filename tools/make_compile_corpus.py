#!/usr/bin/env python3
"""Writes the compile-time corpus: Tests/corpus/compile/<case>.onnx and expected.tsv.

These files load (or fail only under a lowered limit) but must be refused when compiled: resource
limits (tensor elements, constant bytes, graph depth, planned activation memory) and runtime bugs
found by fuzzing, each a regression file. Each line of expected.tsv is
`<file>\t<error kind>\t<text the message must contain>\t<flags>`: flags are scm-infer/scm-run
`--max-*` flags (space-separated, may be empty) that lower the limits for that case. Graph inputs
are compiled at their declared shapes (Swift test) or fed zeros of those shapes (CLI test, when
they are small). Deterministic: rerunning rewrites the same bytes.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1] if len(sys.argv) > 1 else "Tests/corpus/compile"
cases = []


def add(name, m, kind, text, flags=""):
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(m.SerializeToString())
    cases.append((name + ".onnx", kind, text, flags))


def model(nodes, inputs, outputs, inits=(), opset=21):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


FUZZ_FINDINGS = [
    # libFuzzer timeout: Resize to sizes [1, 1, 4, 67108868] built its per-axis source tables
    # (67 M entries) before the compiler checked the output against the element limit.
    ("fuzz_resize_huge_sizes_timeout.onnx", "limitExceeded",
     "output shape [1, 1, 4, 67108868] has 268435472 elements, more than the limit of 1048576 (max-tensor-elements)",
     "--max-tensor-elements 1048576"),
    # libFuzzer crash: Split of a rank-0 input (a mutated node test) indexed its shape at axis 0.
    ("fuzz_split_rank0_crash.onnx", "invalidModel", "(Split): input must have rank >= 1", ""),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    # Resize with `sizes` of an input whose resized axis has length 0: the scale is infinite and
    # every source index was -1 (an out-of-bounds read, garbage output, exit 0).
    sizes = numpy_helper.from_array(np.array([1, 1, 4, 4], np.int64), "sizes")
    add("resize_zero_axis_sizes",
        model([helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest")],
              [vi("x", [1, 1, 0, 4])], [vi("y", [1, 1, 4, 4])], [sizes]),
        "invalidModel", "input axis 2 has length 0")
    sizes2 = numpy_helper.from_array(np.array([3, 5], np.int64), "sizes")
    add("resize_zero_axis_sizes_linear",
        model([helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear", axes=[2, 3])],
              [vi("x", [1, 2, 4, 0])], [vi("y", [1, 2, 3, 5])], [sizes2]),
        "invalidModel", "input axis 3 has length 0")
    # A declared input of 2^38 float32 (1 TiB): refused at compile time, before any allocation.
    add("terabyte_input",
        model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1024, 1024, 1024, 256])], [vi("y", [1024, 1024, 1024, 256])]),
        "limitExceeded", "has 274877906944 elements, more than the limit of 1073741824 (max-tensor-elements)")
    # 256 tensors of 2^30 float32 (4 GiB each, at the element limit) alive at once: 1 TiB of
    # activations, refused by the planned-memory limit at compile time.
    nodes = [helper.make_node("Neg", ["x"], [f"n{i}"]) for i in range(256)]
    prev = "n0"
    for i in range(1, 256):
        out = "y" if i == 255 else f"s{i}"
        nodes.append(helper.make_node("Add", [prev, f"n{i}"], [out]))
        prev = out
    add("terabyte_activations", model(nodes, [vi("x", [1024, 1024, 1024])], [vi("y", [1024, 1024, 1024])]),
        "limitExceeded", "over the limit of 17179869184 (max-activation-bytes)")
    # ConstantOfShape asked for 2^40 elements (evaluated at compile time).
    shape = numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "shape")
    add("constant_of_shape_terabyte",
        model([helper.make_node("ConstantOfShape", ["shape"], ["y"])], [], [vi("y", [1 << 20, 1 << 20])], [shape]),
        "invalidModel", "shape [1048576, 1048576] is too large")
    # Compile-time values (an Expand of a constant) over a lowered constant-bytes limit.
    one = numpy_helper.from_array(np.ones([1], np.float32), "one")
    eshape = numpy_helper.from_array(np.array([4096], np.int64), "eshape")
    add("folded_constants_over_limit",
        model([helper.make_node("Expand", ["one", "eshape"], ["big"]), helper.make_node("Add", ["x", "big"], ["y"])],
              [vi("x", [4096])], [vi("y", [4096])], [one, eshape]),
        "limitExceeded", "values known at compile time reach 16396 bytes, over the limit of 10000 (max-initializer-bytes)",
        "--max-initializer-bytes 10000")
    # Initializers over a lowered limit (refused when loading).
    ws = [numpy_helper.from_array(np.full([64], i, np.float32), f"w{i}") for i in range(8)]
    nodes, prev = [], "x"
    for i in range(8):
        nodes.append(helper.make_node("Add", [prev, f"w{i}"], [f"a{i}" if i < 7 else "y"]))
        prev = f"a{i}"
    add("initializers_over_limit", model(nodes, [vi("x", [64])], [vi("y", [64])], ws),
        "limitExceeded", "brings the constants to 1280 bytes, over the limit of 1200 (max-initializer-bytes)",
        "--max-initializer-bytes 1200")
    # A chain of 300 nodes under a depth limit of 256.
    nodes, prev = [], "x"
    for i in range(300):
        out = "y" if i == 299 else f"r{i}"
        nodes.append(helper.make_node("Relu", [prev], [out], name=f"relu{i}"))
        prev = out
    add("deep_chain", model(nodes, [vi("x", [4])], [vi("y", [4])]),
        "limitExceeded", "ends a chain of 300 nodes, more than the limit of 256 (max-graph-depth)", "--max-graph-depth 256")
    # Activations for the requested shapes over a lowered limit: x, a and b (64 KiB each) live at once.
    add("activations_over_limit",
        model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["b"]),
               helper.make_node("Add", ["a", "b"], ["c"]), helper.make_node("Add", ["c", "x"], ["y"])],
              [vi("x", [16384])], [vi("y", [16384])]),
        "limitExceeded", "over the limit of 150000 (max-activation-bytes)", "--max-activation-bytes 150000")
    # Concat and Slice of rank-0 inputs (the shape of the Split finding): an axis of a scalar.
    add("concat_rank0", model([helper.make_node("Concat", ["x", "x"], ["y"], axis=0)], [vi("x", [])], [vi("y", None)]),
        "invalidModel", "(Concat): inputs must have rank >= 1")
    st, en = (numpy_helper.from_array(np.array([v], np.int64), n) for n, v in (("st", 0), ("en", 1)))
    add("slice_rank0", model([helper.make_node("Slice", ["x", "st", "en"], ["y"])], [vi("x", [])], [vi("y", None)], [st, en]),
        "invalidModel", "(Slice): cannot slice a tensor of rank 0")
    # Findings of tools/fuzz.sh, committed byte for byte (not generated here): name, kind, text, flags.
    for row in FUZZ_FINDINGS:
        assert os.path.exists(os.path.join(OUT, row[0])), row[0]
        cases.append(row)
    with open(os.path.join(OUT, "expected.tsv"), "w") as f:
        f.write("# file\terror kind\ttext the message must contain\tlimit flags (see tools/make_compile_corpus.py)\n")
        for c in cases:
            f.write("\t".join(c) + "\n")


if __name__ == "__main__":
    main()
