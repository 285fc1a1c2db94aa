"""Finite-difference checks of derivative graphs made by `scm-export` (forward mode: --jvp).

The reference is central finite differences of the *original* model run by onnxruntime, in
float64 when onnxruntime runs the model converted to double (then h = 1e-4 and the truncation
error is about 1e-8 relative), else in float32 (h = 1e-2, error about 1e-4). The derivative graph
runs in our runtime (scm-infer). Inputs avoid kinks (Relu, Abs, Clip) by construction in the
tests that use them.
"""
import os
import subprocess
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from conftest import BIN
from scmtools.onnxrt import ort_session


def to_double(model):
    """The model with every float32 tensor, type and cast made float64."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph

    def retype(vi):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE

    # Resize's roi and scales stay float32 (onnxruntime's Resize reads them as such).
    keep = {i for n in g.node if n.op_type == "Resize" for i in list(n.input)[1:3] if i}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.name not in keep:
            retype(vi)
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT and t.name not in keep:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.DOUBLE
        if n.op_type == "GroupNormalization" and not any(a.name == "stash_type" for a in n.attribute):
            # Statistics in double too (the default stash_type computes them in float32).
            n.attribute.append(helper.make_attribute("stash_type", TensorProto.DOUBLE))
    return m


class Reference:
    """Runs a model in onnxruntime, in float64 when it can."""

    def __init__(self, model, float32=False):
        self.double = True
        self.evaluator = None
        self.outputs = [o.name for o in model.graph.output]
        try:
            if float32:
                raise ValueError("float32 asked for")
            self.sess = ort_session(to_double(model), 1, optimize=False)
            return
        except Exception:
            pass
        # onnxruntime lacks some double kernels (Conv): ONNX's own NumPy reference evaluator in
        # float64 then, if it runs the model.
        try:
            if float32:
                raise ValueError("float32 asked for")
            from onnx.reference import ReferenceEvaluator
            self.evaluator = ReferenceEvaluator(to_double(model))
            self.sess = None
            return
        except Exception:
            self.evaluator = None
        self.double = False
        self.sess = ort_session(model, 1, optimize=False)

    def __call__(self, feeds):
        cast = {k: (v.astype(np.float64) if self.double and v.dtype == np.float32 else v) for k, v in feeds.items()}
        if self.evaluator is not None:
            return [np.asarray(o, np.float64) for o in self.evaluator.run(self.outputs, cast)]
        return [np.asarray(o, np.float64) for o in self.sess.run(self.outputs, cast)]

    def jvp(self, feeds, tangents):
        """Central differences along `tangents` (a dict of float inputs)."""
        h = 1e-4 if self.double else 1e-2
        plus = {k: (v.astype(np.float64) + h * tangents[k] if k in tangents else v) for k, v in feeds.items()}
        minus = {k: (v.astype(np.float64) - h * tangents[k] if k in tangents else v) for k, v in feeds.items()}
        if not self.double:
            plus = {k: (v.astype(np.float32) if k in tangents else v) for k, v in plus.items()}
            minus = {k: (v.astype(np.float32) if k in tangents else v) for k, v in minus.items()}
        return [(p - m) / (2 * h) for p, m in zip(self(plus), self(minus))]


class ScmReference(Reference):
    """Finite differences in our own runtime, float32: for ai.scm ops, which onnxruntime lacks."""

    def __init__(self, model):
        self.model = model
        self.double = False

    def __call__(self, feeds):
        return [np.asarray(o, np.float64) for o in run_scm(self.model, feeds)]


def run_scm(model, feeds, threads=1):
    """Runs `model` (a ModelProto) in scm-infer on `feeds` (graph-input order); returns outputs."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.onnx")
        onnx.save(model, path)
        inits = {t.name for t in model.graph.initializer}
        args = [os.path.join(BIN, "scm-infer"), path, "--output-dir", os.path.join(d, "out"), "--threads", str(threads)]
        files = []
        for i, vi in enumerate(x for x in model.graph.input if x.name not in inits):
            f = os.path.join(d, f"in_{i}.pb")
            with open(f, "wb") as fh:
                fh.write(numpy_helper.from_array(feeds[vi.name], vi.name).SerializeToString())
            files.append(f)
        if files:
            args += ["--inputs", *files]
        r = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs = []
        for i in range(len(model.graph.output)):
            t = onnx.TensorProto()
            with open(os.path.join(d, "out", f"output_{i}.pb"), "rb") as fh:
                t.ParseFromString(fh.read())
            outs.append(numpy_helper.to_array(t))
        return outs


