"""scm-run against a NumPy + onnxruntime implementation of the sampling contract (tools/scmtools/trigflow_ref.py):
fixed noise files and the seeded generator, 1/2/4 steps, both parameterizations, both GroupNorm
encodings, the ODE baseline; batch and thread invariance; PNG files read back by PIL; errors."""
import json
import os

import numpy as np
import onnx
import pytest
from PIL import Image

import make_tiny_model
from conftest import scm
from scmtools import trigflow_ref as ref

TOL = 1e-4


def save(model, path):
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="module", params=["onnx", "pytorch"])
def unet(request, tmp_path_factory):
    return save(make_tiny_model.build(request.param, channels=8, size=8, seed=5, extras=True),
                tmp_path_factory.mktemp("m") / f"unet_{request.param}.onnx")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return save(make_tiny_model.build("onnx", channels=8, size=8, seed=4), tmp_path_factory.mktemp("m") / "plain.onnx")


@pytest.fixture(scope="module")
def velocity(tmp_path_factory):
    return save(make_tiny_model.build("onnx", channels=8, size=8, seed=6, parameterization="velocity"),
                tmp_path_factory.mktemp("m") / "velocity.onnx")


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    return save(make_tiny_model.build("onnx", channels=8, size=8, in_ch=3, seed=7), tmp_path_factory.mktemp("m") / "rgb.onnx")


@pytest.fixture(scope="module")
def vector(tmp_path_factory):
    return save(make_tiny_model.build_vector(2, seed=8), tmp_path_factory.mktemp("m") / "vector.onnx")


def run(*args):
    r = scm("scm-run", *args)
    assert r.returncode == 0, r.stderr
    return r


def run_json(*args):
    return json.loads(run(*args, "--json").stdout)


def compare(ours, expected):
    assert ours.shape == expected.shape
    err = np.abs(ours.astype(np.float64) - expected).max()
    assert err <= TOL, f"max abs error {err}"


