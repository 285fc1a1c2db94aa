"""Models nobody here wrote: the networks of tools/make_torch_fixtures.py (diffusers' UNet2DModel,
a sCM-style UNet in plain PyTorch, a DiT, a network of Mish, MultiheadAttention, ConvTranspose and
bilinear resizes), each exported by TorchScript (opsets 17, 20) and dynamo
(18, 21), committed under Tests/fixtures/torch with PyTorch's own inputs and outputs.

- Every file runs in our runtime within 1e-4 of PyTorch's output (float32 and float64 forward
  passes) and of onnxruntime's, bitwise the same at 1 and 2 threads, at batch 3 (PyTorch's) and
  at batch 1 and 5 (onnxruntime's; the batch dimension is symbolic in every file).
- `scm-export --attach` makes each one samplable: `scm-run` draws 2-step samples bitwise the same
  at 1 and 2 threads and within 1e-4 of the reference sampler on onnxruntime (trigflow_ref), with
  the optimizer (default) and without it (--no-optimize).
- The sampler's fusions fire on the sCM-style UNet in both exporters' encodings of GroupNorm.
"""
import glob
import json
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import ROOT, scm
from scmtools import trigflow_ref as ref
from scmtools.onnxrt import ort_session

FIXTURES = os.path.join(ROOT, "Tests", "fixtures", "torch")
FILES = sorted(os.path.basename(f) for f in glob.glob(os.path.join(FIXTURES, "*.onnx")))
NETWORKS = ["diffusers-unet", "scm-unet", "dit", "conv-mha"]
TOL = 1e-4


def network_of(name):
    return next(n for n in NETWORKS if name.startswith(n + "-"))


def test_every_network_and_exporter_is_there():
    manifest = json.load(open(os.path.join(FIXTURES, "manifest.json")))
    for net in NETWORKS:
        for exporter, opset in [("torchscript", 17), ("torchscript", 20), ("dynamo", 18), ("dynamo", 21)]:
            name = f"{net}-{exporter}-opset{opset}.onnx"
            assert name in FILES, f"{name} is missing (tools/make_torch_fixtures.py)"
            assert manifest["files"][name]["opset_import"]["ai.onnx"] == opset
            assert os.path.getsize(os.path.join(FIXTURES, name)) < 2 << 20


def run_ours(tmp, path, x, t, threads):
    d = os.path.join(tmp, f"run{threads}_{x.shape[0]}")
    os.makedirs(d, exist_ok=True)
    files = []
    for k, v in (("x", x), ("t", t)):
        f = os.path.join(d, k + ".pb")
        open(f, "wb").write(numpy_helper.from_array(v).SerializeToString())
        files.append(f)
    r = scm("scm-infer", path, "--inputs", *files, "--output-dir", d, "--threads", threads, "--min-parallel-elements", 0)
    assert r.returncode == 0, r.stderr
    return numpy_helper.to_array(onnx.load_tensor(os.path.join(d, "output_0.pb")))


def run_ort(path, x, t):
    s = ort_session(path, 1)
    return s.run(None, {"x": x, "t": t})[0]


