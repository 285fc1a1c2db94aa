"""scm-eval and scm-train --objective classify end to end (release binaries): the shipped
classifier's features cross-checked against onnxruntime + NumPy (FD, class histogram, nearest
neighbours), the real-data floor against noise, PNG grids against .npy, the 2-D measures, the
cache, and errors."""
import gzip
import json
import os

import numpy as np
import onnx
import pytest

from conftest import ROOT, scm

CLASSIFIER = os.path.join(ROOT, "models", "fashion-classifier.onnx")
FMNIST = "/usr/share/datasets/fashion-mnist"


def images(split):
    with gzip.open(f"{FMNIST}/{split}-images-idx3-ubyte.gz") as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16)
    return data.reshape(-1, 1, 28, 28)


def as_float(x):
    return (x.astype(np.float32) / np.float32(127.5) - np.float32(1)).astype(np.float32)


def evaluate(*args):
    r = scm("scm-eval", *args, "--json", "--threads", 2)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr


def ort_outputs(x):
    from scmtools.onnxrt import ort_session
    s = ort_session(CLASSIFIER)
    feats, logits = [], []
    for i in range(0, len(x), 1000):
        f, l = s.run(None, {"x": x[i:i + 1000]})
        feats.append(f)
        logits.append(l)
    return np.concatenate(feats).astype(np.float64), np.concatenate(logits)


def frechet(a, b):
    """FD by an independent route: sqrt of the PSD matrix via numpy's eigh."""
    mu = a.mean(0) - b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root @ cb @ root
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(mu @ mu + np.trace(ca) + np.trace(cb) - 2 * np.sqrt(np.clip(ev, 0, None)).sum())


def test_real_test_set_matches_onnxruntime_and_numpy(tmp_path):
    """The test set evaluated as samples: equal to the floor; its FD, class shares and NN
    distances equal an onnxruntime + NumPy computation; the cache reproduces the computed floor."""
    test = as_float(images("t10k"))
    npy = tmp_path / "test.npy"
    np.save(npy, test)
    cache = tmp_path / "cache"
    j, err = evaluate(npy, "--data", "fashion-mnist", "--classifier", CLASSIFIER, "--cache", cache, "--nn-count", 200)
    assert "cached the train set" in err and len(os.listdir(cache)) == 2
    s, f = j["samples"], j["floor"]
    assert s["fd"] == f["fd"] and s["class_shares"] == f["class_shares"] and s["nn"] == f["nn"]
    acc = float({p.key: p.value for p in onnx.load(CLASSIFIER).metadata_props}["scm.classifier.test_accuracy"])
    assert j["test_accuracy"] == pytest.approx(acc)
    train = as_float(images("train"))
    ft, _ = ort_outputs(train)
    fs, ls = ort_outputs(test)
    fd = frechet(fs, ft)
    assert s["fd"] == pytest.approx(fd, rel=1e-3, abs=1e-4), (s["fd"], fd)
    shares = np.bincount(ls.argmax(1), minlength=10) / len(ls)
    assert np.abs(np.array(s["class_shares"]) - shares).max() <= 2e-4  # at most 2 near-ties differ
    q = test[:200].reshape(200, -1).astype(np.float64)
    t = train.reshape(len(train), -1).astype(np.float64)
    d2 = (q * q).sum(1)[:, None] + (t * t).sum(1)[None, :] - 2 * q @ t.T
    nn = np.sqrt(np.clip(d2.min(1), 0, None))
    assert s["nn"]["mean"] == pytest.approx(nn.mean(), rel=1e-6)
    assert s["nn"]["threshold"] == pytest.approx(np.quantile(nn, 0.05), rel=1e-6)
    # The floor is small against noise; the cached reference gives the same floor.
    noise = np.random.default_rng(0).uniform(-1, 1, (2000, 1, 28, 28)).astype(np.float32)
    npy2 = tmp_path / "noise.npy"
    np.save(npy2, noise)
    j2, err2 = evaluate(npy2, "--data", "fashion-mnist", "--classifier", CLASSIFIER, "--cache", cache, "--nn-count", 200)
    assert "cached" not in err2
    assert j2["floor"] == f
    assert j2["samples"]["fd"] > 100 * max(f["fd"], 1e-3)
    assert j2["samples"]["kid"]["mean"] > 100 * abs(f["kid"]["mean"]) + 10 * f["kid"]["std"]
    assert j2["samples"]["nn"]["mean"] > 1.5 * f["nn"]["mean"]
    assert f["min_class_share"] > 0.08


