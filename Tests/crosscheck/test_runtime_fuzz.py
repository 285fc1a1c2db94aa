"""Hostile attribute and shape values never crash the runtime: scm-infer exits 0, 1 or 3."""
import os
import random

import numpy as np
import onnx
from onnx import numpy_helper

import conformance
from conftest import BIN, scm

NASTY = [-(1 << 62), -(1 << 31), -3, -1, 0, 1, 2, 7, 1 << 20, 1 << 31, 1 << 62]


def mutate(model, rng):
    nodes = [n for n in model.graph.node if any(a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS)
                                                 for a in n.attribute)]
    if nodes:
        node = rng.choice(nodes)
        attrs = [a for a in node.attribute if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS)]
        a = rng.choice(attrs)
        if a.type == onnx.AttributeProto.INT:
            a.i = rng.choice(NASTY)
        elif len(a.ints):
            a.ints[rng.randrange(len(a.ints))] = rng.choice(NASTY)
    return model


def mutate_inputs(paths, rng, tmp):
    out = []
    for i, p in enumerate(paths):
        t = onnx.TensorProto()
        t.ParseFromString(open(p, "rb").read())
        try:
            arr = numpy_helper.to_array(t)
        except ValueError:  # not a tensor (sequence/optional test data): pass it unchanged
            out.append(p)
            continue
        if arr.dtype in (np.int64, np.int32) and arr.size and rng.random() < 0.7:
            arr = arr.copy()
            arr.flat[rng.randrange(arr.size)] = rng.choice(NASTY) if arr.dtype == np.int64 else rng.choice([-(1 << 31), -1, 0, 1 << 30])
        q = os.path.join(tmp, f"input_{i}.pb")
        open(q, "wb").write(numpy_helper.from_array(arr, t.name).SerializeToString())
        out.append(q)
    return out


def test_hostile_values_do_not_crash(node_tests_dir, tmp_path):
    ops = conformance.supported_ops(os.path.join(BIN, "scm-infer"))
    names = conformance.candidates(node_tests_dir, ops)
    rng = random.Random(1234)
    crashes = []
    for k in range(int(os.environ.get("SCM_FUZZ_RUNS", "250"))):
        name = rng.choice(names)
        d = os.path.join(node_tests_dir, name)
        ds = os.path.join(d, "test_data_set_0")
        inputs = conformance.data_files(ds, "input")
        model = mutate(onnx.load(os.path.join(d, "model.onnx")), rng)
        mp = tmp_path / f"m{k}.onnx"
        mp.write_bytes(model.SerializeToString())
        work = tmp_path / f"w{k}"
        work.mkdir()
        paths = mutate_inputs([os.path.join(ds, f) for f in inputs], rng, str(work))
        args = [mp, "--output-dir", work / "out"] + (["--inputs", *paths] if paths else [])
        r = scm("scm-infer", *args)
        if r.returncode not in (0, 1, 3):
            crashes.append(f"{name} (mutation {k}): exit {r.returncode}: {r.stderr[-300:]}")
    assert not crashes, "\n".join(crashes)
