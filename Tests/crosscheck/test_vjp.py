"""Reverse-mode derivatives (`scm-export --grad`) of every op with a VJP rule: each element of each
gradient against central finite differences of sum_o <u_o, output_o> for random cotangents u,
the original op run by onnxruntime (float64 where it can; see derivcheck)."""
import os
import subprocess

import numpy as np
import onnx
import pytest

from conftest import BIN
from derivcheck import check_vjp
from test_jvp import CASES, rand, single

# Ops whose reverse-mode rule does not exist yet: the export must fail naming the node.
NO_RULE = {"Slice": "Slice", "Gather": "Gather"}
# Cases whose extra outputs have no VJP rule (LayerNormalization's Mean and InvStdDev).
ONE_OUTPUT = {"LayerNormalization"}


@pytest.mark.parametrize("op,inputs,consts,attrs,wrt,kw", CASES)
def test_vjp_rule(op, inputs, consts, attrs, wrt, kw, request, tmp_path):
    kw = dict(kw)
    name = request.node.callspec.id
    order = kw.pop("order", None)
    if name in ONE_OUTPUT:
        kw["outputs"] = 1
    model, feeds = single(op, inputs, consts, attrs, **kw)
    if order:
        node = model.graph.node[0]
        del node.input[:]
        node.input.extend(order)
    wrt = wrt or [k for k, v in inputs.items() if v.dtype == np.float32]
    if name in NO_RULE:
        onnx.save(model, str(tmp_path / "m.onnx"))
        r = subprocess.run([os.path.join(BIN, "scm-export"), tmp_path / "m.onnx", tmp_path / "g.onnx", "--grad", ",".join(wrt)],
                           capture_output=True, text=True)
        assert r.returncode == 1 and "VJP" in r.stderr and NO_RULE[name] in r.stderr, r.stderr
        return
    check_vjp(model, feeds, wrt, str(tmp_path))
