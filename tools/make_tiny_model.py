#!/usr/bin/env python3
"""Builds a small TrigFlow-style consistency network with onnx.helper (random weights, seeded).

    tools/make_tiny_model.py OUT.onnx [--groupnorm onnx|pytorch] [--channels 8] [--size 8] [--seed 0]

Inputs x [N,C,H,W] and t [N]; output f(x,t) = cos(t) x - sigma_d sin(t) F(x/sigma_d, t) with
F a tiny conv net: sinusoidal time embedding (Sin/Cos of t) -> Gemm -> SiLU -> per-channel scale
and shift applied after a GroupNorm (the ADN pattern), SiLU, convs with a residual, a 2x
downsample + Resize upsample, and one attention block (MatMul/Softmax). GroupNorm is written as the
`GroupNormalization` op or in PyTorch's export form (Reshape -> InstanceNormalization -> Reshape ->
Mul -> Add). Metadata follows the model-file contract of DESIGN.md (scm.*).
"""
import argparse
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIGMA_D = 0.5
T_MAX = math.atan(80 / SIGMA_D)


def build(groupnorm="onnx", channels=8, size=8, in_ch=1, seed=0, emb=16, groups=2, extras=False,
          parameterization="consistency", widths=None, resblocks=False):
    """extras=True adds what the optimizer's other fusions look for: random GroupNorm affine
    parameters, a conv with a residual Add and SiLU, and time-MLP linears as MatMul + Add.
    parameterization="velocity" makes output 0 the network F(x/sigma_d, t) itself.
    widths=(32, 64, 64) builds a UNet with one level per width instead (each level a conv and an
    ADN block; a stride-2 conv between levels, so 28x28 goes to 14x14 and 7x7; attention at the
    lowest resolution; nearest upsampling and skip concatenations on the way up). resblocks=True
    makes each level's conv and ADN block one residual block instead (ADN, SiLU, conv, ADN, SiLU,
    conv, plus the input through a 1x1 conv where the width changes), as sCM's and EDM's UNets are."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(arr, prefix="c"):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def op(op_type, inputs, prefix=None, **attrs):
        out = name(prefix or op_type.lower())
        nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def weight(*shape, fan_in):
        return const(rng.normal(0, 1 / math.sqrt(fan_in), shape).astype(np.float32), "w")

    def silu(v):
        return op("Mul", [v, op("Sigmoid", [v])], "silu")

    def conv(v, cin, cout, k=3, stride=1):
        return op("Conv", [v, weight(cout, cin, k, k, fan_in=cin * k * k), const(np.zeros(cout, np.float32), "b")],
                  "conv", kernel_shape=[k, k], pads=[k // 2] * 4, strides=[stride, stride])

    def affine(n, value):
        if extras:
            return (value + 0.2 * rng.normal(size=n)).astype(np.float32)
        return np.full(n, value, np.float32)

    def linear(v, cin, cout, prefix):
        if extras:  # PyTorch's export of nn.Linear on 2-D input: MatMul + Add
            w = const(rng.normal(0, 1 / math.sqrt(cin), (cin, cout)).astype(np.float32), "w")
            return op("Add", [op("MatMul", [v, w]), const(np.zeros(cout, np.float32) + 0.1, "b")], prefix)
        return op("Gemm", [v, weight(cout, cin, fan_in=cin), const(np.zeros(cout, np.float32))], prefix, transB=1)

    def group_norm(v, c):
        if groupnorm == "onnx":
            scale = const(affine(c, 1.0), "gn_scale")
            bias = const(affine(c, 0.0), "gn_bias")
            return op("GroupNormalization", [v, scale, bias], "gn", num_groups=groups, epsilon=1e-5)
        shape_in = op("Shape", [v])
        r = op("Reshape", [v, const(np.array([0, groups, -1], np.int64), "shape")])
        n = op("InstanceNormalization", [r, const(affine(groups, 1.0)), const(affine(groups, 0.0))], "in", epsilon=1e-5)
        back = op("Reshape", [n, shape_in])
        return op("Add", [op("Mul", [back, const(affine(c, 1.0).reshape(c, 1, 1))]), const(affine(c, 0.0).reshape(c, 1, 1))])

    def adn(v, c, temb):
        # GroupNorm(v) * (1 + s(t)) + b(t), s and b per sample and channel from the time embedding.
        s = linear(temb, emb, c, "scale")
        b = linear(temb, emb, c, "shift")
        s4 = op("Unsqueeze", [s, const(np.array([2, 3], np.int64), "axes")])
        b4 = op("Unsqueeze", [b, const(np.array([2, 3], np.int64), "axes")])
        g = group_norm(v, c)
        return op("Add", [op("Mul", [g, op("Add", [s4, const(np.float32(1.0))])]), b4])

    # Time embedding of c_noise = t (TrigFlow): [sin(t f), cos(t f)] -> Gemm -> SiLU.
    freqs = np.exp(-math.log(1000.0) * np.arange(emb // 2) / (emb // 2)).astype(np.float32)
    targ = op("Mul", [op("Unsqueeze", ["t", const(np.array([1], np.int64), "axes")]), const(freqs[None, :], "freqs")])
    temb = op("Concat", [op("Sin", [targ]), op("Cos", [targ])], "temb", axis=1)
    temb = silu(linear(temb, emb, emb, "tmlp"))

    # F(x / sigma_d, t)
    xin = op("Div", ["x", const(np.float32(SIGMA_D), "sigma_d")], "xin")
    if widths:
        if resblocks:
            def block(h, cin, w):
                r = conv(silu(adn(h, cin, temb)), cin, w)
                r = conv(silu(adn(r, w, temb)), w, w)
                return op("Add", [r, h if cin == w else conv(h, cin, w, k=1)], "res")
        else:
            def block(h, cin, w):
                return silu(adn(conv(h, cin, w), w, temb))
        F = unet_levels(xin, list(widths), in_ch, size, block, conv, op, const, weight)
        kind = "resunet" if resblocks else "unet"
        return finish(nodes, inits, F, f"{kind}_{'_'.join(map(str, widths))}_{groupnorm}", [in_ch, size, size], parameterization)
    h = conv(xin, in_ch, channels)
    h = silu(adn(h, channels, temb))
    if extras:  # conv epilogue: SiLU(Conv(h) + h)
        h = silu(op("Add", [conv(h, channels, channels), h], "residual"))
    skip = h
    d = conv(h, channels, channels, stride=2)
    d = silu(adn(d, channels, temb))
    # Attention over the (H/2 x W/2) positions of the downsampled map.
    hw = (size // 2) ** 2
    seq = op("Transpose", [op("Reshape", [d, const(np.array([0, channels, hw], np.int64), "shape")])], "seq", perm=[0, 2, 1])
    q = op("MatMul", [seq, weight(channels, channels, fan_in=channels)], "q")
    k = op("MatMul", [seq, weight(channels, channels, fan_in=channels)], "k")
    v = op("MatMul", [seq, weight(channels, channels, fan_in=channels)], "v")
    att = op("Softmax", [op("Mul", [op("MatMul", [q, op("Transpose", [k], perm=[0, 2, 1])]),
                                    const(np.float32(1 / math.sqrt(channels)))])], "att", axis=-1)
    o = op("Transpose", [op("MatMul", [att, v])], perm=[0, 2, 1])
    d = op("Add", [d, op("Reshape", [o, op("Shape", [d])])], "attn_out")
    u = op("Resize", [d, "", const(np.array([1, 1, 2, 2], np.float32), "scales")], "up", mode="nearest")
    h = op("Concat", [u, skip], "cat", axis=1)
    h = conv(h, 2 * channels, channels)
    h = silu(adn(h, channels, temb))
    F = conv(h, channels, in_ch)

    return finish(nodes, inits, F, f"tiny_trigflow_{groupnorm}", [in_ch, size, size], parameterization)


def attention(v, c, hw, op, const, weight):
    """Single-head self-attention over the hw positions of v [N, c, h, w], added back to v."""
    seq = op("Transpose", [op("Reshape", [v, const(np.array([0, c, hw], np.int64), "shape")])], "seq", perm=[0, 2, 1])
    q = op("MatMul", [seq, weight(c, c, fan_in=c)], "q")
    k = op("MatMul", [seq, weight(c, c, fan_in=c)], "k")
    val = op("MatMul", [seq, weight(c, c, fan_in=c)], "v")
    att = op("Softmax", [op("Mul", [op("MatMul", [q, op("Transpose", [k], perm=[0, 2, 1])]),
                                    const(np.float32(1 / math.sqrt(c)))])], "att", axis=-1)
    o = op("Transpose", [op("MatMul", [att, val])], perm=[0, 2, 1])
    return op("Add", [v, op("Reshape", [o, op("Shape", [v])])], "attn_out")


def unet_levels(xin, widths, in_ch, size, block, conv, op, const, weight):
    """The multi-level UNet body of build(widths=...), each level's body `block(h, cin, w)`; returns F."""
    h = conv(xin, in_ch, widths[0])
    skips, cin, res = [], widths[0], size
    for i, w in enumerate(widths):
        if i > 0:
            h = conv(h, cin, cin, stride=2)
            res = (res + 1) // 2
        h = block(h, cin, w)
        cin = w
        if i < len(widths) - 1:
            skips.append((h, w))
    h = attention(h, cin, res * res, op, const, weight)
    for skip, w in reversed(skips):
        h = op("Resize", [h, "", const(np.array([1, 1, 2, 2], np.float32), "scales")], "up", mode="nearest")
        h = op("Concat", [h, skip], "cat", axis=1)
        h = block(h, cin + w, w)
        cin = w
    return conv(h, cin, in_ch)


