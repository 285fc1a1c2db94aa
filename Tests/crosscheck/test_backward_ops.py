"""The backward ops of our domain ai.scm (ConvWeightGrad, ResizeGrad, AveragePoolGrad, SliceGrad) against the
forward ops they are the adjoints of: for random float32 X and dY, <dY, Op(X)> == <OpGrad(dY), X>
(ConvWeightGrad: <dY, Conv(X, W)> == <ConvWeightGrad(X, dY), W>), both sides summed in float64,
with the forward run by scm-infer (the kernels autodiff pairs them with). Then bitwise-equal
results at 1, 2 and 3 threads, and the shape errors."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import scm

RNG = np.random.default_rng(7)


def rand(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def one_node(op, inputs, consts=None, attrs=None, domain=""):
    """A model of one node and its feeds. `inputs` lists the node's inputs in order: (name,
    array) for graph inputs, (name, None) for an initializer from `consts`, ("", None) for an
    omitted optional input."""
    consts = consts or {}
    feeds = {k: v for k, v in inputs if v is not None}
    node = helper.make_node(op, [k for k, _ in inputs], ["y"], domain=domain, **(attrs or {}))
    g = helper.make_graph([node], op,
                          [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in consts.items()])
    imports = [helper.make_opsetid("", 21), helper.make_opsetid("ai.scm", 1)]
    return helper.make_model(g, opset_imports=imports, ir_version=10), feeds


def infer(model, feeds, tmp_path, threads=1):
    """Runs `model` through scm-infer in a fresh folder under tmp_path; returns (process, folder)."""
    d = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    d.mkdir()
    onnx.save(model, str(d / "model.onnx"))
    files = []
    for i, (k, v) in enumerate(feeds.items()):
        p = d / f"in{i}.pb"
        p.write_bytes(numpy_helper.from_array(v, k).SerializeToString())
        files.append(p)
    r = scm("scm-infer", d / "model.onnx", "--inputs", *files, "--output-dir", d / "out", "--threads", threads)
    return r, d


def run(model, feeds, tmp_path, threads=1):
    """Runs `model` through scm-infer; returns output 0."""
    r, d = infer(model, feeds, tmp_path, threads)
    assert r.returncode == 0, r.stderr
    return numpy_helper.to_array(onnx.load_tensor(str(d / "out" / "output_0.pb")))


def run_error(model, feeds, tmp_path):
    """Runs a model that must not compile; returns scm-infer's stderr."""
    r, _ = infer(model, feeds, tmp_path)
    assert r.returncode != 0, "compiled a model that should be refused"
    return r.stderr


def assert_adjoint(dy, y, dx, x):
    """<dy, y> == <dx, x> in float64, to 1e-5 relative (with a floor of 1e-6 of the terms' L2
    norm, against an inner product that happens to cancel)."""
    terms = dy.astype(np.float64) * y.astype(np.float64)
    lhs = terms.sum()
    rhs = (dx.astype(np.float64) * x.astype(np.float64)).sum()
    tol = 1e-5 * max(abs(lhs), abs(rhs)) + 1e-6 * np.sqrt((terms ** 2).sum())
    assert abs(lhs - rhs) <= tol, f"<dY, Op(X)> = {lhs!r}, <OpGrad(dY), X> = {rhs!r}, |diff| {abs(lhs - rhs):.3g} > {tol:.3g}"


# MARK: - ConvWeightGrad

def conv_fwd(x, w, attrs):
    return one_node("Conv", [("x", x), ("w", w)], attrs=attrs)


def conv_grad(x, dy, k, attrs):
    return one_node("ConvWeightGrad", [("x", x), ("dy", dy)], attrs={"kernel_shape": k, **attrs}, domain="ai.scm")


def cwg(id, x, m, k, **attrs):
    return pytest.param(x, m, k, attrs, id=id)


