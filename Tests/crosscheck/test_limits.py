"""Resource limits through the command-line tools: the compile-time corpus (Tests/corpus/compile)
through scm-infer with each case's --max-* flags, the flags' usage errors, and scm-run's planned
activation memory following --batch."""
import os

import numpy as np
import onnx
from onnx import numpy_helper

import make_tiny_model
from conftest import ROOT, scm

CORPUS = os.path.join(ROOT, "Tests", "corpus", "compile")
TOOLS = ("scm-inspect", "scm-infer", "scm-run", "scm-export")


def rows():
    return [l.rstrip("\n").split("\t") for l in open(os.path.join(CORPUS, "expected.tsv")) if not l.startswith("#")]


def zero_inputs(path, tmp):
    """TensorProto files of zeros at each graph input's declared shape and type; None when too large to write."""
    m = onnx.load(path)
    inits = {t.name for t in m.graph.initializer}
    files = []
    for i, vi in enumerate(x for x in m.graph.input if x.name not in inits):
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if int(np.prod(shape, dtype=np.float64)) > 1 << 20:
            return None
        p = tmp / f"{os.path.basename(path)}.in{i}.pb"
        dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        p.write_bytes(numpy_helper.from_array(np.zeros(shape, dtype), vi.name).SerializeToString())
        files.append(p)
    return files


def test_compile_corpus_through_scm_infer(tmp_path):
    checked = 0
    for file, kind, text, flags in rows():
        path = os.path.join(CORPUS, file)
        inputs = zero_inputs(path, tmp_path)
        if inputs is None:  # a terabyte input cannot be written: the Swift test compiles it at its declared shape
            continue
        out = tmp_path / ("out_" + file)
        r = scm("scm-infer", path, *flags.split(), "--output-dir", out, *(["--inputs", *inputs] if inputs else []))
        assert r.returncode == 1, (file, r.returncode, r.stderr)
        assert text in r.stderr and r.stderr.startswith("scm-infer: error: "), (file, r.stderr)
        assert not out.exists(), file
        if flags and not file.startswith("fuzz_"):  # the flags are what makes it fail: without them it runs
            r = scm("scm-infer", path, "--output-dir", out, *(["--inputs", *inputs] if inputs else []))
            assert r.returncode == 0, (file, r.stderr)
        checked += 1
    assert checked >= 7


def test_limit_flags_are_checked(tmp_path):
    model = os.path.join(ROOT, "models", "tiny-trigflow.onnx")
    for tool in TOOLS:
        for flag in ("--max-file-bytes", "--max-nodes", "--max-graph-depth", "--max-tensor-elements",
                     "--max-initializer-bytes", "--max-activation-bytes"):
            extra = [tmp_path / f"{tool}.onnx"] if tool == "scm-export" else []
            r = scm(tool, model, *extra, flag, 0)
            assert r.returncode == 64 and f"{flag} must be at least 1, is 0" in r.stderr, (tool, flag, r.stderr)
        extra = [tmp_path / f"{tool}.onnx"] if tool == "scm-export" else []
        r = scm(tool, model, *extra, "--max-tensor-elements", (1 << 30) + 1)
        assert r.returncode == 64 and "--max-tensor-elements must be at most 1073741824" in r.stderr, (tool, r.stderr)
    # Every tool loads under the limits it is given.
    size = os.path.getsize(model)
    for tool in TOOLS:
        extra = [tmp_path / f"{tool}.onnx"] if tool == "scm-export" else []
        r = scm(tool, model, *extra, "--max-file-bytes", size - 1)
        assert r.returncode == 1 and f"over the limit of {size - 1} bytes" in r.stderr, (tool, r.stderr)
        r = scm(tool, model, *extra, "--max-nodes", 3)
        assert r.returncode == 1 and "more than 3 nodes" in r.stderr, (tool, r.stderr)


def test_scm_run_activation_limit_follows_the_batch(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(make_tiny_model.build("onnx", channels=8, size=8, seed=4), path)
    r = scm("scm-run", path, "--steps", 1, "--count", 2, "--batch", 2, "--json")
    assert r.returncode == 0, r.stderr
    r = scm("scm-run", path, "--steps", 1, "--count", 2, "--batch", 2, "--max-activation-bytes", 1 << 20, "--npy", tmp_path / "a.npy")
    assert r.returncode == 0, r.stderr
    r = scm("scm-run", path, "--steps", 1, "--count", 256, "--batch", 256, "--max-activation-bytes", 1 << 20, "--npy", tmp_path / "b.npy")
    assert r.returncode == 1 and "planned activation memory is" in r.stderr and "batch 256" in r.stderr, r.stderr
    assert not (tmp_path / "b.npy").exists()
    # A batch whose x alone is over the element limit: refused at compile time, not at allocation.
    r = scm("scm-run", path, "--steps", 1, "--count", 64, "--batch", 64, "--max-tensor-elements", 4096)
    assert r.returncode == 1 and "(max-tensor-elements)" in r.stderr, r.stderr
