"""The four CLIs as a new user meets them: flags, exit codes, limits, outputs, messages.

Each test guards one defect found by trying every README command (issue 15, "CLI defects"); the
number in each docstring is that list's item.

Exit codes (README, "Exit codes"): 0 success; 64 a usage error (an unknown, missing, malformed or
out-of-range flag, or flags that contradict each other), found before any file is read; 1 any
other error (a model, data file or output path); scm-infer: 3 an op, attribute or dtype that is
not supported.
"""
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess

import numpy as np
import onnx
import pytest

import make_tiny_model
from conftest import BIN, ROOT, scm

T_MAX = make_tiny_model.T_MAX
USAGE = 64


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny TrigFlow UNet storing scm.schedule.1, .2 and .4."""
    path = tmp_path_factory.mktemp("cli") / "m.onnx"
    onnx.save(make_tiny_model.build("onnx", channels=8, size=8, seed=3), str(path))
    return str(path)


def without(path, out, keys):
    m = onnx.load(path)
    kept = [p for p in m.metadata_props if p.key not in keys]
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    onnx.save(m, str(out))
    return str(out)


def ok(tool, *args):
    r = scm(tool, *args)
    assert r.returncode == 0, r.stderr
    return r


def refused(tool, *args, code, expect, absent=()):
    r = scm(tool, *args)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    for e in [expect] if isinstance(expect, str) else expect:
        assert e in r.stderr, r.stderr
    for a in absent:
        assert a not in r.stderr, r.stderr
    assert "Fatal error" not in r.stderr and "Traceback" not in r.stderr
    return r


def test_huge_count_is_refused_before_allocating(model, tmp_path):
    """1: --count 10^12 aborted (exit 134) allocating the batch list before the range check."""
    refused("scm-run", model, "--count", 1000000000000, "--npy", tmp_path / "x.npy", code=USAGE, expect="--count")
    assert os.listdir(tmp_path) == []


def test_t_max_override_with_stored_schedules(model, tmp_path):
    """2: --t-max was refused for any model storing a schedule, even for ODE runs or with --schedule."""
    ok("scm-run", model, "--t-max", "1.2", "--ode-steps", 2)
    ok("scm-run", model, "--t-max", "1.2", "--schedule", "1.2,0.5")
    ok("scm-run", model, "--t-max", "1.2", "--steps", 3)  # no stored 3-step schedule: the default rule at 1.2
    times = json.loads(ok("scm-run", model, "--t-max", "1.2", "--steps", 3, "--json").stdout)["times"]
    assert times[0] == pytest.approx(1.2) and len(times) == 3
    # The stored 2-step schedule starts at the file's t_max: using it with another t_max is an error
    # that names the key and the way out.
    refused("scm-run", model, "--t-max", "1.2", "--steps", 2, code=1, expect=["scm.schedule.2", "--schedule"])
    # The same t_max as the file's keeps its schedules.
    times = json.loads(ok("scm-run", model, "--t-max", f"{T_MAX:.7f}", "--steps", 2, "--json").stdout)["times"]
    assert times[1] == pytest.approx(1.1)


def test_two_outputs_on_one_path(model, tmp_path):
    """3: --out s.npy --npy s.npy overwrote silently and printed "wrote" twice."""
    os.chdir(tmp_path)
    refused("scm-run", model, "--count", 4, "--out", "s.npy", "--npy", "s.npy", code=USAGE, expect="s.npy")
    refused("scm-run", model, "--count", 4, "--out", "s.npy", "--npy", "./s.npy", code=USAGE, expect=["--out", "--npy"])
    os.mkdir(tmp_path / "d")
    refused("scm-run", model, "--count", 4, "--out", tmp_path / "d" / "sample_00002.png", "--out-dir", "d", code=USAGE,
            expect=["--out", "--out-dir"])
    assert sorted(os.listdir(tmp_path)) == ["d"] and os.listdir(tmp_path / "d") == []


def test_infer_json_with_profile_is_json(tmp_path):
    """4: scm-infer --json --profile printed profile lines before the JSON object."""
    import onnx.helper as h
    from onnx import numpy_helper
    m = h.make_model(h.make_graph([h.make_node("Relu", ["x"], ["r"]), h.make_node("Sigmoid", ["r"], ["y"])], "g",
                                  [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
                                  [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])]),
                     opset_imports=[h.make_opsetid("", 17)])
    onnx.save(m, str(tmp_path / "m.onnx"))
    (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(np.ones((2, 3), np.float32)).SerializeToString())
    r = ok("scm-infer", tmp_path / "m.onnx", "--inputs", tmp_path / "x.pb", "--json", "--profile", "--repeat", 2)
    report = json.loads(r.stdout)
    assert {p["op"] for p in report["profile"]} == {"Relu", "Sigmoid"}
    assert all(p["ms"] >= 0 for p in report["profile"])
    # Without --json the profile is a table on stderr with aligned columns, even for long op names.
    r = ok("scm-infer", tmp_path / "m.onnx", "--inputs", tmp_path / "x.pb", "--profile")
    rows = [l for l in r.stderr.splitlines() if l.rstrip().endswith("%")]
    assert len(rows) == 2 and len({l.index(" ms") for l in rows}) == 1, r.stderr


def test_profile_columns_align_with_long_names(model, tmp_path):
    """15: --profile columns were misaligned for names longer than 22 characters (ai.scm ops)."""
    steps = tmp_path / "steps"
    ok("scm-export", model, steps, "--optimize", "--steps", 1, "--batch", 2)
    x = np.zeros((2, 1, 8, 8), np.float32)
    from onnx import numpy_helper
    (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(x, "x").SerializeToString())
    r = ok("scm-infer", steps / "step1.onnx", "--inputs", tmp_path / "x.pb", "--profile")
    rows = [l for l in r.stderr.splitlines() if l.rstrip().endswith("%")]
    assert any("AdaptiveGroupNorm" in l for l in rows), r.stderr
    assert len({l.index(" ms") for l in rows}) == 1, r.stderr
    assert "kernels" in r.stderr and " steps" not in r.stderr, r.stderr


def test_exit_codes_agree_with_the_readme(model, tmp_path):
    """5: the README said bad flags exit 1; they exit 64. Usage errors are 64 in every tool."""
    refused("scm-run", model, "--steps", 0, code=USAGE, expect="--steps")
    refused("scm-run", model, "--bogus", code=USAGE, expect="--bogus")
    refused("scm-inspect", model, "--steps", 0, code=USAGE, expect="--steps")
    refused("scm-export", model, tmp_path / "o", "--optimize", "--steps", 0, code=USAGE, expect="--steps")
    refused("scm-infer", model, "--threads", 0, code=USAGE, expect="--threads")
    # Errors found in files are 1.
    refused("scm-run", tmp_path / "missing.onnx", code=1, expect="missing.onnx")
    refused("scm-inspect", tmp_path / "missing.onnx", code=1, expect="missing.onnx")
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert re.search(r"exit[^\n]*\b64\b", readme), "README must document exit status 64 for usage errors"


def test_steps_need_only_t_max(model, tmp_path):
    """6: scm-inspect/scm-export --steps asked for sigma_data, which the optimizer does not need."""
    bare = without(model, tmp_path / "bare.onnx", {"scm.sigma_data"})
    ok("scm-inspect", bare, "--steps", 2)
    ok("scm-export", bare, tmp_path / "out", "--optimize", "--steps", 2)
    assert sorted(os.listdir(tmp_path / "out")) == ["step1.onnx", "step2.onnx"]
    no_t = without(model, tmp_path / "no_t.onnx", {"scm.sigma_data", "scm.t_max"})
    refused("scm-inspect", no_t, "--steps", 2, code=1, expect=["scm.t_max", "--t-max"], absent=["sigma"])
    ok("scm-inspect", no_t, "--steps", 2, "--t-max", f"{T_MAX:.7f}")
    ok("scm-export", no_t, tmp_path / "out2", "--optimize", "--steps", 2, "--t-max", f"{T_MAX:.7f}")
    ok("scm-inspect", no_t, "--schedule", "1.5,0.7")  # an explicit schedule starts at t_max


def test_bad_override_flags_are_blamed_on_the_flag(model, tmp_path):
    """7: --sigma-data=-1 blamed the model's metadata; CLI messages named API members."""
    refused("scm-run", model, "--sigma-data=-1", code=USAGE, expect="--sigma-data", absent=["metadata"])
    refused("scm-run", model, "--t-max", "2", code=USAGE, expect="--t-max", absent=["metadata"])
    bare = without(model, tmp_path / "bare.onnx", {"scm.sigma_data", "scm.t_max", "scm.data_range"})
    r = refused("scm-run", bare, code=1, expect="--sigma-data", absent=["Overrides"])
    r = refused("scm-run", bare, "--sigma-data", "0.5", code=1, expect="--t-max", absent=["Overrides"])
    r = refused("scm-run", bare, "--sigma-data", "0.5", "--t-max", f"{T_MAX:.7f}", "--out", tmp_path / "g.png", code=1,
                expect="--data-range", absent=["Overrides", "dataRange"])