def finish(nodes, inits, F, name, sample_shape, parameterization):
    """Adds the consistency wrapper f(x, t) = cos(t) x - sigma_d sin(t) F (unless velocity), the
    graph inputs x [N, *sample_shape] and t [N], and the scm.* metadata."""
    rank = 1 + len(sample_shape)
    if parameterization == "consistency":
        t_shape = numpy_helper.from_array(np.array([-1] + [1] * (rank - 1), np.int64), "t_shape")
        sd = numpy_helper.from_array(np.float32(SIGMA_D), "sigma_d_out")
        inits += [t_shape, sd]
        nodes += [helper.make_node("Reshape", ["t", "t_shape"], ["t_b"], name="t_b"),
                  helper.make_node("Cos", ["t_b"], ["cos_t"], name="cos_t"),
                  helper.make_node("Sin", ["t_b"], ["sin_t"], name="sin_t"),
                  helper.make_node("Mul", ["cos_t", "x"], ["cos_x"], name="cos_x"),
                  helper.make_node("Mul", ["sin_t", "sigma_d_out"], ["c_out"], name="c_out"),
                  helper.make_node("Mul", ["c_out", F], ["sin_F"], name="sin_F"),
                  helper.make_node("Sub", ["cos_x", "sin_F"], ["f"], name="consistency")]
        out = "f"
    else:
        out = F
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *sample_shape]),
         helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", *sample_shape])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], producer_name="scm-tools")
    model.ir_version = 10
    helper.set_model_props(model, {
        "scm.format": "trigflow/1",
        "scm.parameterization": parameterization,
        "scm.sigma_data": str(SIGMA_D),
        "scm.t_max": f"{T_MAX:.7f}",
        "scm.schedule.1": f"{T_MAX:.7f}",
        "scm.schedule.2": f"{T_MAX:.7f},1.1",
        "scm.schedule.4": f"{T_MAX:.7f},1.3,0.8,0.4",
        "scm.data_range": "-1,1",
        "scm.sample_shape": ",".join(map(str, sample_shape)),
        "scm.training": "untrained: random weights (tools/make_tiny_model.py)",
    })
    onnx.checker.check_model(model, full_check=True)
    return model