def export_jvp(model, wrt, tmp):
    """`scm-export MODEL OUT --jvp wrt`; returns the derivative ModelProto."""
    src, dst = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "jvp.onnx")
    onnx.save(model, src)
    r = subprocess.run([os.path.join(BIN, "scm-export"), src, dst, "--jvp", ",".join(wrt)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return onnx.load(dst)


def relative_error(ours, ref):
    """max |ours - ref| / max |ref| (ref's scale; 1 when ref is all zeros)."""
    scale = max(float(np.max(np.abs(ref))), 1e-30) if ref.size else 1.0
    return float(np.max(np.abs(ours.astype(np.float64) - ref))) / scale if ref.size else 0.0


def make_reference(model, float32=False):
    return ScmReference(model) if any(n.domain == "ai.scm" for n in model.graph.node) else Reference(model, float32)


def check_jvp(model, feeds, wrt, tmp, seed=0, tol=None, float32=False):
    """Exports the JVP of `model` along random tangents of `wrt`, runs it in our runtime and
    compares every tangent output with central differences; returns the worst relative error."""
    rng = np.random.default_rng(seed)
    tangents = {k: rng.normal(size=feeds[k].shape) for k in wrt}
    jvp_model = export_jvp(model, wrt, tmp)
    jfeeds = dict(feeds)
    for k in wrt:
        jfeeds[k + "_tangent"] = tangents[k].astype(feeds[k].dtype)
    ours = run_scm(jvp_model, jfeeds)
    ref = make_reference(model, float32)
    expected = ref.jvp(feeds, {k: tangents[k].astype(feeds[k].dtype).astype(np.float64) for k in wrt})
    n = len(model.graph.output)
    float_outs = [i for i, o in enumerate(model.graph.output) if o.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.DOUBLE)]
    assert len(ours) == n + len(float_outs), (len(ours), n)
    tol = tol if tol is not None else (1e-4 if ref.double else 2e-2)
    worst = 0.0
    for k, i in enumerate(float_outs):
        err = relative_error(ours[n + k], expected[i])
        assert ours[n + k].shape == expected[i].shape, (ours[n + k].shape, expected[i].shape)
        assert err <= tol, f"output {model.graph.output[i].name}: relative error {err:.3g} > {tol} (reference in {'float64' if ref.double else 'float32'})"
        worst = max(worst, err)
    return worst


def export_grad(model, wrt, tmp):
    """`scm-export MODEL OUT --grad wrt`; returns the derivative ModelProto."""
    src, dst = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "grad.onnx")
    onnx.save(model, src)
    r = subprocess.run([os.path.join(BIN, "scm-export"), src, dst, "--grad", ",".join(wrt)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return onnx.load(dst)


def promote(model, names):
    """The model with the initializers `names` turned into graph inputs; returns it and their values."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    values = {}
    kept = []
    for t in m.graph.initializer:
        if t.name in names:
            values[t.name] = numpy_helper.to_array(t)
            m.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            kept.append(t)
    del m.graph.initializer[:]
    m.graph.initializer.extend(kept)
    return m, values


def float_outputs(model):
    return [i for i, o in enumerate(model.graph.output) if o.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.DOUBLE)]


def run_grad(model, feeds, wrt, cotangents, tmp):
    """Exports `--grad wrt` and runs it in our runtime; returns {name: gradient} by output name."""
    grad_model = export_grad(model, wrt, tmp)
    gfeeds = dict(feeds)
    for i, u in cotangents.items():
        double = model.graph.output[i].type.tensor_type.elem_type == TensorProto.DOUBLE
        gfeeds[model.graph.output[i].name + "_cotangent"] = u.astype(np.float64 if double else np.float32)
    outs = run_scm(grad_model, gfeeds)
    names = [o.name for o in grad_model.graph.output]
    return {n[:-len("_grad")]: v for n, v in zip(names, outs) if n.endswith("_grad")}, grad_model


def check_vjp(model, feeds, wrt, tmp, seed=0, tol=None, full=True, float32=False):
    """Exports the gradient of sum_o <u_o, output_o> for random cotangents u, runs it in our
    runtime, and compares: with `full`, every element of every gradient against central
    differences of that element; else directional derivatives along a random direction over the
    graph inputs in `wrt` and one over the initializers in `wrt`. Returns the worst relative error."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    params = [n for n in wrt if n in inits]
    ref_model, pvalues = promote(model, params)
    base = dict(feeds)
    base.update(pvalues)
    outs = float_outputs(model)
    ref = make_reference(ref_model, float32)
    y = ref(base)
    cot = {i: rng.normal(size=y[i].shape) for i in outs}
    grads, _ = run_grad(model, feeds, wrt, cot, tmp)
    # float32 references: a step large enough for the rounding of the loss, small enough that a
    # direction over every parameter at once stays in the linear regime.
    h = 1e-4 if ref.double else (1e-2 if full else 1e-3)
    tol = tol if tol is not None else (1e-4 if ref.double else 2e-2)

    def loss(values):
        ys = ref(values)
        return sum(float(np.sum(cot[i] * ys[i])) for i in outs)

    def shifted(deltas):
        v = dict(base)
        for name, delta in deltas.items():
            v[name] = np.asarray(base[name].astype(np.float64) + delta)
            if not ref.double:
                v[name] = v[name].astype(np.float32)
        return v

    worst = 0.0
    for name in wrt:
        assert name in grads, (name, list(grads))
        assert grads[name].shape == base[name].shape, (name, grads[name].shape, base[name].shape)
    if full:
        for name in wrt:
            g = grads[name].astype(np.float64)
            fd = np.zeros(base[name].shape)
            for idx in np.ndindex(*base[name].shape):
                e = np.zeros(base[name].shape)
                e[idx] = h
                fd[idx] = (loss(shifted({name: e})) - loss(shifted({name: -e}))) / (2 * h)
            err = relative_error(g, fd)
            assert err <= tol, f"gradient of {name}: relative error {err:.3g} > {tol} (reference in {'float64' if ref.double else 'float32'})"
            worst = max(worst, err)
        return worst
    # Directional derivatives: one along the graph inputs in `wrt`, one along all initializers
    # at once (a single parameter's gradient may be nearly zero, e.g. a scale a normalization
    # removes, where a relative comparison means nothing).
    groups = [[n for n in wrt if n not in inits], [n for n in wrt if n in inits]]
    for group in (g for g in groups if g):
        # Each name's direction scaled by its values' RMS: a relative perturbation of every weight.
        v = {n: rng.normal(size=base[n].shape) * max(float(np.sqrt(np.mean(base[n].astype(np.float64) ** 2))), 1e-3)
             for n in group}
        fd = (loss(shifted({n: h * v[n] for n in group})) - loss(shifted({n: -h * v[n] for n in group}))) / (2 * h)
        ours = sum(float(np.sum(grads[n].astype(np.float64) * v[n])) for n in group)
        err = abs(ours - fd) / max(abs(fd), 1e-30)
        assert err <= tol, f"directional derivative over {group[:4]}{'...' if len(group) > 4 else ''}: ours {ours:.6g}, finite differences {fd:.6g}, relative error {err:.3g} > {tol}"
        worst = max(worst, err)
    return worst


def _scm_only(model):
    return any(n.domain == "ai.scm" for n in model.graph.node)