def test_png_grid_equals_npy(tmp_path):
    """A PNG grid in scm-run's layout (2-pixel black padding, 7 per row, last row part-filled)
    gives the same measures as the .npy of the same 8-bit images."""
    x = images("t10k")[:100]
    rows, cols = 15, 7
    grid = np.zeros((rows * 30 + 2, cols * 30 + 2), np.uint8)
    for i in range(100):
        r, c = divmod(i, cols)
        grid[2 + 30 * r:30 + 30 * r, 2 + 30 * c:30 + 30 * c] = x[i, 0]
    from PIL import Image
    png = tmp_path / "grid.png"
    Image.fromarray(grid).save(png)
    npy = tmp_path / "x.npy"
    np.save(npy, as_float(x))
    a, _ = evaluate(png, "--data", "fashion-mnist", "--classifier", CLASSIFIER, "--no-cache", "--nn-count", 50, "--kid-subsets", 10)
    b, _ = evaluate(npy, "--data", "fashion-mnist", "--classifier", CLASSIFIER, "--no-cache", "--nn-count", 50, "--kid-subsets", 10)
    assert a["samples"]["count"] == 100
    assert a["samples"] == b["samples"]


def test_checkerboard_measures(tmp_path):
    """Exact checkerboard points: all in the cells, energy distance and SW1 at the floor's level;
    uniform points on the square: half in the cells, both distances far above the floor."""
    rng = np.random.default_rng(1)
    cells = np.array([(2 * i - 4, 2 * j - 4) for j in range(4) for i in range(4) if (i + j) % 2 == 0], np.float32)
    exact = cells[rng.integers(0, 8, 4000)] + 2 * rng.random((4000, 2), np.float32)
    uniform = rng.uniform(-4, 4, (4000, 2)).astype(np.float32)
    np.save(tmp_path / "exact.npy", exact)
    np.save(tmp_path / "uniform.npy", uniform)
    e, _ = evaluate(tmp_path / "exact.npy", "--data", "checkerboard")
    u, _ = evaluate(tmp_path / "uniform.npy", "--data", "checkerboard")
    assert e["samples"]["support_share"] == 1 and e["floor"]["support_share"] == 1
    assert 0.45 < u["samples"]["support_share"] < 0.55
    floor = e["floor"]
    # The unbiased energy distance of two exact samples scatters around 0 (either sign) by ~1e-3.
    assert abs(e["samples"]["energy_distance"]) < 3e-3 and abs(floor["energy_distance"]) < 3e-3
    assert u["samples"]["energy_distance"] > 6e-3
    assert u["samples"]["sliced_w1"] > 2 * floor["sliced_w1"]
    r = scm("scm-eval", tmp_path / "exact.npy", "--data", "checkerboard")
    assert r.returncode == 0 and "in a filled cell" in r.stdout and "energy distance" in r.stdout


def test_errors(tmp_path):
    pts = tmp_path / "pts.npy"
    np.save(pts, np.zeros((10, 2), np.float32))
    cases = [
        (["missing.npy", "--data", "checkerboard"], 1, "no such file"),
        ([pts, "--data", "fashion-mnist", "--classifier", CLASSIFIER], 1, "shape [10, 2]"),
        ([pts, "--data", "mnist"], 1, "neither a known dataset"),
        ([pts, "--data", "checkerboard", "--classifier", CLASSIFIER], 64, "--classifier applies"),
        ([pts, "--data", "checkerboard", "--threads", 0], 64, "--threads"),
        ([pts, "--data", "fashion-mnist", "--classifier", os.path.join(ROOT, "models", "tiny-trigflow.onnx")], 1, "not a classifier"),
    ]
    for args, code, text in cases:
        r = scm("scm-eval", *args)
        assert r.returncode == code and text in r.stderr, (args, r.returncode, r.stderr)
        assert r.stdout == ""


def test_classify_objective_trains_and_refuses_foreign_flags(tmp_path):
    """A short scm-train --objective classify run: the written model has the features/logits
    outputs, passes the ONNX checker, records its test accuracy (well above chance after 60
    steps); flags of the TrigFlow objectives are usage errors."""
    out = tmp_path / "cls"
    r = scm("scm-train", "--data", "fashion-mnist", "--objective", "classify", "--out", out, "--steps", 60, "--batch", 64,
            "--lr", 2e-3, "--threads", 2, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["test_accuracy"] > 0.6 and rep["test_count"] == 10000
    m = onnx.load(rep["model"])
    onnx.checker.check_model(m, full_check=True)
    assert [o.name for o in m.graph.output] == ["features", "logits"]
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["scm.format"] == "classifier/1" and float(meta["scm.classifier.test_accuracy"]) == pytest.approx(rep["test_accuracy"], abs=1e-4)
    assert len(open(out / "loss.csv").read().splitlines()) == 61
    for extra in (["--sigma-data", 0.5], ["--dropout", 0.1], ["--minutes", 1], ["--resume"], ["--widths", "8,16"], ["--hidden", 8]):
        r = scm("scm-train", "--data", "fashion-mnist", "--objective", "classify", "--out", tmp_path / "x", "--steps", 5, *extra)
        assert r.returncode == 64 and "classify does not take" in r.stderr, (extra, r.stderr)