@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("optimize", [True, False])
def test_noise_file_matches_reference(unet, steps, optimize, tmp_path):
    noise = np.random.default_rng(steps).standard_normal((steps, 5, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise)
    args = [unet, "--steps", steps, "--noise", tmp_path / "noise.npy", "--npy", tmp_path / "out.npy", "--batch", 2]
    report = run_json(*args, *([] if optimize else ["--no-optimize"]))
    assert report["nfe"] == steps and report["count"] == 5 and report["optimized"] == optimize
    net = ref.Network(unet)
    compare(np.load(tmp_path / "out.npy"), ref.consistency_sample(net, net.schedule(steps), noise))


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_velocity_parameterization(velocity, steps, tmp_path):
    noise = np.random.default_rng(10 + steps).standard_normal((steps, 3, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise.astype(np.float64))  # float64 files are read too
    run(velocity, "--steps", steps, "--noise", tmp_path / "noise.npy", "--npy", tmp_path / "out.npy")
    net = ref.Network(velocity)
    compare(np.load(tmp_path / "out.npy"), ref.consistency_sample(net, net.schedule(steps), noise))


def test_seeded_noise_is_the_documented_generator(unet, tmp_path):
    seed = 12345678901
    run(unet, "--steps", 4, "--seed", seed, "--count", 5, "--batch", 3, "--npy", tmp_path / "out.npy")
    net = ref.Network(unet)
    noise = ref.seeded_noise(seed, 4, 5, (1, 8, 8))
    compare(np.load(tmp_path / "out.npy"), ref.consistency_sample(net, net.schedule(4), noise))


def test_schedule_override_and_default_rule(unet, tmp_path):
    noise = np.random.default_rng(3).standard_normal((3, 2, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise)
    net = ref.Network(unet)
    times = [float(net.t_max), 1.0, 0.3]
    r = run_json(unet, "--steps", 3, "--schedule", ",".join(map(str, times)), "--noise", tmp_path / "noise.npy",
                 "--npy", tmp_path / "a.npy")
    assert r["times"] == pytest.approx(times, abs=1e-6)
    compare(np.load(tmp_path / "a.npy"), ref.consistency_sample(net, [np.float32(t) for t in times], noise))
    # No scm.schedule.3 in the file: the default rule t_i = t_max sqrt((N - i) / N).
    r = run_json(unet, "--steps", 3, "--noise", tmp_path / "noise.npy", "--npy", tmp_path / "b.npy")
    default = ref.default_schedule(3, float(net.t_max))
    assert r["times"] == pytest.approx([float(t) for t in default], abs=1e-6)
    compare(np.load(tmp_path / "b.npy"), ref.consistency_sample(net, default, noise))


@pytest.mark.parametrize("solver,k,nfe", [("euler", 4, 4), ("heun", 3, 5)])
@pytest.mark.parametrize("which", ["plain", "velocity"])
def test_ode_baseline(request, which, solver, k, nfe, tmp_path):
    model = request.getfixturevalue(which)
    noise = np.random.default_rng(k).standard_normal((1, 3, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise)
    r = run_json(model, "--ode-steps", k, "--solver", solver, "--noise", tmp_path / "noise.npy", "--npy", tmp_path / "o.npy")
    assert r["nfe"] == nfe and r["method"] == f"ode-{solver}"
    compare(np.load(tmp_path / "o.npy"), ref.ode_sample(ref.Network(model), k, solver, noise))


def test_batch_and_thread_invariance(unet, tmp_path):
    outs = {}
    for batch, threads in [(7, 1), (3, 2), (1, 1), (4, 3)]:
        path = tmp_path / f"b{batch}t{threads}.npy"
        run(unet, "--steps", 2, "--seed", 9, "--count", 7, "--batch", batch, "--threads", threads, "--npy", path)
        outs[(batch, threads)] = path.read_bytes()
    # A batch run in chunks (the last smaller) gives the same samples; --json reports the chunk.
    for chunk in (1, 3, 7):
        path = tmp_path / f"c{chunk}.npy"
        d = run_json(unet, "--steps", 2, "--seed", 9, "--count", 7, "--batch", 7, "--chunk", chunk, "--threads", 2, "--npy", path)
        assert d["chunk"] == chunk
        outs[("chunk", chunk)] = path.read_bytes()
    assert len(set(outs.values())) == 1
    # Sample i does not depend on how many are drawn.
    run(unet, "--steps", 2, "--seed", 9, "--count", 3, "--npy", tmp_path / "three.npy")
    assert np.array_equal(np.load(tmp_path / "three.npy"), np.load(tmp_path / "b7t1.npy")[:3])
    # Nor on the ODE's batch.
    run(unet, "--ode-steps", 2, "--seed", 9, "--count", 5, "--batch", 5, "--npy", tmp_path / "o5.npy")
    run(unet, "--ode-steps", 2, "--seed", 9, "--count", 5, "--batch", 2, "--threads", 2, "--npy", tmp_path / "o2.npy")
    assert (tmp_path / "o5.npy").read_bytes() == (tmp_path / "o2.npy").read_bytes()


def test_bf16_precision(unet, tmp_path):
    """--precision bf16: the samples are bitwise the same for any batch, threads and chunk, close to
    (and, where the CPU runs bf16, not equal to) fp32's; --json says which precision ran."""
    outs, ran = {}, set()
    for batch, threads, chunk in [(7, 1, 7), (3, 2, 3), (7, 2, 2), (1, 1, 1), (7, 3, 1)]:
        path = tmp_path / f"b{batch}t{threads}c{chunk}.npy"
        d = run_json(unet, "--steps", 2, "--seed", 9, "--count", 7, "--batch", batch, "--threads", threads, "--chunk", chunk,
                     "--precision", "bf16", "--npy", path)
        ran.add(d["precision"])
        outs[(batch, threads, chunk)] = path.read_bytes()
    assert len(set(outs.values())) == 1 and len(ran) == 1
    d = run_json(unet, "--steps", 2, "--seed", 9, "--count", 7, "--npy", tmp_path / "fp32.npy")
    assert d["precision"] == "fp32"
    a, b = np.load(tmp_path / "b7t1c7.npy").astype(np.float64), np.load(tmp_path / "fp32.npy").astype(np.float64)
    if ran == {"bf16"}:
        err = np.abs(a - b).max() / np.abs(b).max()
        assert 0 < err < 0.03, f"bf16 vs fp32: {err} of the largest value"  # measured 0.004-0.005
    else:
        assert ran == {"fp32"} and np.array_equal(a, b)


def test_grid_png(unet, tmp_path):
    run(unet, "--steps", 2, "--seed", 1, "--count", 7, "--nrow", 3, "--out", tmp_path / "grid.png", "--npy", tmp_path / "s.npy")
    img = Image.open(tmp_path / "grid.png")
    assert img.mode == "L" and img.size == (3 * 10 + 2, 3 * 10 + 2)
    px = np.asarray(img)
    samples = ref.pixels(np.load(tmp_path / "s.npy"), -1, 1)
    expected = np.zeros((32, 32), np.uint8)
    for i in range(7):
        r, c = divmod(i, 3)
        expected[2 + r * 10: 10 + r * 10, 2 + c * 10: 10 + c * 10] = samples[i, 0]
    assert np.array_equal(px, expected)
    # The default grid is ceil(sqrt(count)) wide.
    run(unet, "--steps", 1, "--count", 5, "--out", tmp_path / "g5.png")
    assert Image.open(tmp_path / "g5.png").size == (3 * 10 + 2, 2 * 10 + 2)


def test_rgb_grid_and_out_dir(rgb, tmp_path):
    run(rgb, "--steps", 2, "--count", 4, "--out", tmp_path / "grid.png", "--out-dir", tmp_path / "each", "--npy", tmp_path / "s.npy",
        "--data-range=-2,2")
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (4, 3, 8, 8)
    img = Image.open(tmp_path / "grid.png")
    assert img.mode == "RGB" and img.size == (22, 22)
    expected = ref.pixels(samples, -2, 2).transpose(0, 2, 3, 1)
    assert np.array_equal(np.asarray(img)[12:20, 2:10], expected[2])
    files = sorted(os.listdir(tmp_path / "each"))
    assert files == [f"sample_{i:05d}.png" for i in range(4)]
    for i, f in enumerate(files):
        each = Image.open(tmp_path / "each" / f)
        assert each.mode == "RGB" and each.size == (8, 8)
        assert np.array_equal(np.asarray(each), expected[i])


def test_vector_data(vector, tmp_path):
    noise = np.random.default_rng(4).standard_normal((2, 50, 2)).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise)
    run(vector, "--steps", 2, "--noise", tmp_path / "noise.npy", "--npy", tmp_path / "v.npy", "--out", tmp_path / "scatter.png")
    net = ref.Network(vector)
    compare(np.load(tmp_path / "v.npy"), ref.consistency_sample(net, net.schedule(2), noise))
    img = Image.open(tmp_path / "scatter.png")
    assert img.mode == "RGB" and img.size == (512, 512)
    px = np.asarray(img).reshape(-1, 3)
    assert (px == (31, 119, 180)).all(axis=1).sum() >= 9  # dots were drawn
    r = scm("scm-run", vector, "--steps", 1, "--out-dir", tmp_path / "each")
    assert r.returncode != 0 and "vector" in r.stderr


def test_json_report(unet):
    r = run_json(unet, "--steps", 2, "--count", 4, "--batch", 2, "--threads", 2)
    for key in ["images_per_second", "ms_per_step", "network_ms_per_step", "nfe", "times", "count", "batch", "threads", "files"]:
        assert key in r
    assert r["nfe"] == 2 and r["batch"] == 2 and r["threads"] == 2 and r["images_per_second"] > 0
    text = run(unet, "--steps", 2, "--count", 2).stdout
    assert "images/s" in text and "ms per step" in text and "2 network evaluations" in text


def strip_metadata(path, out, keys):
    m = onnx.load(path)
    kept = [p for p in m.metadata_props if p.key not in keys]
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    onnx.save(m, str(out))
    return str(out)


def fails(*args, expect):
    r = scm("scm-run", *args)
    assert r.returncode != 0, r.stdout
    assert expect in r.stderr, r.stderr
    assert "Fatal error" not in r.stderr and "Traceback" not in r.stderr


def test_errors(unet, tmp_path):
    fails(unet, "--steps", 0, expect="--steps")
    fails(unet, "--count", 0, expect="--count")
    fails(unet, "--batch", 0, expect="--batch")
    fails(unet, "--chunk", 0, expect="--chunk")
    fails(unet, "--precision", "fp16", expect="--precision")
    fails(unet, "--solver", "rk4", "--ode-steps", 2, expect="--solver")
    fails(unet, "--bogus", expect="--bogus")
    fails(unet, "--steps", 2, "--schedule", "1.0,0.5", expect="t_max")
    fails(unet, "--steps", 2, "--schedule", "1.5645463", expect="1 times for 2 steps")
    fails(str(tmp_path / "missing.onnx"), expect="missing.onnx")
    fails(unet, "--data-range", "1,1", expect="--data-range")
    # Unwritable outputs are refused before sampling, and nothing is left behind.
    fails(unet, "--out", tmp_path / "no" / "such" / "grid.png", expect="does not exist")
    fails(unet, "--npy", tmp_path, expect="is a folder")
    (tmp_path / "file").write_text("x")
    fails(unet, "--out-dir", tmp_path / "file", expect="not a folder")
    # Noise of the wrong shape or kind.
    np.save(tmp_path / "n.npy", np.zeros((1, 2, 1, 8, 8), np.float32))
    fails(unet, "--steps", 2, "--noise", tmp_path / "n.npy", expect="needs [2, N, 1, 8, 8]")
    fails(unet, "--steps", 1, "--noise", tmp_path / "n.npy", "--count", 3, expect="holds 2 samples")
    np.save(tmp_path / "i.npy", np.zeros((1, 2, 1, 8, 8), np.int32))
    fails(unet, "--steps", 1, "--noise", tmp_path / "i.npy", expect="float32")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY\x01\x00\xff\x7fjunk")
    fails(unet, "--steps", 1, "--noise", tmp_path / "junk.npy", expect="truncated header")
    assert sorted(os.listdir(tmp_path)) == ["file", "i.npy", "junk.npy", "n.npy"]


def test_metadata_overrides(unet, tmp_path):
    bare = strip_metadata(unet, tmp_path / "bare.onnx", {"scm.sigma_data", "scm.t_max", "scm.data_range"})
    fails(bare, "--steps", 1, expect="--sigma-data")
    fails(bare, "--steps", 1, "--sigma-data", "0.5", expect="--t-max")
    fails(bare, "--steps", 1, "--sigma-data", "0.5", "--t-max", "1.5645463", "--out", tmp_path / "g.png", expect="--data-range")
    run(bare, "--steps", 2, "--sigma-data", "0.5", "--t-max", "1.5645463", "--data-range=-1,1", "--count", 3, "--seed", 2,
        "--out", tmp_path / "g.png", "--npy", tmp_path / "bare.npy")
    run(unet, "--steps", 2, "--count", 3, "--seed", 2, "--npy", tmp_path / "full.npy")
    assert (tmp_path / "bare.npy").read_bytes() == (tmp_path / "full.npy").read_bytes()
    wrong = onnx.load(unet)
    for p in wrong.metadata_props:
        if p.key == "scm.format":
            p.value = "diffusion/9"
    onnx.save(wrong, str(tmp_path / "wrong.onnx"))
    fails(tmp_path / "wrong.onnx", "--steps", 1, expect="scm.format")


def test_models_that_break_the_contract(tmp_path):
    import onnx.helper as h
    metadata = make_tiny_model.build_vector(2, seed=1).metadata_props
    # One input only.
    single = h.make_model(h.make_graph([h.make_node("Identity", ["x"], ["y"])], "one",
                                       [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2])],
                                       [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 2])]),
                          opset_imports=[h.make_opsetid("", 21)])
    single.metadata_props.extend(metadata)
    onnx.save(single, str(tmp_path / "one.onnx"))
    fails(tmp_path / "one.onnx", "--steps", 1, expect="exactly two inputs")
    # Output of the wrong shape.
    bad = h.make_model(h.make_graph([h.make_node("ReduceSum", ["x"], ["y"], keepdims=1)], "sum",
                                    [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2]),
                                     h.make_tensor_value_info("t", onnx.TensorProto.FLOAT, ["N"])],
                                    [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]),
                       opset_imports=[h.make_opsetid("", 21)])
    bad.metadata_props.extend(metadata)
    onnx.save(bad, str(tmp_path / "sum.onnx"))
    fails(tmp_path / "sum.onnx", "--steps", 1, expect="the shape of x")


def test_fixed_batch_model(plain, tmp_path):
    # An export without a dynamic batch axis: x [1, ...], t [1]. Batches run at that size.
    m = onnx.load(plain)
    for vi in (m.graph.input[0], m.graph.input[1], m.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.checker.check_model(m, full_check=True)
    fixed = save(m, tmp_path / "fixed.onnx")
    r = run_json(fixed, "--steps", 2, "--seed", 4, "--count", 3, "--batch", 64, "--npy", tmp_path / "fixed.npy")
    assert r["batch"] == 1
    run(plain, "--steps", 2, "--seed", 4, "--count", 3, "--npy", tmp_path / "dynamic.npy")
    assert (tmp_path / "fixed.npy").read_bytes() == (tmp_path / "dynamic.npy").read_bytes()
    run(fixed, "--steps", 2, "--seed", 4, "--count", 3, "--no-optimize", "--npy", tmp_path / "fixed_unopt.npy")
    compare(np.load(tmp_path / "fixed_unopt.npy"), np.load(tmp_path / "dynamic.npy").astype(np.float64))
