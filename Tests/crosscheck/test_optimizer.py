"""The optimizer against the unoptimized graph: every pass alone and the whole pipeline, on
TrigFlow UNets in both GroupNorm encodings, at several times and batch sizes (bar: 1e-5
relative), and the shape of the optimized graph checked through `scm-inspect --json`."""
import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import make_tiny_model
from conftest import scm

PASSES = ["fold", "cse", "dce", "fuse-adn", "fold-conv-bias", "fuse-conv", "fuse-gemm"]
T_MAX = math.atan(80 / 0.5)


@pytest.fixture(scope="module", params=["onnx", "pytorch"])
def unet(request, tmp_path_factory):
    """A UNet with the extras (random GroupNorm affine, residual conv + SiLU, MatMul + Add linears)."""
    path = tmp_path_factory.mktemp("opt") / f"unet_{request.param}.onnx"
    onnx.save(make_tiny_model.build(request.param, channels=8, size=8, seed=11, extras=True), str(path))
    return str(path)


def tensor_file(path, name, array):
    path.write_bytes(numpy_helper.from_array(array, name).SerializeToString())
    return str(path)


def infer(model, inputs, out_dir):
    r = scm("scm-infer", model, "--inputs", *inputs, "--output-dir", out_dir)
    assert r.returncode == 0, r.stderr
    return numpy_helper.to_array(onnx.load_tensor(str(out_dir / "output_0.pb")))


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("t,batch", [(T_MAX, 1), (1.1, 3), (0.4, 2)])
@pytest.mark.parametrize("passes", [None] + PASSES)
def test_pass_equivalence(unet, tmp_path, t, batch, passes):
    rng = np.random.default_rng(batch)
    x = tensor_file(tmp_path / "x.pb", "x", rng.normal(size=(batch, 1, 8, 8)).astype(np.float32))
    tt = tensor_file(tmp_path / "t.pb", "t", np.full(batch, t, np.float32))
    ref = infer(unet, [x, tt], tmp_path / "ref")
    pass_args = ["--passes", passes] if passes else []
    # Specialized for t (t folded away) and for the batch size only (t stays an input).
    for mode, inputs in ((["--t", repr(t)], [x]), ([], [x, tt])):
        opt = tmp_path / "opt.onnx"
        r = scm("scm-export", unet, opt, "--optimize", "--batch", batch, *mode, *pass_args)
        assert r.returncode == 0, r.stderr
        onnx.checker.check_model(onnx.load(str(opt)), full_check=True)
        out = infer(str(opt), inputs, tmp_path / "out")
        assert rel(out, ref) <= 1e-5, (passes, mode)


