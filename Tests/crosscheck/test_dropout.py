"""ai.scm:Dropout(X, key): the share of dropped elements, the scaling of kept ones, masks keyed by
each sample's own key (the same at any batch position and thread count, different per node salt
and per key), and its derivatives: the JVP is Dropout of the tangent, the VJP the adjoint (the
same mask), both through `scm-export --jvp/--grad` and our runtime."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import scm
from test_backward_ops import one_node, rand, run, run_error


def dropout(x, key, ratio=0.3, salt=1):
    return one_node("Dropout", [("x", x), ("key", key)], attrs={"ratio": ratio, "salt": salt}, domain="ai.scm")


def keys(n, seed=0):
    return np.random.default_rng(seed).uniform(0.01, 1.56, size=n).astype(np.float32)


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.7])
def test_drops_the_ratio_and_scales_the_rest(ratio, tmp_path):
    x = np.abs(rand(16, 8, 14, 14)) + 0.5
    y = run(*dropout(x, keys(16), ratio), tmp_path)
    kept = y != 0
    share = 1 - kept.mean()
    # 25088 Bernoulli(ratio) draws: 5 standard deviations is below 0.015.
    assert abs(share - ratio) < 0.015, share
    np.testing.assert_allclose(y[kept], x[kept] / (1 - ratio), rtol=1e-6)
    # Masks differ between samples (different keys).
    assert (kept[0] != kept[1]).any()


def test_ratio_zero_is_the_identity(tmp_path):
    x = rand(3, 4, 5)
    assert run(*dropout(x, keys(3), 0.0), tmp_path).tobytes() == x.tobytes()


def test_masks_follow_the_key_not_the_position_or_thread_count(tmp_path):
    x, k = rand(8, 16, 28, 28), keys(8)
    ys = [run(*dropout(x, k), tmp_path, threads=t) for t in (1, 2, 3)]
    assert ys[0].tobytes() == ys[1].tobytes() == ys[2].tobytes()
    # Sample 5 alone, and the batch reversed: the same rows.
    alone = run(*dropout(x[5:6], k[5:6]), tmp_path)
    assert alone.tobytes() == ys[0][5:6].tobytes()
    rev = run(*dropout(x[::-1].copy(), k[::-1].copy()), tmp_path)
    assert rev[::-1].tobytes() == ys[0].tobytes()
    # Another salt or another key: another mask.
    other_salt = run(*dropout(x, k, salt=2), tmp_path)
    assert ((other_salt != 0) != (ys[0] != 0)).mean() > 0.2
    other_key = run(*dropout(x, k + 0.001), tmp_path)
    assert ((other_key != 0) != (ys[0] != 0)).mean() > 0.2


def export(model, tmp_path, flag, wrt):
    onnx.save(model, str(tmp_path / "m.onnx"))
    r = scm("scm-export", tmp_path / "m.onnx", tmp_path / "d.onnx", flag, wrt)
    assert r.returncode == 0, r.stderr
    return onnx.load(str(tmp_path / "d.onnx"))


def run_all(model, feeds, tmp_path):
    """All outputs of `model` through scm-infer, by output name."""
    from test_backward_ops import infer
    r, d = infer(model, feeds, tmp_path)
    assert r.returncode == 0, r.stderr
    return {o.name: numpy_helper.to_array(onnx.load_tensor(str(d / "out" / f"output_{i}.pb")))
            for i, o in enumerate(model.graph.output)}


def test_jvp_is_dropout_of_the_tangent(tmp_path):
    x, k, dx = rand(4, 3, 5, 5), keys(4), rand(4, 3, 5, 5)
    model, _ = dropout(x, k)
    jvp = export(model, tmp_path, "--jvp", "x")
    names = [i.name for i in jvp.graph.input]
    feeds = dict(zip(names, [x, k, dx]))
    out = run_all(jvp, feeds, tmp_path)
    expected = run(*dropout(dx, k), tmp_path)
    assert out["y_tangent"].tobytes() == expected.tobytes()


def test_vjp_is_the_adjoint(tmp_path):
    x, k, g = rand(4, 3, 5, 5), keys(4), rand(4, 3, 5, 5)
    model, _ = dropout(x, k)
    grad = export(model, tmp_path, "--grad", "x")
    names = [i.name for i in grad.graph.input]
    out = run_all(grad, dict(zip(names, [x, k, g])), tmp_path)
    dx = out["x_grad"]
    y = run(*dropout(x, k), tmp_path)
    lhs, rhs = (g.astype(np.float64) * y).sum(), (dx.astype(np.float64) * x).sum()
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs), (lhs, rhs)
    assert ((dx == 0) == (y == 0)).all()


def test_errors(tmp_path):
    err = run_error(*dropout(rand(4, 3), keys(3)), tmp_path)
    assert "key [3] must be [N] for X" in err, err
    err = run_error(*dropout(rand(4, 3), keys(4), ratio=1.0), tmp_path)
    assert "ratio must be in [0, 1)" in err, err
