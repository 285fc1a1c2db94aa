"""The traps a new user falls into, as one table: each class of bad input crossed with every tool it
applies to. Every cell runs one command in an empty folder and asserts its exit code, the key words
of its message, the tool's one error style (`<tool>: error: ...`) and that nothing was left behind
(no file or folder beyond those the cell made itself).

Exit codes: 0 success, 64 usage, 3 unsupported, 1 any other error, 130 interrupted.
"""
import os
import signal
import subprocess
import time

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import make_tiny_model
from conftest import BIN, ROOT, scm

TOOLS = ["scm-run", "scm-export", "scm-inspect", "scm-infer", "scm-train", "scm-eval"]
MODEL = os.path.join(ROOT, "models", "tiny-trigflow.onnx")
CLASSIFIER = os.path.join(ROOT, "models", "fashion-classifier.onnx")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """The inputs the cells share, outside the cells' folders: a checkpoint, a model with its
    contract, a PNG, noise and tensors with a NaN, inputs whose N disagree."""
    d = tmp_path_factory.mktemp("trap-fixtures")
    r = scm("scm-train", "--data", "checkerboard", "--objective", "flow", "--out", d / "run", "--steps", 1,
            "--batch", 8, "--threads", 1)
    assert r.returncode == 0, r.stderr
    f = {"ckpt": str(sorted((d / "run" / "checkpoints").glob("*.ckpt"))[-1]), "model": MODEL}
    png = d / "picture.png"
    png.write_bytes(bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\0" * 16)
    f["png"] = str(png)
    noise = np.zeros((2, 3, 1, 8, 8), np.float32)
    noise[1, 2, 0, 0, 0] = np.nan
    np.save(d / "nan-noise.npy", noise)
    f["nan_noise"] = str(d / "nan-noise.npy")
    np.save(d / "wrong-noise.npy", np.zeros((2, 3, 1, 4, 4), np.float32))
    f["wrong_noise"] = str(d / "wrong-noise.npy")
    samples = np.zeros((4, 1, 28, 28), np.float32)
    samples[2, 0, 3, 3] = np.inf
    np.save(d / "inf-samples.npy", samples)
    f["inf_samples"] = str(d / "inf-samples.npy")
    np.save(d / "small-samples.npy", np.zeros((4, 1, 8, 8), np.float32))
    f["small_samples"] = str(d / "small-samples.npy")
    for name, arr in {"x2": np.zeros((2, 1, 8, 8), np.float32), "t3": np.ones(3, np.float32),
                      "t2": np.ones(2, np.float32)}.items():
        (d / f"{name}.pb").write_bytes(numpy_helper.from_array(arr, name[0]).SerializeToString())
        f[name] = str(d / f"{name}.pb")
    xn = np.zeros((2, 1, 8, 8), np.float32)
    xn[0, 0, 0, 0] = np.nan
    (d / "xnan.pb").write_bytes(numpy_helper.from_array(xn, "x").SerializeToString())
    f["xnan"] = str(d / "xnan.pb")
    return f


def cell(rows, cls, tool, args, code, words, before=None):
    rows.append(pytest.param(tool, args, code, words, before, id=f"{cls}/{tool}"))


ROWS = []
# A training checkpoint given where a model belongs.
cell(ROWS, "checkpoint-as-model", "scm-run", ["{ckpt}", "--count", 2, "--npy", "s.npy"], 1, ["training checkpoint", "scm-export"])
cell(ROWS, "checkpoint-as-model", "scm-run", ["{ckpt}", "--sigma-data", 2.3, "--t-max", 1.5, "--data-range=-4,4", "--npy", "s.npy"],
     1, ["training checkpoint", "scm-export"])
cell(ROWS, "checkpoint-as-model", "scm-inspect", ["{ckpt}", "--steps", 2], 1, ["training checkpoint", "scm-export"])
cell(ROWS, "checkpoint-as-model", "scm-eval", ["{inf_samples}", "--data", "fashion-mnist", "--classifier", "{ckpt}", "--no-cache"],
     1, ["training checkpoint"])
cell(ROWS, "checkpoint-as-model", "scm-export", ["--attach", "{ckpt}", "o.onnx", "--parameterization", "velocity", "--sigma-data", 0.5],
     1, ["training checkpoint"])
# A contract overwritten.
cell(ROWS, "contract-overwritten", "scm-export", ["--attach", "{model}", "o.onnx", "--parameterization", "velocity", "--sigma-data", 0.5],
     1, ["already carries a TrigFlow contract", "--replace-contract"])
# Non-finite inputs: files and flags.
cell(ROWS, "non-finite", "scm-run", ["{model}", "--noise", "{nan_noise}", "--npy", "s.npy"], 1, ["non-finite", "step 1, sample 2"])
cell(ROWS, "non-finite", "scm-run", ["{model}", "--sigma-data", "nan", "--npy", "s.npy"], 64, ["--sigma-data", "positive"])
cell(ROWS, "non-finite", "scm-run", ["{model}", "--schedule", "1.5,nan", "--npy", "s.npy"], 64, ["--schedule"])
cell(ROWS, "non-finite", "scm-export", ["--attach", "x.onnx", "o.onnx", "--parameterization", "velocity", "--sigma-data", "inf"],
     64, ["--sigma-data", "positive"])
cell(ROWS, "non-finite", "scm-eval", ["{inf_samples}", "--data", "fashion-mnist", "--no-cache"], 1, ["not finite", "sample 2"])
cell(ROWS, "non-finite", "scm-train", ["--data", "checkerboard", "--objective", "sct", "--lr", "nan", "--steps", 1, "--out", "run"],
     64, ["--lr"])
# Flags that would be ignored, or are given twice.
cell(ROWS, "ignored-flag", "scm-run", ["{model}", "--nrow", 4, "--npy", "s.npy"], 64, ["--nrow", "--out"])
cell(ROWS, "ignored-flag", "scm-run", ["{model}", "--solver", "euler", "--npy", "s.npy"], 64, ["--solver", "--ode-steps"])
cell(ROWS, "ignored-flag", "scm-export", ["{model}", "o.onnx", "--parameterization", "velocity"], 64, ["--parameterization", "--attach"])
cell(ROWS, "ignored-flag", "scm-train", ["--data", "checkerboard", "--objective", "sct", "--trajectories", 8, "--steps", 1, "--out", "run"],
     64, ["--trajectories", "cmt"])
cell(ROWS, "ignored-flag", "scm-eval", ["{inf_samples}", "--data", "checkerboard", "--classifier", "{ckpt}"], 64, ["--classifier"])
for tool, args in {"scm-run": ["{model}", "--steps", 1, "--steps", 2], "scm-inspect": ["{model}", "--steps", 1, "--steps=2"],
                   "scm-export": ["{model}", "o.onnx", "--optimize", "--optimize"],
                   "scm-infer": ["{model}", "--threads", 1, "--threads", 2, "--inputs", "{x2}", "{t2}"],
                   "scm-train": ["--data", "checkerboard", "--objective", "sct", "--steps", 1, "--steps", 2, "--out", "run"],
                   "scm-eval": ["{inf_samples}", "--data", "fashion-mnist", "--json", "--json"]}.items():
    cell(ROWS, "repeated-flag", tool, args, 64, ["given more than once"])
cell(ROWS, "ignored-flag", "scm-export", ["{model}", "o.onnx", "--optimize", "--steps", 1, "--passes", "dce", "--fold-limit", 10],
     64, ["--fold-limit", "fold"])
cell(ROWS, "ignored-flag", "scm-infer", ["--list-ops", "{model}"], 64, ["--list-ops", "would be ignored"])
cell(ROWS, "ignored-flag", "scm-eval", ["{inf_samples}", "--data", "checkerboard", "--nn-count", 3], 64, ["--nn-count", "image data"])
cell(ROWS, "ignored-flag", "scm-train", ["--data", "checkerboard", "--objective", "flow", "--tangent-warmup", 5, "--steps", 1,
                                         "--out", "run"], 64, ["--tangent-warmup"])
cell(ROWS, "ignored-flag", "scm-train", ["--data", "checkerboard", "--objective", "sct", "--ema-std", 0.05, "--ema-decay", 0.9,
                                         "--steps", 1, "--out", "run"], 64, ["--ema-std", "--ema-decay"])
cell(ROWS, "ignored-flag", "scm-inspect", ["{model}", "--steps", 1, "--passes", "dce", "--fold-limit", 10], 64, ["--fold-limit"])
# Requests sized past the machine.
cell(ROWS, "usage", "scm-train", ["--data", "fashion-mnist", "--objective", "sct", "--attention", "7,7", "--steps", 1, "--out", "run"],
     64, ["--attention", "7 twice"])
cell(ROWS, "oversized", "scm-run", ["{model}", "--count", 64, "--batch", 64, "--max-tensor-elements", 10000], 1,
     ["--batch", "64 samples", "max-tensor-elements"])
cell(ROWS, "oversized", "scm-train", ["--data", "fashion-mnist", "--objective", "sct", "--batch", 16384, "--steps", 1, "--out", "run"],
     1, ["--batch", "smaller batch"])
cell(ROWS, "oversized", "scm-run", [os.path.join(ROOT, "models", "fashion-scd.onnx"), "--count", 16_000_000, "--npy", "s.npy"],
     1, ["--count", "memory", "available"])
cell(ROWS, "oversized", "scm-run", ["{model}", "--count", 2_000_000_000], 64, ["--count"])
cell(ROWS, "oversized", "scm-infer", ["{model}", "--inputs", "{x2}", "{t2}", "--max-tensor-elements", 10], 1, ["limit"])
# Failures leave no folder behind.
cell(ROWS, "leftovers", "scm-run", ["{model}", "--noise", "{wrong_noise}", "--out-dir", "new/samples"], 1, ["noise", "shape"])
cell(ROWS, "leftovers", "scm-run", ["{model}", "--count", 3, "--out-dir", "old"], 1, ["earlier run", "sample_00003.png"],
     before="old-samples")
cell(ROWS, "leftovers", "scm-infer", ["{model}", "--inputs", "{x2}", "{t3}", "--output-dir", "new/out"], 1, ["'x' has N = 2"])
cell(ROWS, "leftovers", "scm-train", ["--data", "checkerboard", "--objective", "scd", "--teacher", "missing.onnx", "--steps", 1,
                                      "--out", "run"], 1, ["missing.onnx"])
cell(ROWS, "leftovers", "scm-train", ["--data", "checkerboard", "--objective", "sct", "--steps", 1, "--out", "file"], 1,
     ["exists and is not a folder"], before="file")
for resume in ([], ["--resume"]):
    cell(ROWS, "leftovers", "scm-train", ["--data", "checkerboard", "--objective", "sct", "--steps", 1, "--out", "run", *resume], 1,
         ["loss.csv", "no checkpoint"], before="old-log")
cell(ROWS, "leftovers", "scm-export", ["{png}", "new/o.onnx"], 1, ["PNG image"])
cell(ROWS, "leftovers", "scm-export", ["{model}", "steps", "--optimize", "--steps", 1], 1, ["step2.onnx", "earlier export"],
     before="old-steps")
cell(ROWS, "leftovers", "scm-infer", ["{model}", "--inputs", "{x2}", "{t2}", "--output-dir", "old"], 1, ["output_1.pb", "earlier run"],
     before="old-outputs")
cell(ROWS, "leftovers", "scm-run", ["{model}", "--count", 2, "--npy", "fifo"], 1, ["not a regular file"], before="fifo")
cell(ROWS, "leftovers", "scm-eval", ["{inf_samples}", "--data", "fashion-mnist", "--cache", "file"], 64, ["--cache", "is a file"],
     before="file")
# Usage errors: exit 64, the usage line, every tool.
cell(ROWS, "usage", "scm-export", ["{model}", "o.onnx", "--optimize", "--schedule", "1.5645463,nan"], 64, ["--schedule"])
cell(ROWS, "usage", "scm-inspect", ["{model}", "--steps", 3, "--schedule", "1.5645463,1.0"], 64, ["2 times for 3 steps"])
cell(ROWS, "usage", "scm-export", ["{model}", "o.onnx", "--optimize", "--steps", 2, "--t-max", "nan"], 64, ["--t-max"])
for tool, args in {"scm-run": [], "scm-export": ["{model}"], "scm-inspect": ["{model}", "--passes", "no-such-pass"],
                   "scm-infer": [], "scm-train": ["--data", "fashion-mnist", "--objective", "sct", "--out", "run", "--steps", 1, "--widths", "8,x"],
                   "scm-eval": ["{inf_samples}", "--data", "fashion-mnist", "--nn-count", -1]}.items():
    cell(ROWS, "usage", tool, args, 64, ["Usage:"])
cell(ROWS, "usage", "scm-export", ["{model}", "o.onnx", "--optimize", "--steps", 1, "--passes", "fold,no-such-pass"], 64, ["no-such-pass"])
cell(ROWS, "usage", "scm-run", ["{model}", "--solver", "rk4", "--ode-steps", 2], 64, ["'rk4' is invalid"])
# A file that is not a model.
for tool, args in {"scm-run": ["{png}"], "scm-export": ["{png}", "o.onnx"], "scm-inspect": ["{png}"],
                   "scm-infer": ["{png}"], "scm-eval": ["{inf_samples}", "--data", "fashion-mnist", "--classifier", "{png}", "--no-cache"],
                   "scm-train": ["--data", "checkerboard", "--objective", "scd", "--teacher", "{png}", "--steps", 1, "--out", "run"]}.items():
    cell(ROWS, "not-a-model", tool, args, 1, ["PNG image"])
# Inputs that do not fit each other.
cell(ROWS, "input-mismatch", "scm-infer", ["{model}", "--inputs", "{x2}", "{t3}"], 1, ["'x' has N = 2", "'t' has N = 3"])
cell(ROWS, "input-mismatch", "scm-run", ["{model}", "--noise", "{wrong_noise}", "--npy", "s.npy"], 1, ["[2, N, 1, 8, 8]"])
cell(ROWS, "input-mismatch", "scm-run", ["{model}", "--noise", "{nan_noise}", "--count", 5, "--npy", "s.npy"], 1, ["--count", "3 samples"])
cell(ROWS, "input-mismatch", "scm-eval", ["{small_samples}", "--data", "fashion-mnist", "--no-cache"], 1, ["[N, 1, 28, 28]"])
cell(ROWS, "input-mismatch", "scm-infer", ["{model}", "--inputs", "{x2}"], 1, ["2 inputs", "1 files given"])
cell(ROWS, "not-a-model", "scm-infer", ["{model}", "--inputs", "{small_samples}", "{t2}"], 1, ["NumPy .npy", "TensorProto"])
# Reported, not refused: a graph may compute non-finite values on purpose.
cell(ROWS, "non-finite-noted", "scm-infer", ["{model}", "--inputs", "{xnan}", "{t2}"], 0, ["note: input 'x'", "non-finite"])


# The loss log of a run that stopped before its first checkpoint.
OLD_LOG = "step,loss,grad_norm,lr,seconds\n1,0.5,1,0.001,0.01\n2,0.4,1,0.001,0.02\n"


def prepare(folder, before):
    if before == "old-samples":
        (folder / "old").mkdir()
        for i in range(5):
            (folder / "old" / f"sample_{i:05d}.png").write_bytes(b"")
    elif before == "file":
        (folder / "file").write_text("")
    elif before == "old-steps":
        (folder / "steps").mkdir()
        (folder / "steps" / "step2.onnx").write_bytes(b"")
    elif before == "old-outputs":
        (folder / "old").mkdir()
        (folder / "old" / "output_1.pb").write_bytes(b"")
    elif before == "fifo":
        os.mkfifo(folder / "fifo")
    elif before == "old-log":
        (folder / "run").mkdir()
        (folder / "run" / "loss.csv").write_text(OLD_LOG)


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("tool,args,code,words,before", ROWS)
def test_trap(tmp_path, fixtures, tool, args, code, words, before):
    prepare(tmp_path, before)
    there = listing(tmp_path)
    argv = [str(a).format(**fixtures) for a in args]
    r = subprocess.run([os.path.join(BIN, tool), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == code, (r.returncode, r.stderr)
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    if code != 0:
        assert r.stderr.startswith(f"{tool}: error: ") or f"\n{tool}: error: " in r.stderr, r.stderr
        assert "Error:" not in r.stderr, r.stderr
    assert listing(tmp_path) == there, "left behind"
    if before == "old-log":
        assert (tmp_path / "run" / "loss.csv").read_text() == OLD_LOG, "the earlier run's log was overwritten"


def test_every_tool_has_a_cell_of_each_class_that_applies():
    """The table covers each tool for the classes every tool meets."""
    for cls in ("repeated-flag", "usage", "not-a-model"):
        tools = {p.id.split("/")[1] for p in ROWS if p.id.startswith(cls + "/")}
        assert tools == set(TOOLS), (cls, set(TOOLS) - tools)


@pytest.mark.parametrize("tool", ["scm-run", "scm-train"])
def test_interrupted_tools_leave_nothing_partial(tmp_path, tool):
    """SIGINT while a tool writes: scm-run removes its temporaries and the folder it created and
    exits 130; scm-train saves a checkpoint at the step it reached and exits 130."""
    args = {"scm-run": [os.path.join(ROOT, "models", "fashion-scd.onnx"), "--count", 2000, "--out-dir", "new/d", "--npy", "s.npy"],
            "scm-train": ["--data", "checkerboard", "--objective", "sct", "--steps", 100000, "--out", "run", "--batch", 8]}[tool]
    p = subprocess.Popen([os.path.join(BIN, tool), *map(str, args)], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130, (p.returncode, err)
    left = listing(tmp_path)
    if tool == "scm-run":
        assert "scm-run: interrupted" in err and left == [], left
    else:
        assert "interrupted" in out and any(x.endswith(".ckpt") for x in left), (out, left)
        assert not [x for x in left if ".tmp-" in x], left