def test_failed_write_leaves_nothing(model, tmp_path):
    """8: a write failing midway left the earlier outputs behind."""
    os.makedirs(tmp_path / "od" / "sample_00001.png")
    refused("scm-run", model, "--count", 3, "--npy", tmp_path / "p.npy", "--out", tmp_path / "p.png",
            "--out-dir", tmp_path / "od", code=1, expect="sample_00001.png")
    assert sorted(os.listdir(tmp_path)) == ["od"]
    assert os.listdir(tmp_path / "od") == ["sample_00001.png"]
    # Existing outputs are replaced whole, or kept whole.
    os.rmdir(tmp_path / "od" / "sample_00001.png")
    ok("scm-run", model, "--count", 3, "--npy", tmp_path / "p.npy", "--out", tmp_path / "p.png", "--out-dir", tmp_path / "od")
    assert sorted(os.listdir(tmp_path / "od")) == [f"sample_0000{i}.png" for i in range(3)]
    assert sorted(os.listdir(tmp_path)) == ["od", "p.npy", "p.png"]


def test_ignored_flags_are_refused(model, tmp_path):
    """9: flags that did nothing in their context were silently ignored."""
    np.save(tmp_path / "n.npy", np.zeros((2, 3, 1, 8, 8), np.float32))
    refused("scm-run", model, "--solver", "euler", code=USAGE, expect=["--solver", "--ode-steps"])
    refused("scm-run", model, "--steps", 3, "--ode-steps", 4, code=USAGE, expect=["--steps", "--ode-steps"])
    refused("scm-run", model, "--seed", 3, "--noise", tmp_path / "n.npy", code=USAGE, expect=["--seed", "--noise"])
    refused("scm-inspect", model, "--verbose", code=USAGE, expect="--verbose")
    refused("scm-inspect", model, "--batch", 4, code=USAGE, expect="--batch")
    refused("scm-inspect", model, "--steps", 2, "--fold-limit", -1, code=USAGE, expect="--fold-limit")
    refused("scm-export", model, tmp_path / "o", "--optimize", "--fold-limit", -5, code=USAGE, expect="--fold-limit")
    refused("scm-run", model, "--nrow", 4, code=USAGE, expect=["--nrow", "--out"])
    assert sorted(os.listdir(tmp_path)) == ["n.npy"]


