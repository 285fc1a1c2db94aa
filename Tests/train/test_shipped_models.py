"""The generative models shipped in models/ (release binaries): valid ONNX that onnxruntime runs
with our runtime's results, the metadata the sampler needs, and the quality claims of
models/README.md that are cheap to check: every Fashion-MNIST class in at least 8% of 10,000
two-step samples of the demo's sCD model (5% for the small sCT model) (under the shipped classifier, run by onnxruntime), and the checkerboard model's
two-step samples in the filled cells."""
import os

import numpy as np
import onnx
import pytest

from conftest import BIN, ROOT, inside_checkerboard, scm

MODELS = os.path.join(ROOT, "models")
CLASSIFIER = os.path.join(MODELS, "fashion-classifier.onnx")


def metadata(path):
    return {p.key: p.value for p in onnx.load(path).metadata_props}


@pytest.mark.parametrize("name,parameterization,dataset", [
    ("fashion-scd.onnx", "consistency", "fashion-mnist"),
    ("fashion-flow-default.onnx", "velocity", "fashion-mnist"),
    ("fashion-sct.onnx", "consistency", "fashion-mnist"),
    ("fashion-flow.onnx", "velocity", "fashion-mnist"),
    ("checkerboard-sct.onnx", "consistency", "checkerboard"),
])
def test_shipped_model_is_valid_and_agrees_with_onnxruntime(name, parameterization, dataset):
    path = os.path.join(MODELS, name)
    assert os.path.getsize(path) < 20 * 2**20
    onnx.checker.check_model(onnx.load(path), full_check=True)
    meta = metadata(path)
    assert meta["scm.format"] == "trigflow/1" and meta["scm.parameterization"] == parameterization
    assert meta["scm.dataset"] == dataset and "scm.training" in meta and "scm.schedule.2" in meta
    import crosscheck_ort
    res = crosscheck_ort.crosscheck(path, batch=8, binary=os.path.join(BIN, "scm-infer"))
    assert all(o["relative_error"] <= 1e-4 for o in res), res


@pytest.mark.parametrize("name,least", [("fashion-scd.onnx", 0.08), ("fashion-sct.onnx", 0.05)])
def test_fashion_two_steps_cover_every_class(tmp_path, name, least):
    npy = tmp_path / "s.npy"
    r = scm("scm-run", os.path.join(MODELS, name), "--steps", 2, "--count", 10000, "--npy", npy)
    assert r.returncode == 0, r.stderr
    x = np.clip(np.load(npy), -1, 1)
    assert x.shape == (10000, 1, 28, 28)
    from scmtools.onnxrt import ort_session
    s = ort_session(CLASSIFIER)
    labels = np.concatenate([s.run(["logits"], {"x": x[i:i + 1000]})[0].argmax(1) for i in range(0, len(x), 1000)])
    shares = np.bincount(labels, minlength=10) / len(labels)
    print(f"{name}: class shares of 10,000 two-step samples:", np.round(shares, 4).tolist())
    assert shares.min() >= least, shares


def test_checkerboard_two_steps_land_in_the_cells(tmp_path):
    npy = tmp_path / "c.npy"
    r = scm("scm-run", os.path.join(MODELS, "checkerboard-sct.onnx"), "--steps", 2, "--count", 10000, "--npy", npy)
    assert r.returncode == 0, r.stderr
    inside = float(inside_checkerboard(np.load(npy)).mean())
    print(f"checkerboard: {inside:.4f} of 10,000 two-step samples in the filled cells")
    assert inside >= 0.9, inside
