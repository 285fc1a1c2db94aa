"""ai.scm:GroupNormGrad, the fused backward of GroupNormalization (opset 21) and
InstanceNormalization: its three outputs (dX, dScale, dBias) against the formula in float64
numpy, bitwise-equal results at 1, 2 and 3 threads, and its shape errors. (The VJP rules that emit
it are checked against finite differences in test_vjp.py.)"""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_backward_ops import infer, run_error

RNG = np.random.default_rng(11)


def rand(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def model(x, scale, dy, groups, eps=1e-5):
    node = helper.make_node("GroupNormGrad", ["x", "scale", "dy"], ["dx", "dscale", "dbias"], domain="ai.scm",
                            num_groups=groups, epsilon=eps)
    feeds = {"x": x, "scale": scale, "dy": dy}
    g = helper.make_graph([node], "gng", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
                          [helper.make_tensor_value_info(k, TensorProto.FLOAT, None) for k in ("dx", "dscale", "dbias")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.scm", 1)], ir_version=10), feeds


def run(m, feeds, tmp_path, threads=1):
    r, d = infer(m, feeds, tmp_path, threads)
    assert r.returncode == 0, r.stderr
    return [numpy_helper.to_array(onnx.load_tensor(str(d / "out" / f"output_{i}.pb"))) for i in range(3)]


def reference(x, scale, dy, groups, eps=1e-5):
    """d/d(x, scale, bias) of sum(dy * GroupNorm(x, scale, bias)), in float64."""
    x, scale, dy = (a.astype(np.float64) for a in (x, scale, dy))
    n, c = x.shape[:2]
    xs = x.reshape(n, groups, -1)
    mean = xs.mean(axis=2, keepdims=True)
    inv = 1 / np.sqrt(xs.var(axis=2, keepdims=True) + eps)
    xhat = ((xs - mean) * inv).reshape(x.shape)
    ch = (1, c) + (1,) * (x.ndim - 2)
    gs = (dy * scale.reshape(ch)).reshape(n, groups, -1)
    xh = xhat.reshape(n, groups, -1)
    dx = inv * (gs - gs.mean(axis=2, keepdims=True) - xh * (gs * xh).mean(axis=2, keepdims=True))
    axes = (0,) + tuple(range(2, x.ndim))
    return [dx.reshape(x.shape), (dy * xhat).sum(axis=axes), dy.sum(axis=axes)]


@pytest.mark.parametrize("shape,groups,offset", [
    ([4, 64, 28, 28], 8, 0.0),   # the trainer's UNet at 28x28
    ([3, 8, 5, 5], 4, 3.0),      # a tail after the SIMD lanes, off-center values
    ([2, 6, 7], 6, -2.0),        # rank 3, one channel per group (InstanceNormalization's use)
    ([5, 12], 2, 0.5),           # rank 2: one value per channel
    ([2, 16, 9, 9], 1, 10.0),    # one group, mean far from zero
], ids=["unet", "tail", "instance", "rank2", "one_group"])
def test_matches_formula(shape, groups, offset, tmp_path):
    x = rand(*shape) * 2 + np.float32(offset)
    scale, dy = rand(shape[1]), rand(*shape)
    got = run(*model(x, scale, dy, groups), tmp_path)
    for name, g, want in zip(("dX", "dScale", "dBias"), got, reference(x, scale, dy, groups)):
        assert g.shape == want.shape, name
        err = np.abs(g - want).max() / max(np.abs(want).max(), 1e-6)
        assert err < 1e-5, f"{name}: relative error {err:.2e}"


def test_threads_bitwise(tmp_path):
    x, scale, dy = rand(16, 64, 28, 28), rand(64), rand(16, 64, 28, 28)
    outs = [run(*model(x, scale, dy, 8), tmp_path, threads=t) for t in (1, 2, 3)]
    for i in range(3):
        assert outs[0][i].tobytes() == outs[1][i].tobytes() == outs[2][i].tobytes()


def test_shape_errors(tmp_path):
    def error(*args):
        return run_error(*model(*args), tmp_path)
    x = rand(2, 6, 4, 4)
    assert "dY [2, 6, 4, 3] differs from X [2, 6, 4, 4]" in error(x, rand(6), rand(2, 6, 4, 3), 2)
    assert "num_groups 4 does not divide 6 channels" in error(x, rand(6), rand(2, 6, 4, 4), 4)
    assert "scale must be float [6]" in error(x, rand(3), rand(2, 6, 4, 4), 3)