def test_schedule_flag_wins_and_implies_steps(model, tmp_path):
    """10: the explicit --schedule beats the file's scm.schedule.N; its length is the step count."""
    r = json.loads(ok("scm-run", model, "--steps", 2, "--schedule", f"{T_MAX:.7f},0.5", "--json").stdout)
    assert r["times"][1] == pytest.approx(0.5)
    r = json.loads(ok("scm-run", model, "--schedule", f"{T_MAX:.7f},1.0,0.5", "--json").stdout)
    assert r["nfe"] == 3 and r["times"][2] == pytest.approx(0.5)
    refused("scm-run", model, "--steps", 2, "--schedule", f"{T_MAX:.7f},1.0,0.5", code=USAGE, expect="3 times for 2 steps")
    r = json.loads(ok("scm-inspect", model, "--schedule", f"{T_MAX:.7f},1.0,0.5", "--json").stdout)
    assert [s["t"] for s in r["steps"]] == pytest.approx([T_MAX, 1.0, 0.5])
    ok("scm-export", model, tmp_path / "o", "--optimize", "--schedule", f"{T_MAX:.7f},0.9")
    assert sorted(os.listdir(tmp_path / "o")) == ["step1.onnx", "step2.onnx"]
    doc = open(os.path.join(ROOT, "schemas", "README.md")).read()
    assert "`--schedule` / the API's `schedule:` argument when given, else the file's `scm.schedule.N`" in doc