CONV_CASES = [
    cwg("3x3_pad1", [2, 3, 7, 7], 4, [3, 3], pads=[1, 1, 1, 1]),
    cwg("3x3_nopad", [2, 3, 7, 6], 5, [3, 3]),
    cwg("3x3_stride2_pad1", [2, 3, 8, 8], 4, [3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    cwg("3x3_stride2_odd", [2, 3, 9, 7], 4, [3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    cwg("asymmetric_pads_strides", [2, 3, 9, 8], 4, [3, 3], strides=[2, 1], pads=[0, 1, 2, 0]),
    cwg("pads_beyond_kernel", [1, 2, 5, 5], 3, [3, 3], pads=[3, 0, 1, 2]),
    cwg("dilation2_pad2", [2, 3, 9, 9], 4, [3, 3], dilations=[2, 2], pads=[2, 2, 2, 2]),
    cwg("dilation_stride_mixed", [2, 3, 11, 10], 2, [3, 2], dilations=[2, 3], strides=[2, 1], pads=[1, 2, 0, 1]),
    cwg("rect_kernel_2x3", [2, 4, 6, 9], 3, [2, 3], pads=[0, 1, 1, 1]),
    cwg("group2", [2, 4, 7, 7], 6, [3, 3], group=2, pads=[1, 1, 1, 1]),
    cwg("group3_stride2", [2, 6, 8, 8], 9, [3, 3], group=3, strides=[2, 2], pads=[1, 0, 0, 1]),
    cwg("depthwise", [2, 5, 8, 8], 5, [3, 3], group=5, pads=[1, 1, 1, 1]),
    cwg("depthwise_multiplier2", [2, 4, 7, 7], 8, [3, 3], group=4, pads=[1, 1, 1, 1], strides=[2, 2]),
    cwg("1x1_direct", [2, 6, 5, 5], 7, [1, 1]),
    cwg("1x1_direct_group", [2, 6, 5, 5], 4, [1, 1], group=2),
    cwg("1x1_stride2", [2, 6, 7, 7], 3, [1, 1], strides=[2, 2]),
    cwg("1x1_padded", [2, 3, 4, 4], 3, [1, 1], pads=[1, 0, 0, 1]),
    cwg("auto_same_upper", [2, 3, 7, 8], 4, [3, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
    cwg("auto_same_lower", [2, 3, 7, 8], 4, [4, 4], auto_pad="SAME_LOWER", strides=[2, 3]),
    cwg("auto_valid", [2, 3, 7, 8], 4, [3, 2], auto_pad="VALID"),
    cwg("1d", [2, 3, 11], 4, [3], strides=[2], pads=[1, 2]),
    cwg("1d_dilation_group", [3, 6, 13], 3, [3], dilations=[2], group=3, pads=[2, 2]),
    cwg("1d_depthwise_same", [2, 4, 10], 4, [5], group=4, auto_pad="SAME_UPPER"),
    cwg("1d_1x1_direct", [2, 5, 9], 3, [1]),
    cwg("batch1", [1, 3, 5, 5], 2, [2, 2], strides=[2, 2]),
    # Blocking: kdim 144 -> 5 row blocks (4 x 32 + 16); 63 -> 32 + 31; 80 output channels -> 2
    # channel blocks; a 1-channel stem (kdim 9, 32 outputs) -> channel blocks of 16; more than
    # 4096 positions -> two position blocks.
    cwg("kdim_row_blocks", [2, 16, 6, 6], 4, [3, 3], pads=[1, 1, 1, 1]),
    cwg("kdim_uneven_blocks", [2, 7, 6, 6], 3, [3, 3], pads=[1, 1, 1, 1]),
    cwg("channel_blocks", [2, 4, 6, 6], 80, [3, 3], pads=[1, 1, 1, 1]),
    cwg("stem_1_channel", [3, 1, 9, 9], 32, [3, 3], pads=[1, 1, 1, 1]),
    cwg("position_blocks", [2, 2, 66, 66], 3, [3, 3], pads=[1, 1, 1, 1]),
    cwg("position_blocks_direct", [2, 3, 70, 70], 2, [1, 1]),
]


@pytest.mark.parametrize("x_shape,m,k,attrs", CONV_CASES)
def test_conv_weight_grad_adjoint(x_shape, m, k, attrs, tmp_path):
    w_shape = [m, x_shape[1] // attrs.get("group", 1), *k]
    x, w = rand(*x_shape), rand(*w_shape)
    y = run(*conv_fwd(x, w, attrs), tmp_path)
    dy = rand(*y.shape)
    dw = run(*conv_grad(x, dy, k, attrs), tmp_path)
    assert dw.shape == tuple(w_shape)
    assert_adjoint(dy, y, dw, w)


def test_conv_weight_grad_matches_explicit_sum(tmp_path):
    """One case element by element against the defining sum, in float64."""
    x, dy = rand(2, 4, 6, 5), rand(2, 6, 3, 2)
    attrs = {"strides": [2, 2], "pads": [1, 0, 0, 1], "group": 2, "dilations": [1, 2]}
    dw = run(*conv_grad(x, dy, [2, 2], attrs), tmp_path)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (1, 0), (0, 1)])
    ref = np.zeros((6, 2, 2, 2))
    for mo in range(6):
        g = mo // 3
        for ci in range(2):
            for ky in range(2):
                for kx in range(2):
                    win = xp[:, g * 2 + ci, ky:ky + 5:2, 2 * kx:2 * kx + 3:2]
                    ref[mo, ci, ky, kx] = (dy[:, mo].astype(np.float64) * win).sum()
    np.testing.assert_allclose(dw, ref, rtol=1e-5, atol=1e-5)


# MARK: - ResizeGrad

def resize_inputs(roi, scales, sizes):
    """The node's optional inputs (trailing omitted ones dropped) and their initializers."""
    ins, consts = [], {}
    for name, v, dtype in [("roi", roi, np.float32), ("scales", scales, np.float32), ("sizes", sizes, np.int64)]:
        ins.append(name if v is not None else "")
        if v is not None:
            consts[name] = np.array(v, dtype)
    while ins and not ins[-1]:
        ins.pop()
    return ins, consts


def resize_fwd(x, attrs, roi=None, scales=None, sizes=None):
    ins, consts = resize_inputs(roi, scales, sizes)
    return one_node("Resize", [("x", x)] + [(k, None) for k in ins], consts, attrs)


def resize_grad(x_shape, dy, attrs, roi=None, scales=None, sizes=None):
    ins, consts = resize_inputs(roi, scales, sizes)
    return one_node("ResizeGrad", [("dy", dy), ("shape", None)] + [(k, None) for k in ins],
                    {"shape": np.array(x_shape, np.int64), **consts}, attrs, domain="ai.scm")


def rsz(id, x, attrs, **inputs):
    return pytest.param(x, attrs, inputs, id=id)


NEAREST = {"mode": "nearest"}
LINEAR = {"mode": "linear"}

RESIZE_CASES = [
    # The UNet's upsampling.
    rsz("nearest_up2_asymmetric_floor", [2, 3, 5, 6], {**NEAREST, "coordinate_transformation_mode": "asymmetric",
                                                      "nearest_mode": "floor"}, scales=[1, 1, 2, 2]),
    rsz("nearest_up2_default", [2, 3, 5, 6], NEAREST, scales=[1, 1, 2, 2]),
    rsz("nearest_up3_round_prefer_ceil", [1, 2, 4, 5], {**NEAREST, "nearest_mode": "round_prefer_ceil"},
        scales=[1, 1, 3, 3]),
    rsz("nearest_down2_ceil", [2, 3, 8, 9], {**NEAREST, "nearest_mode": "ceil"}, scales=[1, 1, 0.5, 0.5]),
    rsz("nearest_down_align_corners_floor", [2, 2, 9, 10], {**NEAREST, "nearest_mode": "floor",
                                                            "coordinate_transformation_mode": "align_corners"},
        scales=[1, 1, 0.6, 0.7]),
    rsz("nearest_tf_half_pixel", [2, 2, 5, 7], {**NEAREST, "coordinate_transformation_mode": "tf_half_pixel_for_nearest"},
        scales=[1, 1, 1.5, 2.5]),
    rsz("nearest_half_pixel_symmetric_sizes", [2, 2, 5, 7], {**NEAREST, "coordinate_transformation_mode": "half_pixel_symmetric"},
        sizes=[2, 2, 8, 4]),
    rsz("nearest_pytorch_sizes_len1", [2, 2, 5, 7], {**NEAREST, "coordinate_transformation_mode": "pytorch_half_pixel"},
        sizes=[2, 2, 1, 10]),
    rsz("linear_up2_half_pixel", [2, 3, 5, 6], LINEAR, scales=[1, 1, 2, 2]),
    rsz("linear_up_align_corners", [2, 3, 5, 6], {**LINEAR, "coordinate_transformation_mode": "align_corners"},
        scales=[1, 1, 2.5, 1.5]),
    rsz("linear_down_half_pixel", [2, 3, 9, 10], LINEAR, scales=[1, 1, 0.5, 0.6]),
    rsz("linear_down_align_corners_sizes", [2, 3, 9, 10], {**LINEAR, "coordinate_transformation_mode": "align_corners"},
        sizes=[2, 3, 4, 7]),
    rsz("linear_pytorch_half_pixel_len1", [2, 3, 6, 5], {**LINEAR, "coordinate_transformation_mode": "pytorch_half_pixel"},
        sizes=[2, 3, 1, 9]),
    rsz("linear_half_pixel_symmetric", [2, 2, 5, 6], {**LINEAR, "coordinate_transformation_mode": "half_pixel_symmetric"},
        scales=[1, 1, 1.7, 0.8]),
    rsz("linear_asymmetric", [2, 2, 5, 6], {**LINEAR, "coordinate_transformation_mode": "asymmetric"},
        scales=[1, 1, 2, 0.5]),
    rsz("linear_tf_crop_and_resize", [2, 2, 6, 7], {**LINEAR, "coordinate_transformation_mode": "tf_crop_and_resize",
                                                    "extrapolation_value": 5.0},
        roi=[0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3], sizes=[2, 2, 7, 8]),
    rsz("nearest_tf_crop_and_resize_axes", [2, 2, 6, 7], {**NEAREST, "coordinate_transformation_mode": "tf_crop_and_resize",
                                                          "extrapolation_value": -3.0, "axes": [2, 3]},
        roi=[0.3, -0.25, 1.2, 0.8], sizes=[5, 9]),
    rsz("linear_tf_crop_and_resize_scales", [2, 2, 6, 7], {**LINEAR, "coordinate_transformation_mode": "tf_crop_and_resize"},
        roi=[0, 0, 0.1, 0.2, 1, 1, 0.8, 0.9], scales=[1, 1, 2, 1.5]),
    rsz("sizes_not_larger", [2, 2, 6, 8], {**LINEAR, "keep_aspect_ratio_policy": "not_larger", "axes": [2, 3]},
        sizes=[9, 20]),
    rsz("sizes_not_smaller", [2, 2, 6, 8], {**NEAREST, "keep_aspect_ratio_policy": "not_smaller", "axes": [2, 3]},
        sizes=[9, 10]),
    rsz("axes_last_only", [2, 3, 4, 6], {**LINEAR, "axes": [3]}, scales=[1.5]),
    rsz("axes_negative", [2, 3, 4, 6], {**NEAREST, "axes": [-2]}, scales=[2.0]),
    rsz("rank3_linear", [2, 5, 7], LINEAR, scales=[1, 1, 1.6]),
    rsz("channel_axis", [2, 3, 4, 5], LINEAR, scales=[1, 2, 1, 1]),
    rsz("batch_axis_nearest", [2, 3, 4, 5], NEAREST, scales=[2, 1, 1, 0.5]),
    rsz("rank5_linear_three_axes", [1, 2, 3, 4, 5], LINEAR, scales=[1, 1, 2, 0.5, 1.5]),
    rsz("identity_scales", [2, 3, 4, 5], LINEAR, scales=[1, 1, 1, 1]),
]


@pytest.mark.parametrize("x_shape,attrs,inputs", RESIZE_CASES)
def test_resize_grad_adjoint(x_shape, attrs, inputs, tmp_path):
    x = rand(*x_shape)
    y = run(*resize_fwd(x, attrs, **inputs), tmp_path)
    # Resize is affine: tf_crop_and_resize's extrapolated outputs do not depend on X.
    y0 = run(*resize_fwd(np.zeros_like(x), attrs, **inputs), tmp_path)
    if "extrapolation_value" in attrs:
        assert (y0 == attrs["extrapolation_value"]).any()
    dy = rand(*y.shape)
    dx = run(*resize_grad(x_shape, dy, attrs, **inputs), tmp_path)
    assert dx.shape == tuple(x_shape)
    assert_adjoint(dy, y - y0, dx, x)


# MARK: - AveragePoolGrad

def pool_fwd(x, attrs):
    return one_node("AveragePool", [("x", x)], attrs=attrs)


def pool_grad(x_shape, dy, attrs):
    return one_node("AveragePoolGrad", [("dy", dy), ("shape", None)], {"shape": np.array(x_shape, np.int64)}, attrs,
                    domain="ai.scm")


def apg(id, x, k, **attrs):
    return pytest.param(x, {"kernel_shape": k, **attrs}, id=id)


POOL_CASES = [
    apg("2x2_stride2", [2, 3, 8, 8], [2, 2], strides=[2, 2]),
    apg("2x2_stride2_odd", [2, 3, 7, 9], [2, 2], strides=[2, 2]),
    apg("3x3_stride1", [2, 3, 6, 7], [3, 3]),
    apg("3x3_pad1_exclude", [2, 3, 6, 7], [3, 3], pads=[1, 1, 1, 1]),
    apg("3x3_pad1_include", [2, 3, 6, 7], [3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
    apg("asymmetric_pads_exclude", [2, 3, 7, 8], [3, 3], strides=[2, 2], pads=[1, 0, 0, 2]),
    apg("asymmetric_pads_include", [2, 3, 7, 8], [3, 3], strides=[2, 2], pads=[1, 0, 0, 2], count_include_pad=1),
    apg("ceil_exclude", [2, 3, 8, 8], [3, 3], strides=[2, 2], ceil_mode=1),
    apg("ceil_include_pad", [2, 3, 8, 9], [3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1),
    apg("ceil_pad_exclude", [2, 3, 8, 9], [3, 2], strides=[3, 2], pads=[1, 0, 1, 1], ceil_mode=1),
    apg("dilation2_pad", [2, 3, 9, 9], [3, 3], dilations=[2, 2], pads=[2, 1, 2, 1]),
    apg("dilation_include", [2, 3, 9, 9], [2, 3], dilations=[3, 2], pads=[1, 2, 2, 1], count_include_pad=1),
    apg("auto_same_upper", [2, 3, 7, 8], [3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    apg("auto_same_lower_include", [2, 3, 7, 8], [4, 4], strides=[2, 3], auto_pad="SAME_LOWER", count_include_pad=1),
    apg("auto_valid", [2, 3, 7, 8], [3, 2], strides=[2, 2], auto_pad="VALID"),
    apg("1d", [2, 3, 11], [3], strides=[2], pads=[1, 1]),
    apg("1d_ceil_include", [2, 3, 10], [4], strides=[3], pads=[2, 1], ceil_mode=1, count_include_pad=1),
    apg("3d", [2, 2, 5, 6, 7], [2, 2, 2], strides=[2, 2, 2]),
    apg("3d_pad_include", [1, 2, 5, 4, 6], [3, 2, 3], pads=[1, 0, 1, 1, 1, 0], count_include_pad=1),
    apg("3d_pad_exclude_ceil", [1, 2, 5, 4, 6], [3, 2, 3], strides=[2, 2, 2], pads=[1, 0, 1, 1, 1, 0], ceil_mode=1),
]


@pytest.mark.parametrize("x_shape,attrs", POOL_CASES)
def test_average_pool_grad_adjoint(x_shape, attrs, tmp_path):
    x = rand(*x_shape)
    y = run(*pool_fwd(x, attrs), tmp_path)
    dy = rand(*y.shape)
    dx = run(*pool_grad(x_shape, dy, attrs), tmp_path)
    assert dx.shape == tuple(x_shape)
    assert_adjoint(dy, y, dx, x)


# MARK: - SliceGrad

def slice_inputs(starts, ends, axes, steps):
    ins, consts = [], {}
    for name, v in [("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps)]:
        ins.append(name if v is not None else "")
        if v is not None:
            consts[name] = np.array(v, np.int64)
    while ins and not ins[-1]:
        ins.pop()
    return ins, consts


def slice_fwd(x, starts, ends, axes=None, steps=None):
    ins, consts = slice_inputs(starts, ends, axes, steps)
    return one_node("Slice", [("x", x)] + [(k, None) for k in ins], consts)


def slice_grad(x_shape, dy, starts, ends, axes=None, steps=None):
    ins, consts = slice_inputs(starts, ends, axes, steps)
    return one_node("SliceGrad", [("dy", dy), ("shape", None)] + [(k, None) for k in ins],
                    {"shape": np.array(x_shape, np.int64), **consts}, domain="ai.scm")


SLICE_CASES = [
    pytest.param([2, 3, 7, 7], dict(starts=[0, 0], ends=[6, 6], axes=[2, 3]), id="unet_crop"),
    pytest.param([4, 6], dict(starts=[1, 5], ends=[3, 0], axes=[0, 1], steps=[1, -2]), id="negative_step"),
    pytest.param([3, 9], dict(starts=[-7], ends=[1000], axes=[-1], steps=[3]), id="negative_start_step3"),
    pytest.param([5, 4, 3], dict(starts=[1, -2], ends=[-1, 100]), id="default_axes_clamped"),
    pytest.param([2, 5, 6], dict(starts=[4], ends=[-100], axes=[2], steps=[-1]), id="reverse_clamped"),
    pytest.param([3, 4], dict(starts=[2], ends=[2], axes=[1]), id="empty"),
]


@pytest.mark.parametrize("x_shape,spec", SLICE_CASES)
def test_slice_grad_adjoint(x_shape, spec, tmp_path):
    x = rand(*x_shape)
    y = run(*slice_fwd(x, **spec), tmp_path)
    dy = rand(*y.shape)
    dx = run(*slice_grad(x_shape, dy, **spec), tmp_path)
    assert dx.shape == tuple(x_shape)
    if y.size:
        assert_adjoint(dy, y, dx, x)
        # Each position Slice took is dY's element, every other one zero.
        assert np.count_nonzero(dx) == y.size
    else:
        assert not dx.any()


# Scratch it did not write: SCM_CHECK_FINITE=1 fills every scratch byte with 0xff (NaN) before
# each step and names any step whose output is not finite. The direct weight gradient once read
# the unfilled planes of its last channel block (times dY's zero padding: 0 unless the stale
# value was NaN or infinity), which stopped an sCD run at a random step with a NaN gradient norm.
@pytest.mark.parametrize("x_shape,m,k,attrs", [
    ([2, 96, 7, 7], 64, [1, 1], {}),                            # 1x1: channel blocks of 72, the last holds 24
    ([2, 96, 14, 14], 32, [1, 1], {"strides": [2, 2]}),         # and with two stride phases per axis
    ([2, 20, 9, 9], 8, [3, 3], {"pads": [1, 1, 1, 1]}),         # 3x3: blocks of 8 channels, the last holds 4
    ([3, 20, 9, 9], 8, [3, 3], {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
], ids=["1x1_last_block", "1x1_stride2_last_block", "3x3_last_block", "3x3_stride2_last_block"])
def test_conv_weight_grad_reads_only_scratch_it_wrote(x_shape, m, k, attrs, tmp_path, monkeypatch):
    monkeypatch.setenv("SCM_CHECK_FINITE", "1")
    x = rand(*x_shape)
    y = run(*conv_fwd(x, rand(m, x_shape[1], *k), attrs), tmp_path)
    dy = rand(*y.shape)
    r, d = infer(*conv_grad(x, dy, k, attrs), tmp_path, threads=2)
    assert r.returncode == 0, r.stderr
    assert "SCM_CHECK_FINITE" not in r.stderr, r.stderr
    dw = numpy_helper.to_array(onnx.load_tensor(str(d / "out" / "output_0.pb")))
    assert np.isfinite(dw).all()
    w = rand(m, x_shape[1], *k)
    assert_adjoint(dy, run(*conv_fwd(x, w, attrs), tmp_path), dw, w)


# MARK: - Thread-count independence

def bitwise_same_at_1_2_3_threads(model, feeds, tmp_path):
    outs = [run(model, feeds, tmp_path, threads=t) for t in (1, 2, 3)]
    assert np.abs(outs[0]).sum() > 0
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()


# Shapes large enough that the pool runs them on several workers, with several chunks each.
@pytest.mark.parametrize("x_shape,m,k,attrs", [
    ([8, 32, 28, 28], 32, [3, 3], {"pads": [1, 1, 1, 1]}),
    ([8, 64, 14, 14], 96, [3, 3], {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ([8, 1, 28, 28], 32, [3, 3], {"pads": [1, 1, 1, 1]}),
    ([8, 32, 28, 28], 32, [3, 3], {"pads": [1, 1, 1, 1], "group": 32}),
    ([8, 48, 14, 14], 64, [1, 1], {}),
    ([4, 16, 70, 70], 8, [3, 3], {"pads": [0, 1, 1, 0]}),
], ids=["3x3_32ch", "3x3_stride2_64to96", "stem", "depthwise", "1x1", "position_blocks"])
def test_conv_weight_grad_threads(x_shape, m, k, attrs, tmp_path):
    x, w = rand(*x_shape), rand(m, x_shape[1] // attrs.get("group", 1), *k)
    out = run(*conv_fwd(x, w, attrs), tmp_path).shape
    bitwise_same_at_1_2_3_threads(*conv_grad(x, rand(*out), k, attrs), tmp_path)


@pytest.mark.parametrize("x_shape,attrs,inputs", [
    ([8, 32, 14, 14], {**NEAREST, "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
     {"scales": [1, 1, 2, 2]}),
    ([8, 32, 14, 14], LINEAR, {"scales": [1, 1, 2, 2]}),
    ([8, 32, 28, 28], LINEAR, {"sizes": [8, 32, 13, 15]}),
    ([4, 3, 40, 50], LINEAR, {"scales": [1, 2, 1.5, 1]}),
], ids=["nearest_up2", "linear_up2", "linear_down", "channel_axis"])
def test_resize_grad_threads(x_shape, attrs, inputs, tmp_path):
    y = run(*resize_fwd(rand(*x_shape), attrs, **inputs), tmp_path)
    bitwise_same_at_1_2_3_threads(*resize_grad(x_shape, rand(*y.shape), attrs, **inputs), tmp_path)


@pytest.mark.parametrize("x_shape,attrs", [
    ([8, 32, 28, 28], {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ([8, 32, 28, 28], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2], "ceil_mode": 1}),
    ([4, 8, 12, 12, 12], {"kernel_shape": [3, 3, 3], "pads": [1, 1, 1, 1, 1, 1], "count_include_pad": 1}),
], ids=["2x2", "3x3_ceil", "3d"])
def test_average_pool_grad_threads(x_shape, attrs, tmp_path):
    y = run(*pool_fwd(rand(*x_shape), attrs), tmp_path)
    bitwise_same_at_1_2_3_threads(*pool_grad(x_shape, rand(*y.shape), attrs), tmp_path)


def test_slice_grad_threads(tmp_path):
    spec = dict(starts=[1, 0], ends=[27, 100], axes=[2, 3], steps=[1, 2])
    y = run(*slice_fwd(rand(8, 32, 28, 28), **spec), tmp_path)
    bitwise_same_at_1_2_3_threads(*slice_grad([8, 32, 28, 28], rand(*y.shape), **spec), tmp_path)


# MARK: - Errors

def test_shape_errors(tmp_path):
    x = rand(2, 3, 8, 8)
    pads = {"pads": [1, 1, 1, 1]}
    err = run_error(*conv_grad(x, rand(2, 4, 7, 8), [3, 3], pads), tmp_path)
    assert "does not match Conv's output [2, 4, 8, 8]" in err, err
    err = run_error(*one_node("ConvWeightGrad", [("x", x), ("dy", rand(2, 4, 8, 8))], attrs=pads, domain="ai.scm"), tmp_path)
    assert "kernel_shape is required" in err, err
    err = run_error(*conv_grad(x, rand(2, 4, 6, 6), [3, 3], {"group": 3}), tmp_path)
    assert "group 3 must divide" in err, err
    err = run_error(*conv_grad(x, rand(3, 4, 6, 6), [3, 3], {}), tmp_path)
    assert "dY batch 3 differs from X batch 2" in err, err
    err = run_error(*conv_grad(x, rand(2, 4, 6, 6), [3], {}), tmp_path)
    assert "kernel_shape [3] has 1 dims" in err, err
    err = run_error(*resize_grad([2, 3, 5, 6], rand(2, 3, 10, 11), NEAREST, scales=[1, 1, 2, 2]), tmp_path)
    assert "differs from Resize's output [2, 3, 10, 12]" in err, err
    err = run_error(*resize_grad([2, 3, 5], rand(2, 3, 10, 12), NEAREST, scales=[1, 1, 2]), tmp_path)
    assert "has 3 dims" in err, err
    err = run_error(*pool_grad([2, 3, 8, 8], rand(2, 3, 3, 4), {"kernel_shape": [2, 2], "strides": [2, 2]}), tmp_path)
    assert "differs from AveragePool's output [2, 3, 4, 4]" in err, err
    err = run_error(*slice_grad([2, 3, 7, 7], rand(2, 3, 6, 5), starts=[0, 0], ends=[6, 6], axes=[2, 3]), tmp_path)
    assert "differs from Slice's output [2, 3, 6, 6]" in err, err
    err = run_error(*slice_grad([2, 3, 7, 7], rand(2, 3, 6, 7), starts=[0, 0], ends=[6, 6], axes=[2, 2]), tmp_path)
    assert "axis 2 repeats" in err, err