def build_vector(dim=2, hidden=32, emb=16, seed=0, parameterization="consistency"):
    """A TrigFlow model for vector data x [N, dim] (2-D toys): an MLP on [x / sigma_d, time
    embedding] with SiLU, random weights."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(arr, n):
        inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def node(op_type, inputs, out, **attrs):
        nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def dense(v, cin, cout, n):
        w = const(rng.normal(0, 1 / math.sqrt(cin), (cout, cin)).astype(np.float32), n + "_w")
        b = const((0.1 * rng.normal(size=cout)).astype(np.float32), n + "_b")
        return node("Gemm", [v, w, b], n, transB=1)

    def silu(v):
        return node("Mul", [v, node("Sigmoid", [v], v + "_sig")], v + "_silu")

    freqs = np.exp(-math.log(1000.0) * np.arange(emb // 2) / (emb // 2)).astype(np.float32)
    targ = node("Mul", [node("Unsqueeze", ["t", const(np.array([1], np.int64), "axes1")], "t_col"), const(freqs[None, :], "freqs")], "targ")
    temb = node("Concat", [node("Sin", [targ], "temb_sin"), node("Cos", [targ], "temb_cos")], "temb", axis=1)
    xin = node("Div", ["x", const(np.float32(SIGMA_D), "sigma_d")], "xin")
    h = node("Concat", [xin, temb], "h0", axis=1)
    h = silu(dense(h, dim + emb, hidden, "fc1"))
    h = silu(dense(h, hidden, hidden, "fc2"))
    F = dense(h, hidden, dim, "fc3")
    return finish(nodes, inits, F, "tiny_trigflow_vector", [dim], parameterization)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--groupnorm", choices=["onnx", "pytorch"], default="onnx")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--in-channels", type=int, default=1)
    ap.add_argument("--parameterization", choices=["consistency", "velocity"], default="consistency")
    ap.add_argument("--vector", type=int, default=0, help="build the MLP for vector data of this dimension instead")
    a = ap.parse_args()
    if a.vector:
        m = build_vector(a.vector, seed=a.seed, parameterization=a.parameterization)
    else:
        m = build(a.groupnorm, a.channels, a.size, in_ch=a.in_channels, seed=a.seed, parameterization=a.parameterization)
    onnx.save(m, a.out)
    print(f"wrote {a.out}: {len(m.graph.node)} nodes")


if __name__ == "__main__":
    main()
