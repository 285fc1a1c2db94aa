"""The sCT loss, its parameter gradient and the fused Adam step (`scm-export --sct-loss`, `--grad`,
`--train-step`) against an independent NumPy implementation: a small MLP with a log-variance
head, its forward-mode tangent propagated by hand, the loss written from the seed's formulas, the
gradient by central differences in float64 with the stop-gradient target held fixed, and Adam
written out."""
import os
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import BIN
from derivcheck import run_scm

SIGMA = 0.5
FREQS = np.array([[1.0, 2.0, 4.0, 8.0]], np.float32)


def mlp_params(seed=0, hidden=16):
    rng = np.random.default_rng(seed)
    return {"w1": (rng.normal(size=(10, hidden)) / 3).astype(np.float32), "b1": (rng.normal(size=hidden) * 0.1).astype(np.float32),
            "w2": (rng.normal(size=(hidden, 2)) / 4).astype(np.float32), "b2": (rng.normal(size=2) * 0.1).astype(np.float32),
            "w3": (rng.normal(size=(8, 1)) / 3).astype(np.float32), "b3": (rng.normal(size=1) * 0.1).astype(np.float32)}


def mlp_model(p):
    """F(x, t) and logvar(t) of a one-hidden-layer MLP on [x, sin(t f), cos(t f)]."""
    n = helper.make_node
    nodes = [
        n("Unsqueeze", ["t", "axes1"], ["tt"]), n("Mul", ["tt", "freqs"], ["arg"]),
        n("Sin", ["arg"], ["s"]), n("Cos", ["arg"], ["c"]), n("Concat", ["s", "c"], ["emb"], axis=1),
        n("Concat", ["x", "emb"], ["h"], axis=1), n("Gemm", ["h", "w1", "b1"], ["h1"]),
        n("Sigmoid", ["h1"], ["sg"]), n("Mul", ["h1", "sg"], ["a1"]), n("Gemm", ["a1", "w2", "b2"], ["F"]),
        n("Gemm", ["emb", "w3", "b3"], ["logvar"]),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in p.items()]
    inits += [numpy_helper.from_array(np.array([1], np.int64), "axes1")]
    nodes.insert(0, n("Constant", [], ["freqs"], value=numpy_helper.from_array(FREQS)))  # a buffer, not a parameter
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2]),
                                         helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N"])],
                          [helper.make_tensor_value_info("F", TensorProto.FLOAT, ["N", 2]),
                           helper.make_tensor_value_info("logvar", TensorProto.FLOAT, ["N", 1])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def mlp_jvp(p, x, t, dx, dt):
    """F, dF (forward-mode by hand) and logvar, in float64."""
    p = {k: v.astype(np.float64) for k, v in p.items()}
    f = FREQS.astype(np.float64)
    arg, darg = t[:, None] * f, dt[:, None] * f
    emb = np.concatenate([np.sin(arg), np.cos(arg)], 1)
    demb = np.concatenate([np.cos(arg) * darg, -np.sin(arg) * darg], 1)
    h, dh = np.concatenate([x, emb], 1), np.concatenate([dx, demb], 1)
    h1, dh1 = h @ p["w1"] + p["b1"], dh @ p["w1"]
    s = sigmoid(h1)
    a1, da1 = h1 * s, dh1 * (s + h1 * s * (1 - s))
    return a1 @ p["w2"] + p["b2"], da1 @ p["w2"], emb @ p["w3"] + p["b3"]


def segment_angle(t, segments):
    """u = t - s(t), s(t) the largest boundary below t (else 0): the angle of a multistep
    consistency model's map from t to its segment's start."""
    s = np.zeros_like(t)
    for b in segments:
        s = np.where(t > b, np.maximum(s, b), s)
    return t - s


def sct_reference(p, x0, z, t, r, c=0.1, target=None, segments=()):
    """The seed's sCT loss; returns (loss, target). With `target` given, it is used as is (the
    stop-gradient: the gradient then flows only through F and logvar). With `segments`, the
    multistep form: u = t - s(t) in place of t in the tangent's factors."""
    x0, z, t = x0.astype(np.float64), z.astype(np.float64), t.astype(np.float64)
    ct, st = np.cos(t)[:, None], np.sin(t)[:, None]
    u = segment_angle(t, segments)
    cu, su = np.cos(u)[:, None], np.sin(u)[:, None]
    xt = ct * x0 + st * z
    dxt = ct * z - st * x0
    F, dF, lv = mlp_jvp(p, xt / SIGMA, t, cu * su * dxt / SIGMA, np.cos(u) * np.sin(u))
    if target is None:
        g = -cu ** 2 * (SIGMA * F - dxt) - r * (cu * su * xt + SIGMA * dF)
        rms = np.sqrt(np.mean(g ** 2, axis=1, keepdims=True))
        target = F + g / (rms + c)
    loss = np.mean(np.exp(-lv) * (F - target) ** 2 + lv)
    return loss, target


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("train"))
    p = mlp_params()
    net = os.path.join(tmp, "net.onnx")
    onnx.save(mlp_model(p), net)
    loss = os.path.join(tmp, "loss.onnx")
    r = subprocess.run([os.path.join(BIN, "scm-export"), net, loss, "--sct-loss", "--sigma-data", str(SIGMA)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rng = np.random.default_rng(1)
    n = 6
    data = {"sct_x0": rng.normal(size=(n, 2)).astype(np.float32), "sct_z": (rng.normal(size=(n, 2)) * SIGMA).astype(np.float32),
            "sct_t": rng.uniform(0.1, 1.5, n).astype(np.float32), "sct_r": np.array(0.7, np.float32)}
    return tmp, p, loss, data


def test_sct_loss_matches_numpy(setup):
    tmp, p, loss_path, data = setup
    ours = run_scm(onnx.load(loss_path), data)[0]
    ref, _ = sct_reference(p, data["sct_x0"], data["sct_z"], data["sct_t"], 0.7)
    assert ours.shape == ()
    assert abs(float(ours) - ref) <= 1e-4 * abs(ref), (float(ours), ref)


def check_gradient(tmp, p, loss_path, data, segments=()):
    """`scm-export --grad params` of the loss against central differences of the reference with
    the stop-gradient target held fixed."""
    grad_path = loss_path[:-len(".onnx")] + "-grad.onnx"
    r = subprocess.run([os.path.join(BIN, "scm-export"), loss_path, grad_path, "--grad", "params"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    g = onnx.load(grad_path)
    feeds = dict(data)
    feeds["sct_loss_cotangent"] = np.array(1, np.float32)
    outs = dict(zip([o.name for o in g.graph.output], run_scm(g, feeds)))
    names = sorted(k[:-5] for k in outs if k.endswith("_grad"))
    assert names == sorted(p), names  # every parameter, and only those
    _, target = sct_reference(p, data["sct_x0"], data["sct_z"], data["sct_t"], 0.7, segments=segments)
    h = 1e-6
    for k, v in p.items():
        fd = np.zeros(v.shape)
        for idx in np.ndindex(*v.shape):
            q = {a: b.astype(np.float64) for a, b in p.items()}
            q[k] = q[k].copy()
            q[k][idx] += h
            lp, _ = sct_reference(q, data["sct_x0"], data["sct_z"], data["sct_t"], 0.7, target=target, segments=segments)
            q[k][idx] -= 2 * h
            lm, _ = sct_reference(q, data["sct_x0"], data["sct_z"], data["sct_t"], 0.7, target=target, segments=segments)
            fd[idx] = (lp - lm) / (2 * h)
        err = np.max(np.abs(outs[k + "_grad"] - fd)) / np.max(np.abs(fd))
        assert err <= 1e-4, (k, err)


def test_sct_gradient_matches_numpy(setup):
    check_gradient(*setup)


@pytest.mark.parametrize("clip,wd,ema", [(0.0, 0.0, 0.0), (0.05, 0.01, 0.9)])
def test_train_step_matches_numpy_adam(setup, clip, wd, ema):
    """One step of the exported step graph: loss, gradient norm, and every parameter, moment and
    EMA after the fused update, against Adam written out in NumPy on the reference gradient."""
    tmp, p, loss_path, data = setup
    step_path = os.path.join(tmp, f"step_{clip}_{wd}_{ema}.onnx")
    args = [os.path.join(BIN, "scm-export"), loss_path, step_path, "--train-step", "--max-grad-norm", str(clip),
            "--weight-decay", str(wd), "--ema-decay", str(ema)]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    model = onnx.load(step_path)
    names = [i.name for i in model.graph.input]
    rng = np.random.default_rng(2)
    feeds = dict(data)
    feeds["train_step"] = np.array(3, np.float32)
    feeds["train_lr"] = np.array(0.01, np.float32)
    state = {}
    for k, v in p.items():
        state[k] = v
        state[k + "_adam_m"] = (rng.normal(size=v.shape) * 0.01).astype(np.float32)
        state[k + "_adam_v"] = (rng.uniform(0, 1e-3, v.shape)).astype(np.float32)
        if ema:
            state[k + "_ema"] = (v + rng.normal(size=v.shape) * 0.01).astype(np.float32)
    feeds.update(state)
    assert set(names) == set(feeds), (sorted(names), sorted(feeds))
    outs = dict(zip([o.name for o in model.graph.output], run_scm(model, feeds)))
    # Reference: the gradient from the graph of --grad (checked against NumPy above), then Adam.
    grad_path = os.path.join(tmp, "grad_for_step.onnx")
    subprocess.run([os.path.join(BIN, "scm-export"), loss_path, grad_path, "--grad", "params"], check=True, capture_output=True)
    gfeeds = dict(data)
    gfeeds["sct_loss_cotangent"] = np.array(1, np.float32)
    gm = onnx.load(grad_path)
    gouts = dict(zip([o.name for o in gm.graph.output], run_scm(gm, gfeeds)))
    grads = {k: gouts[k + "_grad"].astype(np.float64) for k in p}
    norm = np.sqrt(sum(np.sum(gr ** 2) for gr in grads.values()))
    assert abs(outs["train_grad_norm"] - norm) <= 1e-5 * norm
    assert abs(outs["train_loss"] - gouts["sct_loss"]) <= 1e-6 * abs(gouts["sct_loss"])
    scale = min(1.0, clip / (norm + 1e-6)) if clip > 0 else 1.0
    if clip:
        assert scale < 1, "the test should exercise clipping"
    b1, b2, eps, t, lr = 0.9, 0.999, 1e-8, 3, 0.01
    for k in p:
        gk = grads[k] * scale
        m = b1 * state[k + "_adam_m"] + (1 - b1) * gk
        v = b2 * state[k + "_adam_v"] + (1 - b2) * gk ** 2
        pn = p[k] - lr * ((m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps) + wd * p[k])
        for got, want in [(outs[k + "_next"], pn), (outs[k + "_adam_m_next"], m), (outs[k + "_adam_v_next"], v)]:
            assert np.max(np.abs(got - want)) <= 1e-5 * max(1e-3, np.max(np.abs(want))), k
        if ema:
            en = ema * state[k + "_ema"] + (1 - ema) * pn
            assert np.max(np.abs(outs[k + "_ema_next"] - en)) <= 1e-5 * np.max(np.abs(en))


def test_unet_train_step_is_thread_invariant(tmp_path):
    """The sCT step of a tiny UNet (velocity output): loss, norm and every updated parameter
    bitwise equal on 1 and 2 threads, and a few steps lower the loss on a fixed batch."""
    import make_tiny_model
    net = tmp_path / "unet.onnx"
    onnx.save(make_tiny_model.build("onnx", channels=8, size=8, seed=1, parameterization="velocity"), str(net))
    loss, step = tmp_path / "loss.onnx", tmp_path / "step.onnx"
    for args in ([net, loss, "--sct-loss"], [loss, step, "--train-step", "--max-grad-norm", "10"]):
        r = subprocess.run([os.path.join(BIN, "scm-export"), *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    model = onnx.load(str(step))
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(net)).graph.initializer}
    rng = np.random.default_rng(3)
    n = 4
    feeds = {"sct_x0": rng.uniform(-1, 1, (n, 1, 8, 8)).astype(np.float32),
             "sct_z": (rng.normal(size=(n, 1, 8, 8)) * 0.5).astype(np.float32),
             "sct_t": rng.uniform(0.2, 1.4, n).astype(np.float32), "sct_r": np.array(1, np.float32),
             "train_step": np.array(1, np.float32), "train_lr": np.array(1e-3, np.float32)}
    for i in model.graph.input:
        if i.name in feeds:
            continue
        base = i.name
        for suffix in ("_adam_m", "_adam_v"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        assert base in inits, i.name
        feeds[i.name] = inits[base] if base == i.name else np.zeros_like(inits[base])
    one = run_scm(model, feeds, threads=1)
    two = run_scm(model, feeds, threads=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    names = [o.name for o in model.graph.output]
    losses = []
    for s in range(4):
        outs = dict(zip(names, run_scm(model, feeds)))
        losses.append(float(outs["train_loss"]))
        feeds["train_step"] = np.array(s + 2, np.float32)
        for k in list(feeds):
            if k + "_next" in outs:
                feeds[k] = outs[k + "_next"]
    assert losses[-1] < losses[0], losses


def test_multistep_tangent_is_cos_u_times_the_derivative_of_f():
    """The multistep tangent (r = 1) is cos u df/dt, with f(x, t) = cos u x - sin u sigma_d F and
    u = t - s(t), differentiated along the trajectory x_t = cos t x0 + sin t z by central
    differences with the segment held: the derivation, checked without the runtime."""
    p = mlp_params()
    rng = np.random.default_rng(3)
    n, segments = 8, (0.5, 1.1)
    x0, z = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) * SIGMA
    t = rng.uniform(0.1, 1.5, n)
    u = segment_angle(t, segments)
    assert (u < t).any() and (u == t).any()
    s = t - u

    def f(tt):
        xt = np.cos(tt)[:, None] * x0 + np.sin(tt)[:, None] * z
        F, _, _ = mlp_jvp(p, xt / SIGMA, tt, np.zeros_like(xt), np.zeros_like(tt))
        uu = (tt - s)[:, None]
        return np.cos(uu) * xt - np.sin(uu) * SIGMA * F

    h = 1e-5
    df = (f(t + h) - f(t - h)) / (2 * h)
    cu, su, ct, st = np.cos(u)[:, None], np.sin(u)[:, None], np.cos(t)[:, None], np.sin(t)[:, None]
    xt, dxt = ct * x0 + st * z, ct * z - st * x0
    F, dF, _ = mlp_jvp(p, xt / SIGMA, t, cu * su * dxt / SIGMA, np.cos(u) * np.sin(u))
    g = -cu ** 2 * (SIGMA * F - dxt) - (cu * su * xt + SIGMA * dF)
    np.testing.assert_allclose(g, cu * df, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("segments", [[0.8], [0.5, 1.1]])
def test_multistep_sct_loss_and_gradient_match_numpy(setup, segments):
    tmp, p, _, data = setup
    net = os.path.join(tmp, "net.onnx")
    loss_path = os.path.join(tmp, f"loss-{len(segments)}.onnx")
    r = subprocess.run([os.path.join(BIN, "scm-export"), net, loss_path, "--sct-loss", "--sigma-data", str(SIGMA),
                        "--segments", ",".join(map(str, segments))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    t = data["sct_t"].astype(np.float64)
    assert (segment_angle(t, segments) < t).any() and (segment_angle(t, segments) == t).any()
    ours = run_scm(onnx.load(loss_path), data)[0]
    ref, target = sct_reference(p, data["sct_x0"], data["sct_z"], data["sct_t"], 0.7, segments=segments)
    plain, _ = sct_reference(p, data["sct_x0"], data["sct_z"], data["sct_t"], 0.7)
    assert abs(ref - plain) > 1e-3 * abs(plain)  # the segments change the loss
    assert abs(float(ours) - ref) <= 1e-4 * abs(ref), (float(ours), ref)
    check_gradient(tmp, p, loss_path, data, segments)
