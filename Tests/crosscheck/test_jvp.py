"""Forward-mode derivatives (`scm-export --jvp`) of every op with a JVP rule, against central
finite differences of the original op run by onnxruntime (float64 where it can; see derivcheck)."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from derivcheck import check_jvp

RNG = np.random.default_rng(0)


def rand(*shape, low=None, away=None):
    """Normal samples; `low`: uniform in [low, low + 2]; `away`: |x| >= away (no kinks)."""
    if low is not None:
        return RNG.uniform(low, low + 2, shape).astype(np.float32)
    x = RNG.normal(size=shape).astype(np.float32)
    if away is not None:
        x = np.where(np.abs(x) < away, np.sign(x + 1e-9) * (away + np.abs(x)), x).astype(np.float32)
    return x


# The cases of the elementwise families added with issue 39 draw from their own generator, so that
# the cases above and below keep their samples.
RNG39 = np.random.default_rng(39)


def uniform(lo, hi, *shape):
    return RNG39.uniform(lo, hi, shape).astype(np.float32)


def bands(*ranges, shape):
    """Uniform samples, each from one of `ranges` (lo, hi) picked at random: every piece of a
    piecewise function, none near its kinks."""
    pick = RNG39.integers(0, len(ranges), shape)
    lo, hi = np.array([r[0] for r in ranges])[pick], np.array([r[1] for r in ranges])[pick]
    return RNG39.uniform(lo, hi).astype(np.float32)


def single(op, inputs, consts=None, attrs=None, outputs=1, opset=21, domain="", out_type=TensorProto.FLOAT):
    """A model of one node: `inputs` (name -> array) are graph inputs, `consts` initializers."""
    consts = consts or {}
    names = list(inputs) + list(consts)
    outs = [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, names, outs, domain=domain, **(attrs or {}))
    g = helper.make_graph([node], op, [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                                       for k, v in inputs.items()],
                          [helper.make_tensor_value_info(o, out_type, None) for o in outs],
                          [numpy_helper.from_array(v, k) for k, v in consts.items()])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(g, opset_imports=imports, ir_version=10), inputs


def case(id, op, inputs, consts=None, attrs=None, wrt=None, **kw):
    return pytest.param(op, inputs, consts, attrs, wrt, kw, id=id)


CASES = [
    # Unary
    *[case(op, op, {"x": rand(2, 3, 4)}) for op in ["Neg", "Exp", "Sin", "Cos", "Tanh", "Sigmoid", "Erf"]],
    case("Abs", "Abs", {"x": rand(2, 3, 4, away=0.1)}),
    case("Relu", "Relu", {"x": rand(2, 3, 4, away=0.1)}),
    case("LeakyRelu", "LeakyRelu", {"x": rand(2, 3, 4, away=0.1)}, attrs={"alpha": 0.2}),
    case("Sqrt", "Sqrt", {"x": rand(2, 3, 4, low=0.5)}),
    case("Log", "Log", {"x": rand(2, 3, 4, low=0.5)}),
    case("Reciprocal", "Reciprocal", {"x": rand(2, 3, 4, away=0.5)}),
    case("Gelu", "Gelu", {"x": rand(2, 3, 4)}),
    case("Gelu_tanh", "Gelu", {"x": rand(2, 3, 4)}, attrs={"approximate": "tanh"}),
    case("Softplus", "Softplus", {"x": rand(2, 3, 4) * 4}),
    case("Mish", "Mish", {"x": rand(2, 3, 4) * 3}),
    # Trigonometric, hyperbolic and their inverses; Round and Sign (zero derivative); activations
    case("Tan", "Tan", {"x": uniform(-1.2, 1.2, 2, 3, 4)}),
    case("Asin", "Asin", {"x": uniform(-0.9, 0.9, 2, 3, 4)}),
    case("Acos", "Acos", {"x": uniform(-0.9, 0.9, 2, 3, 4)}),
    case("Atan", "Atan", {"x": uniform(-3, 3, 2, 3, 4)}),
    case("Sinh", "Sinh", {"x": uniform(-2, 2, 2, 3, 4)}),
    case("Cosh", "Cosh", {"x": uniform(-2, 2, 2, 3, 4)}),
    case("Asinh", "Asinh", {"x": uniform(-3, 3, 2, 3, 4)}),
    case("Acosh", "Acosh", {"x": uniform(1.2, 4, 2, 3, 4)}),
    case("Atanh", "Atanh", {"x": uniform(-0.9, 0.9, 2, 3, 4)}),
    case("Round", "Round", {"x": bands(*[(k - 0.35, k + 0.35) for k in range(-3, 4)], shape=(2, 3, 4))}),
    case("Sign", "Sign", {"x": bands((-2, -0.1), (0.1, 2), shape=(2, 3, 4))}),
    case("Elu", "Elu", {"x": bands((-3, -0.1), (0.1, 3), shape=(2, 3, 4))}, attrs={"alpha": 0.7}),
    case("Selu", "Selu", {"x": bands((-3, -0.1), (0.1, 3), shape=(2, 3, 4))}),
    case("Celu", "Celu", {"x": bands((-3, -0.1), (0.1, 3), shape=(2, 3, 4))}, attrs={"alpha": 1.5}),
    case("HardSigmoid", "HardSigmoid", {"x": bands((-3, -1.4), (-1, 0.6), (1, 3), shape=(2, 3, 4))},
         attrs={"alpha": 0.5, "beta": 0.6}),  # v = 0.5 x + 0.6: 0 at x = -1.2, 1 at x = 0.8
    case("HardSwish", "HardSwish", {"x": bands((-5, -3.3), (-2.7, 2.7), (3.3, 5), shape=(2, 3, 4))}),
    case("Softsign", "Softsign", {"x": uniform(-3, 3, 2, 3, 4)}),
    case("ThresholdedRelu", "ThresholdedRelu", {"x": bands((-2, 0.3), (0.7, 2), shape=(2, 3, 4))}, attrs={"alpha": 0.5}),
    case("PRelu", "PRelu", {"x": bands((-2, -0.1), (0.1, 2), shape=(2, 3, 4)), "s": uniform(0.1, 0.5, 3, 1)}),
    case("PRelu_x_only", "PRelu", {"x": bands((-2, -0.1), (0.1, 2), shape=(2, 3, 4))}, consts={"s": uniform(0.1, 0.5, 4)}),
    case("LogSoftmax", "LogSoftmax", {"x": uniform(-2, 2, 2, 5, 3)}, attrs={"axis": 1}),
    case("LogSoftmax_last_axis", "LogSoftmax", {"x": uniform(-2, 2, 2, 3, 4)}),
    # Binary, with broadcasting
    case("Add", "Add", {"a": rand(2, 3, 4), "b": rand(4)}),
    case("Add_b_only", "Add", {"a": rand(2, 3, 4), "b": rand(3, 1)}, wrt=["b"]),
    case("Sub", "Sub", {"a": rand(2, 3, 4), "b": rand(3, 1)}),
    case("Sub_b_only", "Sub", {"a": rand(2, 3, 4), "b": rand(1, 4)}, wrt=["b"]),
    case("Mul", "Mul", {"a": rand(2, 3, 4), "b": rand(1, 3, 1)}),
    case("Div", "Div", {"a": rand(2, 3, 4), "b": rand(3, 1, away=0.5)}),
    case("Pow", "Pow", {"a": rand(2, 3, low=0.5), "b": rand(2, 3)}),
    case("Pow_const", "Pow", {"a": rand(2, 3, low=0.5)}, consts={"e": np.array(3.0, np.float32)}),
    case("Pow_int_exponent", "Pow", {"a": rand(2, 3, away=0.3)}, consts={"e": np.array(2, np.int64)}),
    case("Where", "Where", {"a": rand(2, 3), "b": rand(3)}, consts={"c": RNG.random((2, 1)) > 0.5}, order=["c", "a", "b"]),
    case("Clip", "Clip", {"x": rand(2, 3, 4, away=0.05)}, consts={"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}),
    # Linear algebra
    case("Conv", "Conv", {"x": rand(2, 3, 6, 6), "w": rand(4, 3, 3, 3), "b": rand(4)}, attrs={"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    case("Conv_bias_only", "Conv", {"x": rand(2, 3, 5, 5), "w": rand(4, 3, 3, 3), "b": rand(4)}, wrt=["b"]),
    case("Conv_group", "Conv", {"x": rand(1, 4, 5, 5), "w": rand(4, 2, 3, 3)}, attrs={"group": 2, "dilations": [2, 2]}),
    case("Conv_1d", "Conv", {"x": rand(2, 3, 7), "w": rand(2, 3, 3)}, attrs={"pads": [1, 1]}),
    case("ConvTranspose", "ConvTranspose", {"x": rand(2, 3, 4, 4), "w": rand(3, 2, 3, 3), "b": rand(2)}, attrs={"strides": [2, 2]}),
    case("Gemm", "Gemm", {"a": rand(3, 4), "b": rand(5, 4), "c": rand(5)}, attrs={"transB": 1, "alpha": 0.5, "beta": 2.0}),
    case("Gemm_c_only", "Gemm", {"a": rand(4, 3), "b": rand(4, 5), "c": rand(1, 5)}, attrs={"transA": 1}, wrt=["c"]),
    case("MatMul", "MatMul", {"a": rand(2, 3, 4), "b": rand(4, 5)}),
    case("MatMul_batched", "MatMul", {"a": rand(2, 3, 4), "b": rand(2, 4, 5)}),
    # Einsum: SGEMM forms (in place, transposed, packed and unpacked operands) and the loop form
    case("Einsum_matmul", "Einsum", {"a": rand(3, 4), "b": rand(4, 5)}, attrs={"equation": "ij,jk->ik"}),
    case("Einsum_attention", "Einsum", {"q": rand(2, 2, 3, 4), "k": rand(2, 2, 5, 4)}, attrs={"equation": "bhid,bhjd->bhij"}),
    case("Einsum_packed", "Einsum", {"a": rand(3, 4, 2), "b": rand(2, 5)}, attrs={"equation": "ikj,jl->lik"}),
    case("Einsum_ellipsis", "Einsum", {"a": rand(2, 3, 4), "b": rand(4, 2)}, attrs={"equation": "...ij,jk->...ik"}),
    case("Einsum_unpatchify", "Einsum", {"x": rand(2, 2, 2, 2, 2, 1)}, attrs={"equation": "nhwpqc->nchpwq"}),
    case("Einsum_three", "Einsum", {"a": rand(2, 3), "b": rand(3, 4), "c": rand(4, 2)}, attrs={"equation": "ij,jk,kl->il"}),
    case("Einsum_implicit", "Einsum", {"a": rand(3, 4), "b": rand(4, 2)}, attrs={"equation": "ij,jk"}),
    case("Einsum_diagonal", "Einsum", {"x": rand(2, 3, 3)}, attrs={"equation": "bii->bi"}),
    # Reductions and normalization
    case("Softmax", "Softmax", {"x": rand(2, 5, 3)}, attrs={"axis": 1}),
    case("ReduceMean", "ReduceMean", {"x": rand(2, 3, 4)}, consts={"axes": np.array([1], np.int64)}, attrs={"keepdims": 0}),
    case("ReduceSum", "ReduceSum", {"x": rand(2, 3, 4)}, consts={"axes": np.array([0, 2], np.int64)}),
    # contiguous runs of 16 or more: the block-sum path of ReduceKernel
    case("ReduceMean_long_run", "ReduceMean", {"x": rand(2, 3, 40)}, consts={"axes": np.array([2], np.int64)}),
    case("ReduceSum_runs", "ReduceSum", {"x": rand(3, 4, 6, 7)}, consts={"axes": np.array([0, 2, 3], np.int64)},
         attrs={"keepdims": 0}),
    # the rest of the Reduce family (opset 21: axes as input), CumSum and Trilu
    case("ReduceSumSquare", "ReduceSumSquare", {"x": rand(2, 3, 4)}, consts={"axes": np.array([1], np.int64)}),
    case("ReduceL1", "ReduceL1", {"x": rand(2, 3, 4, away=0.1)}, consts={"axes": np.array([0, 2], np.int64)},
         attrs={"keepdims": 0}),
    case("ReduceL2", "ReduceL2", {"x": rand(2, 3, 4)}, consts={"axes": np.array([2], np.int64)}),
    case("ReduceLogSum", "ReduceLogSum", {"x": rand(2, 3, 4, low=0.5)}, consts={"axes": np.array([1], np.int64)},
         attrs={"keepdims": 0}),
    case("ReduceLogSumExp", "ReduceLogSumExp", {"x": rand(2, 3, 4)}, consts={"axes": np.array([-1], np.int64)}),
    case("ReduceLogSumExp_all", "ReduceLogSumExp", {"x": rand(2, 3, 4)}, attrs={"keepdims": 0}),
    case("ReduceProd", "ReduceProd", {"x": rand(2, 3, 4, low=0.5)}, consts={"axes": np.array([0, 2], np.int64)}),
    case("ReduceMin", "ReduceMin", {"x": rand(2, 3, 4)}, consts={"axes": np.array([1], np.int64)}, attrs={"keepdims": 0}),
    case("ReduceMax", "ReduceMax", {"x": rand(2, 3, 4)}, consts={"axes": np.array([0, 2], np.int64)}),
    case("ReduceL2_noop", "ReduceL2", {"x": rand(2, 3, away=0.1)}, attrs={"noop_with_empty_axes": 1}),
    case("CumSum", "CumSum", {"x": rand(2, 3, 4)}, consts={"axis": np.array(1, np.int64)}),
    case("CumSum_exclusive_reverse", "CumSum", {"x": rand(2, 5)}, consts={"axis": np.array(-1, np.int64)},
         attrs={"exclusive": 1, "reverse": 1}),
    case("Trilu_upper", "Trilu", {"x": rand(2, 4, 5)}, consts={"k": np.array(1, np.int64)}),
    case("Trilu_lower", "Trilu", {"x": rand(3, 4)}, consts={"k": np.array(-1, np.int64)}, attrs={"upper": 0}),
    case("InstanceNormalization", "InstanceNormalization", {"x": rand(2, 3, 5), "s": rand(3), "b": rand(3)}),
    case("GroupNormalization_18", "GroupNormalization", {"x": rand(2, 4, 3, 3), "s": rand(2), "b": rand(2)},
         attrs={"num_groups": 2}, opset=18),
    case("GroupNormalization_21", "GroupNormalization", {"x": rand(2, 4, 3, 3), "s": rand(4), "b": rand(4)},
         attrs={"num_groups": 2}, opset=21),
    # off-center values and 25 positions (SIMD lanes and a tail) per channel: ai.scm:GroupNormGrad's sums
    case("GroupNormalization_21_offset", "GroupNormalization", {"x": rand(3, 8, 5, 5) + 3, "s": rand(8), "b": rand(8)},
         attrs={"num_groups": 4}, opset=21),
    case("LayerNormalization", "LayerNormalization", {"x": rand(2, 3, 4), "s": rand(4), "b": rand(4)}, outputs=3),
    case("LayerNormalization_axis1", "LayerNormalization", {"x": rand(2, 3, 4), "s": rand(3, 4)}, attrs={"axis": 1}),
    case("BatchNormalization", "BatchNormalization", {"x": rand(2, 3, 4), "s": rand(3), "b": rand(3)},
         consts={"mean": rand(3), "var": rand(3, low=0.5)}),
    # Views, data movement, pooling, resizing
    case("Reshape", "Reshape", {"x": rand(2, 3, 4)}, consts={"shape": np.array([0, -1], np.int64)}),
    case("Flatten", "Flatten", {"x": rand(2, 3, 4)}, attrs={"axis": 2}),
    case("Squeeze", "Squeeze", {"x": rand(2, 1, 4)}, consts={"axes": np.array([1], np.int64)}),
    case("Unsqueeze", "Unsqueeze", {"x": rand(2, 4)}, consts={"axes": np.array([1], np.int64)}),
    case("Identity", "Identity", {"x": rand(2, 4)}),
    case("Transpose", "Transpose", {"x": rand(2, 3, 4)}, attrs={"perm": [2, 0, 1]}),
    case("Concat", "Concat", {"a": rand(2, 3), "b": rand(2, 2)}, consts={"c": rand(2, 1)}, attrs={"axis": 1}),
    case("Split", "Split", {"x": rand(2, 6)}, attrs={"axis": 1, "num_outputs": 2}, outputs=2),
    case("Slice", "Slice", {"x": rand(4, 6)}, consts={"st": np.array([1, 5], np.int64), "en": np.array([3, 0], np.int64),
                                                     "ax": np.array([0, 1], np.int64), "sp": np.array([1, -2], np.int64)}),
    case("Slice_crop", "Slice", {"x": rand(2, 3, 5, 5)}, consts={"st": np.array([0, 0], np.int64), "en": np.array([4, 4], np.int64),
                                                                "ax": np.array([2, 3], np.int64)}),
    case("Slice_negative_starts_step2", "Slice", {"x": rand(3, 7)}, consts={"st": np.array([-6], np.int64), "en": np.array([100], np.int64),
                                                                           "ax": np.array([-1], np.int64), "sp": np.array([2], np.int64)}),
    case("Slice_default_axes", "Slice", {"x": rand(4, 5)}, consts={"st": np.array([1, -3], np.int64), "en": np.array([-1, 5], np.int64)}),
    case("Expand", "Expand", {"x": rand(3, 1)}, consts={"shape": np.array([2, 3, 4], np.int64)}),
    case("Gather", "Gather", {"x": rand(5, 3)}, consts={"i": np.array([[0, 4], [2, 2]], np.int64)}),
    case("Resize_nearest", "Resize", {"x": rand(1, 2, 3, 3)}, consts={"roi": np.array([], np.float32),
                                                                    "scales": np.array([1, 1, 2, 2], np.float32)}),
    case("Resize_linear", "Resize", {"x": rand(1, 2, 3, 3)}, consts={"roi": np.array([], np.float32),
                                                                   "scales": np.array([1, 1, 2, 1.5], np.float32)},
         attrs={"mode": "linear"}),
    case("AveragePool", "AveragePool", {"x": rand(2, 3, 6, 6)}, attrs={"kernel_shape": [2, 2], "strides": [2, 2]}),
    case("GlobalAveragePool", "GlobalAveragePool", {"x": rand(2, 3, 4, 4)}),
    case("Cast", "Cast", {"x": rand(2, 3)}, attrs={"to": TensorProto.DOUBLE}, out_type=TensorProto.DOUBLE),
    # Our fused ops (reference: finite differences in our runtime, float32)
    case("AdaptiveGroupNorm", "AdaptiveGroupNorm", {"x": rand(2, 4, 3, 3), "s": rand(4), "b": rand(4), "m": rand(2, 4, 1, 1),
                                                    "a": rand(2, 4, 1, 1)},
         attrs={"num_groups": 2, "activation": "silu"}, domain="ai.scm"),
    case("AdaptiveGroupNorm_plain", "AdaptiveGroupNorm", {"x": rand(2, 4, 3), "s": rand(4), "b": rand(4)},
         attrs={"num_groups": 4}, domain="ai.scm"),
    case("FusedConv", "FusedConv", {"x": rand(2, 3, 5, 5), "w": rand(4, 3, 3, 3), "b": rand(4), "z": rand(2, 4, 5, 5)},
         attrs={"pads": [1, 1, 1, 1], "activation": "silu"}, domain="ai.scm"),
]


@pytest.mark.parametrize("op,inputs,consts,attrs,wrt,kw", CASES)
def test_jvp_rule(op, inputs, consts, attrs, wrt, kw, tmp_path):
    kw = dict(kw)  # the case's dict is shared with test_vjp
    order = kw.pop("order", None)
    if order:
        # Inputs in a given order mixing graph inputs and initializers (Where's condition first).
        model, feeds = single(op, inputs, consts, attrs, **kw)
        node = model.graph.node[0]
        del node.input[:]
        node.input.extend(order)
    else:
        model, feeds = single(op, inputs, consts, attrs, **kw)
    wrt = wrt or [k for k, v in inputs.items() if v.dtype == np.float32]
    check_jvp(model, feeds, wrt, str(tmp_path))


# Whole networks: the tiny TrigFlow UNet in both GroupNorm encodings (with the extras that the
# optimizer's fusions fire on), a 32-channel 28x28 one, and an optimized step file with ai.scm ops.

import os
import subprocess

import make_tiny_model
from conftest import BIN
from derivcheck import export_jvp, run_scm
from scmtools.onnxrt import ort_session


def unet_feeds(size, batch=2, seed=3):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(batch, 1, size, size)).astype(np.float32),
            "t": rng.uniform(0.2, 1.4, batch).astype(np.float32)}


@pytest.mark.parametrize("encoding", ["onnx", "pytorch"])
def test_jvp_of_unet_matches_finite_differences(encoding, tmp_path):
    model = make_tiny_model.build(encoding, channels=8, size=8, seed=1, extras=True)
    err = check_jvp(model, unet_feeds(8), ["x", "t"], str(tmp_path), tol=1e-3)
    print(f"{encoding}: relative error {err:.2e}")
    # The file passes the checker and, having only standard ops, runs in onnxruntime too.
    jvp = onnx.load(str(tmp_path / "jvp.onnx"))
    onnx.checker.check_model(jvp, full_check=True)
    feeds = dict(unet_feeds(8))
    rng = np.random.default_rng(9)
    feeds["x_tangent"] = rng.normal(size=feeds["x"].shape).astype(np.float32)
    feeds["t_tangent"] = rng.normal(size=feeds["t"].shape).astype(np.float32)
    theirs = ort_session(jvp).run(None, feeds)
    ours = run_scm(jvp, feeds)
    for a, b in zip(ours, theirs):
        assert np.max(np.abs(a - b)) <= 1e-4 * max(1.0, np.max(np.abs(b)))
    # Bitwise the same on 2 threads.
    assert all(np.array_equal(a, b) for a, b in zip(ours, run_scm(jvp, feeds, threads=2)))


def test_jvp_of_a_32_channel_unet(tmp_path):
    model = make_tiny_model.build("onnx", channels=32, size=28, seed=2)
    err = check_jvp(model, unet_feeds(28, batch=2), ["x", "t"], str(tmp_path), tol=1e-3)
    print(f"32 channels, 28x28: relative error {err:.2e}")


@pytest.mark.parametrize("float32", [False, True])
def test_jvp_of_a_32_64_64_unet(float32, tmp_path):
    """Widths 32/64/64 at 28x28, attention at 7x7; the reference in float64 (ONNX's evaluator),
    and in float32 by onnxruntime (central differences with h = 1e-2: the issue's 1e-2 bar)."""
    model = make_tiny_model.build("onnx", size=28, seed=3, widths=(32, 64, 64))
    err = check_jvp(model, unet_feeds(28), ["x", "t"], str(tmp_path), tol=1e-2 if float32 else 1e-3, float32=float32)
    print(f"32/64/64 UNet, reference in {'float32 (onnxruntime)' if float32 else 'float64'}: relative error {err:.2e}")


def test_jvp_wrt_one_input_and_symbolic_batch(tmp_path):
    """Tangent of x alone; the exported file keeps the batch symbolic and runs at other batches."""
    model = make_tiny_model.build("onnx", channels=8, size=8, seed=4)
    check_jvp(model, unet_feeds(8, batch=3), ["x"], str(tmp_path), tol=1e-3)
    jvp = onnx.load(str(tmp_path / "jvp.onnx"))
    assert [i.name for i in jvp.graph.input] == ["x", "t", "x_tangent"]
    out = model.graph.output[0].name
    assert [o.name for o in jvp.graph.output] == [out, out + "_tangent"]
    assert jvp.graph.input[0].type.tensor_type.shape.dim[0].dim_param != ""
    for batch in (1, 5):
        check_jvp(model, unet_feeds(8, batch=batch, seed=batch), ["x"], str(tmp_path), tol=1e-3)


def test_jvp_of_optimized_step_with_fused_ops(tmp_path):
    """A step file from scm-export --optimize (AdaptiveGroupNorm and FusedConv, t folded)."""
    src = tmp_path / "m.onnx"
    onnx.save(make_tiny_model.build("onnx", channels=8, size=8, seed=5, extras=True), str(src))
    step = tmp_path / "step.onnx"
    r = subprocess.run([os.path.join(BIN, "scm-export"), src, step, "--optimize", "--t", "1.1", "--batch", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    model = onnx.load(str(step))
    assert {n.op_type for n in model.graph.node} >= {"AdaptiveGroupNorm", "FusedConv"}
    check_jvp(model, {"x": unet_feeds(8)["x"]}, ["x"], str(tmp_path))


def test_jvp_errors(tmp_path):
    """An op without a rule is an error naming the node; bad names and non-float inputs are refused."""
    m, _ = single("MaxPool", {"x": rand(1, 1, 4, 4)}, attrs={"kernel_shape": [2, 2]})
    m.graph.node[0].name = "the_pool"
    onnx.save(m, str(tmp_path / "m.onnx"))
    r = subprocess.run([os.path.join(BIN, "scm-export"), tmp_path / "m.onnx", tmp_path / "o.onnx", "--jvp", "x"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "the_pool" in r.stderr and "MaxPool" in r.stderr and "JVP" in r.stderr, r.stderr
    r = subprocess.run([os.path.join(BIN, "scm-export"), tmp_path / "m.onnx", tmp_path / "o.onnx", "--jvp", "nope"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "'nope' is not a graph input" in r.stderr, r.stderr
    assert not (tmp_path / "o.onnx").exists()