def test_no_output_and_progress(model, tmp_path):
    """11: scm-run with no output flag wrote nothing and said nothing; long runs showed no progress."""
    r = ok("scm-run", model, "--count", 2)
    assert "nothing is written" in r.stderr, r.stderr
    # On a terminal (stderr a tty), progress lines; not in a pipe.
    master, slave = pty.openpty()
    p = subprocess.Popen([os.path.join(BIN, "scm-run"), model, "--count", "40", "--batch", "8", "--npy", str(tmp_path / "s.npy")],
                         stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    p.wait(timeout=60)
    os.close(master)
    assert p.returncode == 0
    text = seen.decode()
    assert re.search(r"\b40/40 samples\b", text) and "images/s" in text and "ETA" in text, text
    assert "samples" not in ok("scm-run", model, "--count", 40, "--batch", 8, "--npy", tmp_path / "s.npy").stderr


def test_one_set_of_limits(model, tmp_path):
    """12: limits differed across tools (threads 1024 vs 256, batch 65536 vs 1048576, steps unbounded)."""
    from onnx import numpy_helper
    (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(np.zeros((1, 1, 8, 8), np.float32)).SerializeToString())
    for tool, extra in [("scm-run", []), ("scm-infer", ["--inputs", tmp_path / "x.pb"])]:
        refused(tool, model, "--threads", 257, *extra, code=USAGE, expect=["--threads", "1...256"])
    for tool, extra in [("scm-run", []), ("scm-inspect", ["--steps", 1]), ("scm-export", [tmp_path / "o", "--optimize"])]:
        refused(tool, model, "--batch", 65537, *extra, code=USAGE, expect=["--batch", "1...65536"])
    for tool, extra in [("scm-run", []), ("scm-inspect", []), ("scm-export", [tmp_path / "o", "--optimize"])]:
        refused(tool, model, "--steps", 10001, *extra, code=USAGE, expect=["--steps", "1...10000"])
    refused("scm-run", model, "--ode-steps", 10001, code=USAGE, expect=["--ode-steps", "1...10000"])
    refused("scm-run", model, "--count", 16777217, code=USAGE, expect=["--count", "1...16777216"])


def test_non_utf8_file_names(model, tmp_path):
    """13: a file name that is not UTF-8 gave "No such file or directory" for a file that exists."""
    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.onnx")
    shutil.copy(model, name)
    r = subprocess.run([os.path.join(BIN, "scm-inspect").encode(), name], capture_output=True, timeout=60)
    assert r.returncode == USAGE, r.stderr
    assert b"not valid UTF-8" in r.stderr and b"No such file" not in r.stderr, r.stderr


def test_cosmetics(model, tmp_path):
    """15: "1 changes", the Heun summary listing each time twice, --steps -3 as "Missing value",
    one note per tensor on --save of external data, scm-infer shape errors naming no file or input."""
    text = ok("scm-inspect", model, "--steps", 1).stdout
    assert not re.search(r"\b1 changes\b", text), text
    r = ok("scm-run", model, "--ode-steps", 3, "--solver", "heun", "--count", 2).stdout
    grid = re.search(r"at t = ([^,]+(?:, [^,]+)*?), \d+ network", r)
    assert grid, r
    shown = grid.group(1).split(", ")
    assert len(shown) == len(set(shown)), r
    refused("scm-run", model, "--steps", "-3", code=USAGE, expect="-3", absent=["Missing value"])
    refused("scm-inspect", model, "--steps", "-3", code=USAGE, expect="-3", absent=["Missing value"])
    # External data: one note for the whole save.
    m = onnx.load(model)
    onnx.save(m, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.bin", size_threshold=0)
    r = ok("scm-inspect", tmp_path / "ext.onnx", "--save", tmp_path / "inline.onnx")
    assert len([l for l in r.stderr.splitlines() if "note" in l]) == 1, r.stderr
    # A wrong input shape names the file and the input.
    from onnx import numpy_helper
    (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(np.zeros((2, 3), np.float32)).SerializeToString())
    (tmp_path / "t.pb").write_bytes(numpy_helper.from_array(np.zeros((2,), np.float32)).SerializeToString())
    r = refused("scm-infer", model, "--inputs", tmp_path / "x.pb", tmp_path / "t.pb", code=1, expect="x.pb")
    assert "'x'" in r.stderr, r.stderr


def unsupported_model(path, sample_shape=(2,), op=("", "Hardmax")):
    """A velocity TrigFlow model on samples of `sample_shape` whose one node is an op this runtime
    does not implement (ONNX's Hardmax, or an op of a custom domain)."""
    from onnx import TensorProto, helper
    shape = ["N", *sample_shape]
    domain, op_type = op
    g = helper.make_graph([helper.make_node(op_type, ["x"], ["y"], domain=domain)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
                           helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    imports = [helper.make_opsetid("", 21)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    m = helper.make_model(g, opset_imports=imports)
    for k, v in [("scm.format", "trigflow/1"), ("scm.parameterization", "velocity"), ("scm.sigma_data", "0.5"),
                 ("scm.t_max", "1.5")]:
        m.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.save(m, str(path))
    return str(path)


@pytest.mark.parametrize("op", [("", "Hardmax"), ("com.example", "Mystery")])
def test_unsupported_op_exits_3_from_every_tool(tmp_path, op):
    """An op this runtime does not implement is exit status 3 from each tool that has to run the
    graph, whichever layer meets it first (the optimizer, the compiler, the trainer's loss), and the
    message names the op; nothing is written."""
    m = unsupported_model(tmp_path / "m.onnx", op=op)
    name = op[1] if not op[0] else f"{op[0]}:{op[1]}"
    from onnx import numpy_helper
    x, t = tmp_path / "x.pb", tmp_path / "t.pb"
    x.write_bytes(numpy_helper.from_array(np.zeros((2, 2), np.float32), "x").SerializeToString())
    t.write_bytes(numpy_helper.from_array(np.ones(2, np.float32), "t").SerializeToString())
    # The classifier of scm-eval with one of its ops replaced.
    clf = onnx.load(os.path.join(ROOT, "models", "fashion-classifier.onnx"))
    node = next(n for n in clf.graph.node if n.op_type in ("Relu", "Sigmoid"))
    node.op_type, node.domain = op[1], op[0]
    if op[0]:
        clf.opset_import.append(onnx.helper.make_opsetid(op[0], 1))
    onnx.save(clf, str(tmp_path / "clf.onnx"))
    np.save(tmp_path / "s.npy", np.zeros((4, 1, 28, 28), np.float32))
    runs = {
        "scm-run": ["scm-run", m, "--count", 2, "--npy", tmp_path / "out.npy"],
        "scm-run (ODE)": ["scm-run", m, "--ode-steps", 2, "--count", 2, "--npy", tmp_path / "out.npy"],
        "scm-infer": ["scm-infer", m, "--inputs", x, t, "--output-dir", tmp_path / "inferred"],
        "scm-inspect": ["scm-inspect", m, "--steps", 1],
        "scm-export": ["scm-export", m, tmp_path / "opt.onnx", "--optimize", "--steps", 1, "--batch", 2],
        "scm-train (scd)": ["scm-train", "--data", "checkerboard", "--objective", "scd", "--teacher", m, "--sigma-data", 0.5,
                            "--init", "none", "--out", tmp_path / "scd", "--steps", 1, "--batch", 4],
        "scm-train (cmt)": ["scm-train", "--data", "checkerboard", "--objective", "cmt", "--teacher", m, "--sigma-data", 0.5,
                            "--init", "none", "--trajectories", 4, "--out", tmp_path / "cmt", "--steps", 1, "--batch", 4],
        "scm-eval": ["scm-eval", tmp_path / "s.npy", "--data", "fashion-mnist", "--classifier", tmp_path / "clf.onnx",
                     "--cache", tmp_path / "cache"],
    }
    for what, args in runs.items():
        r = scm(*args)
        assert r.returncode == 3 and name in r.stderr and "not supported" in r.stderr, (what, r.returncode, r.stderr)
    for left in ("out.npy", "inferred", "opt.onnx"):
        assert not (tmp_path / left).exists(), left


def test_a_checkpoint_is_not_sampled_as_a_model(tmp_path):
    """A training checkpoint holds the raw training network (the velocity F and a weighting head):
    sampling it as if it were the model gave wrong pixels and exit 0 once its sigma_d, t_max and
    data range were supplied. It is refused with what to run instead, nothing written; exported
    first, it samples."""
    r = scm("scm-train", "--data", "checkerboard", "--objective", "flow", "--out", tmp_path / "run", "--steps", 2,
            "--batch", 8, "--threads", 1)
    assert r.returncode == 0, r.stderr
    ckpt = sorted((tmp_path / "run" / "checkpoints").glob("*.ckpt"))[-1]
    for extra in ([], ["--sigma-data", 2.3, "--t-max", 1.5, "--data-range=-4,4"]):
        r = scm("scm-run", ckpt, "--count", 4, "--npy", tmp_path / "s.npy", *extra)
        assert r.returncode == 1 and "training checkpoint" in r.stderr and "scm-export" in r.stderr, r.stderr
        assert not (tmp_path / "s.npy").exists()
    r = scm("scm-export", ckpt, tmp_path / "m.onnx")
    assert r.returncode == 0, r.stderr
    assert scm("scm-run", tmp_path / "m.onnx", "--ode-steps", 2, "--count", 4, "--npy", tmp_path / "s.npy").returncode == 0


def test_interrupted_runs_leave_no_temporary_files(tmp_path, model):
    """SIGINT or SIGTERM while scm-run samples or writes (one grid, an .npy and a PNG per sample)
    removes the temporary files of the writes in flight, says so and exits 130. Signals land at
    several moments, from sampling to the last renames."""
    seen = set()
    for k, delay in enumerate([0.05, 0.15, 0.3, 0.5, 0.8, 1.2, 1.8]):
        out = tmp_path / f"run{k}"
        out.mkdir()
        args = [model, "--count", 4000, "--batch", 64, "--out-dir", out / "d", "--out", out / "g.png", "--npy", out / "g.npy"]
        p = subprocess.Popen([os.path.join(BIN, "scm-run"), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        import time
        time.sleep(delay)
        sig = signal.SIGINT if k % 2 == 0 else signal.SIGTERM
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        if p.returncode == -sig:
            # The signal came before the handlers were installed (a loaded machine starting the
            # binary): the default action ended the process, which had written nothing yet.
            assert not list(out.rglob("*")), (delay, [str(f) for f in out.rglob("*")][:3])
            continue
        assert p.returncode in (0, 130), (delay, p.returncode, err)
        if p.returncode == 130:
            assert "scm-run: interrupted" in err, err
        seen.add(p.returncode)
        left = [str(f) for f in out.rglob("*") if ".tmp-" in f.name]
        assert not left, (delay, left[:3], len(left))
    assert 130 in seen, seen


def test_a_file_that_is_not_a_model_says_what_it_is(tmp_path):
    """An empty file, a PNG, an .npy, a zip (a PyTorch checkpoint) or JSON given as the model: each
    tool says what the file looks like instead of a protobuf wire detail."""
    files = {"empty": (b"", "empty file"), "png": (bytes.fromhex("89504e470d0a1a0a0000000d49484452"), "PNG image"),
             "npy": (b"\x93NUMPY\x01\x00v\x00", "NumPy .npy"), "zip": (b"PK\x03\x04" + b"\0" * 26, "zip archive"),
             "json": (b'{"a": 1}', "JSON text")}
    for name, (data, says) in files.items():
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(data)
        for args in (["scm-run", path, "--count", 1], ["scm-inspect", path], ["scm-export", path, tmp_path / "o.onnx"]):
            r = scm(*args)
            assert r.returncode == 1 and says in r.stderr and "not an ONNX model" in r.stderr, (args, r.stderr)
        assert not (tmp_path / "o.onnx").exists()