def close(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = np.abs(a.astype(np.float64) - b.astype(np.float64)).max()
    assert err <= TOL, err
    return err


@pytest.mark.parametrize("name", FILES)
def test_runs_within_1e_4_of_pytorch_and_onnxruntime(name, tmp_path):
    net = network_of(name)
    path = os.path.join(FIXTURES, name)
    inputs = np.load(os.path.join(FIXTURES, f"{net}.inputs.npz"))
    outputs = np.load(os.path.join(FIXTURES, f"{net}.outputs.npz"))
    x, t = inputs["x"], inputs["t"]
    ours = run_ours(str(tmp_path), path, x, t, 1)
    close(ours, outputs["out"])
    close(ours, outputs["out64"])
    close(ours, run_ort(path, x, t))
    assert np.abs(outputs["out"]).max() > 1e-2, "the fixture's output is degenerate"
    assert run_ours(str(tmp_path), path, x, t, 2).tobytes() == ours.tobytes(), "1 and 2 threads differ"
    # Other batch sizes (the batch dimension is symbolic): against onnxruntime.
    rng = np.random.default_rng(len(name))
    for n in (1, 5):
        xb = (rng.normal(size=(n,) + x.shape[1:]) * 0.5).astype(np.float32)
        tb = rng.uniform(0.05, 1.55, n).astype(np.float32)
        close(run_ours(str(tmp_path), path, xb, tb, 2), run_ort(path, xb, tb))


def attach(name, tmp_path):
    out = str(tmp_path / ("attached-" + name))
    r = scm("scm-export", "--attach", os.path.join(FIXTURES, name), out, "--parameterization", "velocity",
            "--sigma-data", 0.5, "--schedule", "1.5645463,1.1", "--data-range=-1,1")
    assert r.returncode == 0, r.stderr
    assert "x / sigma_data inserted" in r.stdout
    onnx.checker.check_model(onnx.load(out), full_check=True)
    return out


@pytest.mark.parametrize("name", FILES)
def test_attached_fixture_is_sampled_by_scm_run(name, tmp_path):
    path = attach(name, tmp_path)
    runs = {}
    for threads, extra in ((1, []), (2, []), (1, ["--no-optimize"])):
        npy = str(tmp_path / f"s{threads}{len(extra)}.npy")
        r = scm("scm-run", path, "--steps", 2, "--count", 5, "--seed", 3, "--threads", threads, "--npy", npy, *extra)
        assert r.returncode == 0, r.stderr
        runs[(threads, len(extra))] = np.load(npy)
    assert runs[(1, 0)].tobytes() == runs[(2, 0)].tobytes(), "samples differ between 1 and 2 threads"
    net = ref.Network(path)
    want = ref.consistency_sample(net, net.schedule(2), ref.seeded_noise(3, 2, 5, (1, 16, 16)))
    close(runs[(1, 0)], want)
    close(runs[(1, 1)], want)


@pytest.mark.parametrize("name", [f for f in FILES if f.startswith("scm-unet-")])
def test_fusions_fire_on_the_scm_style_unet(name, tmp_path):
    path = attach(name, tmp_path)
    r = scm("scm-inspect", path, "--steps", 2, "--batch", 4, "--json")
    assert r.returncode == 0, r.stderr
    after = json.loads(r.stdout)["steps"][1]["after"]["ops"]
    # 12 GroupNorms (each with its scale and shift, or plain) become adaptive GroupNorms, the
    # time path folds away, and the residual convolutions take their epilogues.
    assert after.get("ai.scm:AdaptiveGroupNorm") == 12, after
    assert after.get("ai.scm:FusedConv", 0) >= 6, after
    for op in ("Gemm", "Sin", "Cos", "InstanceNormalization", "GroupNormalization", "Sigmoid"):
        assert op not in after, after


def test_attach_errors(tmp_path):
    name = os.path.join(FIXTURES, FILES[0])
    out = str(tmp_path / "o.onnx")
    cases = [
        (["--parameterization", "velocity"], 64, "--sigma-data"),
        (["--parameterization", "score", "--sigma-data", 0.5], 64, "'score' is invalid for '--parameterization"),
        (["--parameterization", "velocity", "--sigma-data", -1], 64, "positive"),
        (["--parameterization", "velocity", "--sigma-data", 0.5, "--schedule", "1.2,1.1"], 1, "must start at t_max"),
        (["--parameterization", "velocity", "--sigma-data", 0.5, "--input-scale", "half"], 64, "sigma or none"),
        (["--parameterization", "velocity", "--sigma-data", 0.5, "--optimize"], 64, "does not apply to --attach"),
        (["--sigma-data", 0.5], 64, "--parameterization"),
    ]
    for flags, code, message in cases:
        r = scm("scm-export", "--attach", name, out, *flags)
        assert r.returncode == code and message in r.stderr, (flags, r.returncode, r.stderr)
        assert not os.path.exists(out)
    # Not a network of two inputs: the contract's message, nothing written.
    r = scm("scm-export", "--attach", os.path.join(ROOT, "models", "fashion-classifier.onnx"), out,
            "--parameterization", "velocity", "--sigma-data", 0.5)
    assert r.returncode == 1 and "exactly two inputs" in r.stderr, r.stderr
    assert not os.path.exists(out)
    # Without --attach, its flags are usage errors.
    r = scm("scm-export", name, out, "--parameterization", "velocity")
    assert r.returncode == 64 and "applies to --attach" in r.stderr, r.stderr
