"""ai.scm:GroupNormTangent, the fused tangent of GroupNormalization (opset 21),
InstanceNormalization and ai.scm:AdaptiveGroupNorm: against the formula in float64 numpy (with and
without the tangents of scale and bias), bitwise-equal results at 1, 2 and 3 threads, and its shape
errors. (The JVP rules that emit it are checked against finite differences in test_jvp.py.)"""
import numpy as np
import pytest
from onnx import TensorProto, helper

from test_backward_ops import run, run_error

RNG = np.random.default_rng(12)


def rand(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def model(x, dx, scale, groups, dscale=None, dbias=None, eps=1e-5):
    names = ["x", "dx", "scale", "dscale" if dscale is not None else "", "dbias" if dbias is not None else ""]
    while names[-1] == "":
        names.pop()
    node = helper.make_node("GroupNormTangent", names, ["dy"], domain="ai.scm", num_groups=groups, epsilon=eps)
    feeds = {k: v for k, v in (("x", x), ("dx", dx), ("scale", scale), ("dscale", dscale), ("dbias", dbias)) if v is not None}
    g = helper.make_graph([node], "gnt", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
                          [helper.make_tensor_value_info("dy", TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.scm", 1)], ir_version=10), feeds


def reference(x, dx, scale, groups, dscale=None, dbias=None, eps=1e-5):
    """d/de GroupNorm(x + e dx, scale + e dscale, bias + e dbias) at e = 0, in float64."""
    x, dx, scale = (a.astype(np.float64) for a in (x, dx, scale))
    n, c = x.shape[:2]
    ch = (1, c) + (1,) * (x.ndim - 2)
    xs, ts = x.reshape(n, groups, -1), dx.reshape(n, groups, -1)
    mean = xs.mean(axis=2, keepdims=True)
    inv = 1 / np.sqrt(xs.var(axis=2, keepdims=True) + eps)
    xhat = (xs - mean) * inv
    dxhat = inv * (ts - ts.mean(axis=2, keepdims=True) - xhat * (xhat * ts).mean(axis=2, keepdims=True))
    dy = dxhat.reshape(x.shape) * scale.reshape(ch)
    if dscale is not None:
        dy += xhat.reshape(x.shape) * dscale.astype(np.float64).reshape(ch)
    if dbias is not None:
        dy += dbias.astype(np.float64).reshape(ch)
    return dy


@pytest.mark.parametrize("shape,groups,offset,extras", [
    ([4, 64, 28, 28], 8, 0.0, ""),           # the trainer's UNet at 28x28, tangent of X only
    ([3, 8, 5, 5], 4, 3.0, "sb"),            # a tail after the SIMD lanes, off-center values, all tangents
    ([2, 6, 7], 6, -2.0, "s"),               # rank 3, one channel per group (InstanceNormalization's use)
    ([5, 12], 2, 0.5, "b"),                  # rank 2: one value per channel
    ([2, 16, 9, 9], 1, 10.0, "sb"),          # one group, mean far from zero
], ids=["unet", "tail", "instance", "rank2", "one_group"])
def test_matches_formula(shape, groups, offset, extras, tmp_path):
    x = rand(*shape) * 2 + np.float32(offset)
    dx, scale = rand(*shape), rand(shape[1])
    dscale = rand(shape[1]) if "s" in extras else None
    dbias = rand(shape[1]) if "b" in extras else None
    got = run(*model(x, dx, scale, groups, dscale, dbias), tmp_path)
    want = reference(x, dx, scale, groups, dscale, dbias)
    assert got.shape == want.shape
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-6)
    assert err < 1e-5, f"relative error {err:.2e}"


def test_bias_tangent_alone(tmp_path):
    """dScale absent ("") but dBias given: the empty optional input in the middle."""
    x, dx, scale, dbias = rand(2, 4, 3, 3), rand(2, 4, 3, 3), rand(4), rand(4)
    m, feeds = model(x, dx, scale, 2, dbias=dbias)
    assert list(m.graph.node[0].input) == ["x", "dx", "scale", "", "dbias"]
    got = run(m, feeds, tmp_path)
    want = reference(x, dx, scale, 2, dbias=dbias)
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()


def test_threads_bitwise(tmp_path):
    x, dx, scale, ds, db = rand(16, 64, 28, 28), rand(16, 64, 28, 28), rand(64), rand(64), rand(64)
    outs = [run(*model(x, dx, scale, 8, ds, db), tmp_path, threads=t) for t in (1, 2, 3)]
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()


def test_shape_errors(tmp_path):
    def error(*args):
        return run_error(*model(*args), tmp_path)
    x = rand(2, 6, 4, 4)
    assert "dX [2, 6, 4, 3] differs from X [2, 6, 4, 4]" in error(x, rand(2, 6, 4, 3), rand(6), 2)
    assert "num_groups 4 does not divide 6 channels" in error(x, rand(2, 6, 4, 4), rand(6), 4)
    assert "scale must be float [6]" in error(x, rand(2, 6, 4, 4), rand(3), 3)
    assert "dScale must be float [6]" in error(x, rand(2, 6, 4, 4), rand(6), 3, rand(2))
    assert "dBias must be float [6]" in error(x, rand(2, 6, 4, 4), rand(6), 3, None, rand(6, 1))
