"""Whole-model checks of the runtime against onnxruntime, and scm-infer's command line."""
import os
import subprocess

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import crosscheck_ort
import make_tiny_model
from conftest import BIN, ROOT, scm

INFER = os.path.join(BIN, "scm-infer")


@pytest.fixture(scope="module", params=["onnx", "pytorch"])
def unet(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("unet") / f"unet_{request.param}.onnx"
    onnx.save(make_tiny_model.build(request.param, channels=16, size=16, seed=3), str(path))
    return str(path)


@pytest.mark.parametrize("batch,threads", [(1, 1), (3, 1), (3, 2), (32, 3)])
def test_unet_matches_onnxruntime(unet, batch, threads):
    """Whole-model error against onnxruntime. Measured (batch 1 to 64, 1 to 4 threads, both
    encodings): at most 5e-7 of the largest output value (outputs reach about 3), and element by
    element |ours - ort| <= 1e-5 |ort| + 3e-6 with the worst element at 0.23 of that bound. The
    bars leave a margin of about 4x to 20x."""
    results = crosscheck_ort.crosscheck(unet, batch=batch, seed=batch, threads=threads, binary=INFER, rtol=1e-5, atol=3e-6)
    assert len(results) == 1
    for r in results:
        assert r["relative_error"] <= 1e-5, r
        assert r["elements_over"] == 0 and r["elementwise_ratio"] <= 1, r


def test_unet_thread_count_invariance(unet, tmp_path):
    model = onnx.load(unet)
    feeds = crosscheck_ort.random_inputs(model, 4, seed=7)
    paths = []
    for i, (name, v) in enumerate(feeds.items()):
        p = tmp_path / f"input_{i}.pb"
        p.write_bytes(numpy_helper.from_array(v, name).SerializeToString())
        paths.append(str(p))
    outs = []
    for t in (1, 2, 3):
        d = tmp_path / f"out{t}"
        r = scm("scm-infer", unet, "--inputs", *paths, "--output-dir", d, "--threads", t)
        assert r.returncode == 0, r.stderr
        outs.append((d / "output_0.pb").read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_infer_errors(tmp_path):
    model = os.path.join(ROOT, "models", "tiny-trigflow.onnx")
    x = tmp_path / "x.pb"
    x.write_bytes(numpy_helper.from_array(np.zeros((2, 1, 8, 8), np.float32), "x").SerializeToString())
    t_bad = tmp_path / "t.pb"
    t_bad.write_bytes(numpy_helper.from_array(np.zeros((3,), np.float32), "t").SerializeToString())
    # Too few inputs.
    r = scm("scm-infer", model, "--inputs", x, "--output-dir", tmp_path / "o")
    assert r.returncode == 1 and "the graph has 2 inputs (x, t), 1 files given" in r.stderr
    # Batch of t differs from x: a shape error naming the node, no outputs written.
    r = scm("scm-infer", model, "--inputs", x, t_bad, "--output-dir", tmp_path / "o")
    assert r.returncode == 1 and "do not broadcast" in r.stderr and "node" in r.stderr
    assert not (tmp_path / "o").exists()
    # A missing input file, a bad flag.
    r = scm("scm-infer", model, "--inputs", x, tmp_path / "missing.pb", "--output-dir", tmp_path / "o")
    assert r.returncode == 1 and "missing.pb" in r.stderr
    r = scm("scm-infer", model, "--threads", "0", "--inputs", x, x)
    assert r.returncode != 0 and "--threads" in r.stderr
    # An unwritable output folder.
    t_ok = tmp_path / "t2.pb"
    t_ok.write_bytes(numpy_helper.from_array(np.ones((2,), np.float32), "t").SerializeToString())
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = scm("scm-infer", model, "--inputs", x, t_ok, "--output-dir", blocker / "sub")
    assert r.returncode == 1 and "cannot create the output folder" in r.stderr
    # Unsupported op: exit 3 with the node name.
    m = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Hardmax", ["a"], ["b"], name="hm")], "g",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [2])]),
        opset_imports=[onnx.helper.make_opsetid("", 21)])
    p = tmp_path / "hm.onnx"
    onnx.save(m, str(p))
    a = tmp_path / "a.pb"
    a.write_bytes(numpy_helper.from_array(np.zeros(2, np.float32), "a").SerializeToString())
    r = scm("scm-infer", p, "--inputs", a, "--output-dir", tmp_path / "o2")
    assert r.returncode == 3 and "node 'hm' (Hardmax, #0): op Hardmax is not supported" in r.stderr


def conv_model(path, n, c, h, w, m, k, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), weights_input=False, seed=0):
    """One Conv with bias: weights as initializers (packed at plan time), or as a graph input (packed
    per run, as in training graphs)."""
    rng = np.random.default_rng(seed)
    wt = (rng.standard_normal((m, c, *k)) / np.sqrt(c * k[0] * k[1])).astype(np.float32)
    bt = rng.standard_normal(m).astype(np.float32) * 0.1
    node = onnx.helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=list(k), strides=list(strides), pads=list(pads),
                                 dilations=list(dilations))
    inputs = [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [n, c, h, w])]
    inits = [numpy_helper.from_array(bt, "b")]
    if weights_input:
        inputs.append(onnx.helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [m, c, *k]))
    else:
        inits.append(numpy_helper.from_array(wt, "w"))
    g = onnx.helper.make_graph([node], "conv", inputs, [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
    onnx.save(onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8), str(path))
    return str(path)


CONV_SHAPES = [
    # (c, h, w, m, kernel, strides, pads, dilations): each kernel path of the runtime
    (5, 9, 8, 7, (3, 3), (2, 1), (0, 1, 2, 0), (1, 1)),    # height stride only: rows of positions
    (5, 8, 9, 7, (3, 3), (1, 2), (1, 0, 0, 2), (1, 1)),    # width stride only
    (6, 13, 13, 20, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),  # stride 2: polyphase planes
    (6, 12, 12, 3, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),   # polyphase, at most 4 channels (positions in vectors)
    (4, 11, 10, 9, (4, 4), (2, 2), (1, 2, 2, 1), (1, 1)),   # polyphase, even window
    (3, 9, 11, 5, (2, 3), (2, 2), (0, 0, 0, 0), (1, 1)),    # polyphase, 2 x 3 window, no pads
    (5, 11, 11, 6, (3, 3), (2, 2), (2, 2, 2, 2), (2, 2)),   # stride 2 with dilation: strided rows
    (24, 11, 13, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),  # Winograd
    (1, 28, 28, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),  # one input channel
    (32, 10, 10, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),  # one output channel
    (7, 6, 5, 5, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),     # 1 x 1
    (4, 10, 10, 6, (3, 3), (3, 3), (1, 1, 1, 1), (1, 1)),   # stride 3: im2col
]


@pytest.mark.parametrize("shape", CONV_SHAPES, ids=lambda s: f"c{s[0]}_{s[1]}x{s[2]}_m{s[3]}_k{s[4][0]}x{s[4][1]}_s{s[5][0]}{s[5][1]}_d{s[7][0]}")
@pytest.mark.parametrize("weights_input", [False, True], ids=["constant_w", "input_w"])
@pytest.mark.parametrize("isa", ["native", "portable"])
def test_conv_shapes_match_onnxruntime(shape, weights_input, isa, tmp_path, monkeypatch):
    """Single convolutions through every kernel path (direct rows, flattened rows, polyphase,
    narrow, Winograd, 1x1, im2col), constant and run-time weights, vector and portable kernels,
    1 and 3 threads, against onnxruntime: the largest error at most 1e-5 of the largest output
    (measured up to 7e-7; run-time weights are unscaled standard normals, so outputs reach about
    50 and an elementwise bound would mostly measure cancellation)."""
    c, h, w, m, k, strides, pads, dil = shape
    if isa == "portable":
        monkeypatch.setenv("SCM_KERNELS_ISA", "portable")
    path = conv_model(tmp_path / "conv.onnx", 3, c, h, w, m, k, strides, pads, dil, weights_input)
    for threads in (1, 3):
        for r in crosscheck_ort.crosscheck(path, batch=3, seed=threads, threads=threads, binary=INFER, rtol=1e-5, atol=3e-6):
            assert r["relative_error"] <= 1e-5, (threads, r)
