#!/usr/bin/env python3
"""Writes ONNX's backend node tests in the standard layout.

    tools/gen_onnx_node_tests.py OUTDIR

For each case of onnx.backend.test.case.node.collect_testcases() (the onnx wheel holds their
definitions, not their files) it writes OUTDIR/<test>/model.onnx and
OUTDIR/<test>/test_data_set_<k>/{input,output}_<i>.pb, as onnx's own `cmd_tools generate-data`
does. Non-tensor values (sequences, maps, optionals) are written with numpy_helper's encoders.
A stamp file records the onnx version; the folder is regenerated only when it changes.
"""
import os
import shutil
import sys
import warnings

import onnx
from onnx import TensorProto, numpy_helper
import onnx.backend.test.case.node as node_cases


def encode(value, value_info):
    t = value_info.type
    name = value_info.name
    if t.HasField("map_type"):
        return numpy_helper.from_dict(value, name)
    if t.HasField("sequence_type"):
        return numpy_helper.from_list(value, name)
    if t.HasField("optional_type"):
        return numpy_helper.from_optional(value, name)
    if isinstance(value, TensorProto):
        return value
    return numpy_helper.from_array(value, name)


def main():
    out = sys.argv[1]
    stamp = os.path.join(out, ".onnx-version")
    if os.path.exists(stamp) and open(stamp).read() == onnx.__version__:
        print(f"node tests: up to date in {out}")
        return
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases(None)
    for case in cases:
        d = os.path.join(out, case.name)
        os.makedirs(d)
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        for k, (inputs, outputs) in enumerate(case.data_sets):
            ds = os.path.join(d, f"test_data_set_{k}")
            os.makedirs(ds)
            for kind, values, infos in (("input", inputs, case.model.graph.input),
                                        ("output", outputs, case.model.graph.output)):
                for i, v in enumerate(values):
                    with open(os.path.join(ds, f"{kind}_{i}.pb"), "wb") as f:
                        f.write(encode(v, infos[i]).SerializeToString())
    with open(stamp, "w") as f:
        f.write(onnx.__version__)
    print(f"node tests: wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