def inspect_json(model, steps, batch):
    r = scm("scm-inspect", model, "--steps", steps, "--batch", batch, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def t_only_values(model_path):
    """Names of the values of `model_path` that depend on t and on no runtime input but t."""
    g = onnx.load(model_path).graph
    dep = {"t": {"t"}}
    for i in g.input:
        dep.setdefault(i.name, {i.name})
    out = set()
    for n in g.node:
        d = set().union(*(dep.get(v, set()) for v in n.input if v))
        for o in n.output:
            dep[o] = d
            if d == {"t"}:
                out.add(o)
    return out


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_specialized_graph_shape(unet, steps):
    report = inspect_json(unet, steps, 2)
    model = onnx.load(unet)
    adn = sum(1 for n in model.graph.node if n.op_type in ("GroupNormalization", "InstanceNormalization"))
    assert adn == 3
    assert len(report["steps"]) == steps
    for s in report["steps"]:
        ops = s["after"]["ops"]
        assert "Sin" not in ops and "Cos" not in ops, ops
        assert ops.get("ai.scm:AdaptiveGroupNorm") == adn, ops
        assert not any(k in ops for k in ("GroupNormalization", "InstanceNormalization", "Sigmoid")), ops
        assert ops.get("ai.scm:FusedConv") == 1, ops
        assert s["after"]["nodes"] < report["before"]["nodes"]
        assert s["after"]["arena_bytes"] <= report["before"]["arena_bytes"]
    assert report["schedule"][0] == pytest.approx(T_MAX, abs=1e-6)


def test_no_t_only_nodes_remain(unet, tmp_path):
    assert t_only_values(unet)  # the unoptimized graph computes plenty from t alone
    out = tmp_path / "steps"
    r = scm("scm-export", unet, out, "--optimize", "--steps", 2, "--batch", 4)
    assert r.returncode == 0, r.stderr
    for k in (1, 2):
        m = onnx.load(str(out / f"step{k}.onnx"))
        assert [i.name for i in m.graph.input] == ["x"]
        assert {(o.domain, o.version) for o in m.opset_import} >= {("", 21), ("ai.scm", 1)}
        assert all(n.op_type not in ("Sin", "Cos") for n in m.graph.node)
        meta = {p.key: p.value for p in m.metadata_props}
        assert meta["scm.specialized.batch"] == "4" and meta["scm.specialized.step"] == f"{k}/2"
        # Every node reads x (directly or through other nodes): nothing is computed from t alone.
        reach = {"x"}
        for n in m.graph.node:
            assert any(v in reach for v in n.input), n
            reach.update(n.output)


def test_fold_size_guard(tmp_path):
    """An Expand of a scalar to 4 MiB stays an Expand under the default 1 MiB guard and folds
    when the guard allows it; results are the same either way."""
    from onnx import TensorProto, helper
    big = helper.make_node("Expand", ["one", "shape"], ["big"])
    add = helper.make_node("Add", ["x", "big"], ["y"])
    g = helper.make_graph([big, add], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024, 1024]),
                                            helper.make_tensor_value_info("t", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024, 1024])],
                          [numpy_helper.from_array(np.float32(2), "one"),
                           numpy_helper.from_array(np.array([1024, 1024], np.int64), "shape")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    src = tmp_path / "m.onnx"
    onnx.save(m, str(src))
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    assert scm("scm-export", src, a, "--optimize", "--batch", 1024, "--passes", "fold,dce").returncode == 0
    assert scm("scm-export", src, b, "--optimize", "--batch", 1024, "--passes", "fold,dce", "--fold-limit", 8 << 20).returncode == 0
    assert [n.op_type for n in onnx.load(str(a)).graph.node] == ["Expand", "Add"]
    assert [n.op_type for n in onnx.load(str(b)).graph.node] == ["Add"]
    assert b.stat().st_size > 4 << 20 > a.stat().st_size
    # The same results: x + 2 from the original, the guarded and the folded model, bit for bit.
    x = np.random.default_rng(5).normal(size=(1024, 1024)).astype(np.float32)
    xf = tensor_file(tmp_path / "x.pb", "x", x)
    tf = tensor_file(tmp_path / "t.pb", "t", np.zeros(1, np.float32))
    assert [i.name for i in onnx.load(str(a)).graph.input] == [i.name for i in onnx.load(str(b)).graph.input] == ["x"]
    ref = infer(str(src), [xf, tf], tmp_path / "ref")
    assert ref.shape == (1024, 1024) and ref.tobytes() == (x + np.float32(2)).tobytes()
    for opt in (a, b):
        out = infer(str(opt), [xf], tmp_path / f"out_{opt.stem}")
        assert out.dtype == ref.dtype and out.shape == ref.shape and out.tobytes() == ref.tobytes(), opt.name


def test_cli_errors(unet, tmp_path):
    r = scm("scm-export", unet, tmp_path / "o.onnx", "--optimize", "--t", "2.0")
    assert r.returncode != 0 and "--t must lie in (0, pi/2)" in r.stderr
    r = scm("scm-export", unet, tmp_path / "o.onnx", "--optimize", "--passes", "fold,nope")
    assert r.returncode == 64 and "unknown pass 'nope'" in r.stderr and not (tmp_path / "o.onnx").exists()
    r = scm("scm-inspect", unet, "--steps", 0)
    assert r.returncode == 64 and "--steps must be in 1...10000, is 0" in r.stderr
    r = scm("scm-inspect", unet, "--steps", 2, "--schedule", "1.0,0.5")
    assert r.returncode == 1 and "must start at t_max" in r.stderr
    (tmp_path / "file").write_text("x")
    r = scm("scm-export", unet, tmp_path / "file", "--optimize", "--steps", 2)
    assert r.returncode == 1 and "is not a directory" in r.stderr


def edm_style_convs(path):
    """x [N, 4, 8, 8], t [N]: three convolutions without bias inputs, each followed by the bias
    Add of a [1, C, 1, 1] constant as EDM's Conv2d exports it, the second with a residual Add and
    SiLU behind it, the third into 1 channel; scaled by t."""
    from onnx import TensorProto, helper
    rng = np.random.default_rng(7)
    inits, nodes = [], []

    def const(name, a):
        inits.append(numpy_helper.from_array(a.astype(np.float32), name))
        return name

    def conv(i, v, cin, cout):
        w = const(f"w{i}", rng.normal(0, 0.3, (cout, cin, 3, 3)))
        b = const(f"b{i}", rng.normal(0, 0.5, (1, cout, 1, 1)))
        nodes.append(helper.make_node("Conv", [v, w], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Add", [f"c{i}", b], [f"cb{i}"]))
        return f"cb{i}"

    def silu(v):
        nodes.append(helper.make_node("Sigmoid", [v], [v + "_s"]))
        nodes.append(helper.make_node("Mul", [v, v + "_s"], [v + "_silu"]))
        return v + "_silu"

    h = silu(conv(0, "x", 4, 8))
    r = conv(1, h, 8, 8)
    nodes.append(helper.make_node("Add", [r, h], ["res"]))
    out = conv(2, silu("res"), 8, 4)
    inits.append(numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "t_shape"))
    nodes.append(helper.make_node("Reshape", ["t", "t_shape"], ["t4"]))
    nodes.append(helper.make_node("Mul", [out, "t4"], ["y"]))
    g = helper.make_graph(nodes, "edm_convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8]),
                                               helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return str(path)


@pytest.mark.parametrize("batch", [1, 4])
def test_conv_bias_adds_fold_into_the_convolutions(tmp_path, batch):
    """fold-conv-bias, then fuse-conv: every Conv + bias Add of the exported pattern becomes one
    convolution (the residual Add and SiLU behind it fused too), and the optimized file runs within
    1e-5 of onnxruntime on the original."""
    model = edm_style_convs(tmp_path / "m.onnx")
    rng = np.random.default_rng(batch)
    xv, tv = rng.normal(size=(batch, 4, 8, 8)).astype(np.float32), np.full(batch, 0.7, np.float32)
    ref = ort.InferenceSession(model).run(None, {"x": xv, "t": tv})[0]
    opt = tmp_path / "opt.onnx"
    r = scm("scm-export", "optimize", model, opt, "--batch", batch)
    assert r.returncode == 0, r.stderr
    ops = [n.op_type for n in onnx.load(str(opt)).graph.node]
    assert "Add" not in ops and ops.count("FusedConv") + ops.count("Conv") == 3, ops
    assert ops.count("FusedConv") >= 2, ops
    out = infer(str(opt), [tensor_file(tmp_path / "x.pb", "x", xv), tensor_file(tmp_path / "t.pb", "t", tv)], tmp_path / "out")
    assert rel(out, ref) <= 1e-5
