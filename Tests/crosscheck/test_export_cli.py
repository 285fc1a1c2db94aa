"""scm-export's subcommands (write, optimize, attach, jvp, grad, sct-loss, train-step) and the
spelling with mode flags that came before them (`scm-export IN OUT --optimize ...`): both write the
same bytes and print the same lines, a flag of another kind of file is refused naming what takes
it, and the library's errors keep their exit codes."""
import os

import onnx
import pytest

import make_tiny_model
from conftest import BIN, ROOT, scm
from scmtools import proc
from test_cli import unsupported_model

USAGE = 64
FIXTURE = os.path.join(ROOT, "Tests", "fixtures", "torch", "scm-unet-dynamo-opset18.onnx")
SUBCOMMANDS = ["write", "optimize", "attach", "jvp", "grad", "sct-loss", "train-step"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny TrigFlow UNet and the sCT loss graph of it."""
    d = tmp_path_factory.mktemp("export")
    model, loss = d / "m.onnx", d / "loss.onnx"
    onnx.save(make_tiny_model.build("onnx", channels=8, size=8, seed=5), str(model))
    r = scm("scm-export", "sct-loss", model, loss)
    assert r.returncode == 0, r.stderr
    return {"model": str(model), "loss": str(loss)}


# (the mode-flag spelling, the subcommand spelling); IN and OUT are filled in, OUT relative.
PAIRS = [
    (["{model}", "o.onnx"], ["write", "{model}", "o.onnx"]),
    (["{model}", "o.onnx", "--store-schedule", f"{make_tiny_model.T_MAX},1.0"],
     ["write", "{model}", "o.onnx", "--store-schedule", f"{make_tiny_model.T_MAX},1.0"]),
    (["{model}", "steps", "--optimize", "--steps", 2, "--batch", 3], ["optimize", "{model}", "steps", "--steps", 2, "--batch", 3]),
    (["{model}", "o.onnx", "--optimize", "--t", 1.0, "--passes", "fold,dce"],
     ["optimize", "{model}", "o.onnx", "--t", 1.0, "--passes", "fold,dce"]),
    (["--attach", FIXTURE, "o.onnx", "--parameterization", "velocity", "--sigma-data", 0.5, "--data-range=-1,1"],
     ["attach", FIXTURE, "o.onnx", "--parameterization", "velocity", "--sigma-data", 0.5, "--data-range=-1,1"]),
    (["{model}", "o.onnx", "--jvp", "x,t"], ["jvp", "{model}", "o.onnx", "--wrt", "x,t"]),
    (["{model}", "o.onnx", "--grad=x"], ["grad", "{model}", "o.onnx", "--wrt", "x"]),
    (["{model}", "o.onnx", "--sct-loss", "--segments", 0.7], ["sct-loss", "{model}", "o.onnx", "--segments", 0.7]),
    (["{loss}", "o.onnx", "--train-step", "--ema-decay", 0.9], ["train-step", "{loss}", "o.onnx", "--ema-decay", 0.9]),
]


def export(args, files, cwd):
    """scm-export with `args` ({model}, {loss} filled in), run in `cwd`."""
    return proc.scm("scm-export", *[str(a).format(**files) for a in args], bin_dir=BIN, timeout=300, cwd=cwd)


def written(files, tmp_path, name, args):
    """Runs scm-export in a folder of its own; returns its standard output and the bytes of every
    file it wrote (by relative path)."""
    d = tmp_path / name
    d.mkdir()
    r = export(args, files, d)
    assert r.returncode == 0, (args, r.stderr)
    out = {os.path.relpath(os.path.join(root, f), d): open(os.path.join(root, f), "rb").read()
           for root, _, fs in os.walk(d) for f in fs}
    assert out, args
    return r.stdout, out


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[1][0] + (" " + str(p[1][3]) if len(p[1]) > 3 else ""))
def test_a_subcommand_writes_what_its_mode_flag_wrote(files, tmp_path, pair):
    flags, subcommand = pair
    assert written(files, tmp_path, "flags", flags) == written(files, tmp_path, "subcommand", subcommand)


def test_help_lists_the_subcommands_and_each_has_its_own():
    r = scm("scm-export", "--help")
    assert r.returncode == 0, r.stderr
    for name in SUBCOMMANDS:
        assert f"\n  {name}" in r.stdout, (name, r.stdout)
    for name, flag in zip(SUBCOMMANDS, ["--store-schedule", "--steps", "--parameterization", "--wrt", "--wrt", "--segments",
                                        "--ema-decay"]):
        r = scm("scm-export", name, "--help")
        assert r.returncode == 0 and flag in r.stdout, (name, r.stdout)


@pytest.mark.parametrize("args, words", [
    # subcommands: the flag, the subcommand that takes it, the one given
    (["optimize", "{model}", "o.onnx", "--parameterization", "velocity"], ["--parameterization", "scm-export attach", "optimize"]),
    (["attach", "{model}", "o.onnx", "--steps", 2, "--parameterization", "velocity", "--sigma-data", 0.5],
     ["--steps", "scm-export optimize", "attach"]),
    (["write", "{model}", "o.onnx", "--wrt", "x"], ["--wrt", "scm-export jvp", "scm-export grad"]),
    (["jvp", "{model}", "o.onnx", "--wrt", "x", "--sigma-data", 0.5], ["--sigma-data", "scm-export attach", "scm-export sct-loss"]),
    # mode flags: named as mode flags
    (["{model}", "o.onnx", "--steps", 2], ["--steps applies to --optimize"]),
    (["{model}", "o.onnx", "--sct-loss", "--t", 1], ["--t applies to --optimize, not with --sct-loss"]),
    (["{model}", "o.onnx", "--jvp", "x", "--grad", "x"], ["--grad does not apply to --jvp"]),
    (["{model}", "o.onnx", "--train-step", "--train-step"], ["--train-step is given more than once"]),
    (["{model}", "o.onnx", "--jvp", ""], ["--jvp needs a comma-separated list"]),
    (["grad", "{model}", "o.onnx", "--wrt", ","], ["--wrt needs a comma-separated list"]),
    (["optimize", "{model}", "o.onnx", "--steps", 2, "--steps", 3], ["--steps is given more than once"]),
    (["optimize", "{model}", "o.onnx", "--t-max", 1.2], ["--t-max applies with --steps or --schedule"]),
    (["attach", FIXTURE, "o.onnx", "--sigma-data", 0.5], ["--parameterization"]),
])
def test_a_flag_of_another_kind_of_file_is_a_usage_error(files, tmp_path, args, words):
    r = export(args, files, tmp_path)
    assert r.returncode == USAGE and "Usage: scm-export" in r.stderr, (args, r.returncode, r.stderr)
    for w in words:
        assert w in r.stderr, (args, w, r.stderr)
    assert os.listdir(tmp_path) == []


def test_library_errors_keep_their_exit_codes(files, tmp_path):
    """What only the model can tell (a name it lacks, an op this runtime lacks) is exit 1 or 3,
    the flag that set it named; nothing is written."""
    r = scm("scm-export", "jvp", files["model"], tmp_path / "o.onnx", "--wrt", "nope")
    assert r.returncode == 1 and "--wrt" in r.stderr and "'nope' is not a graph input" in r.stderr, r.stderr
    m = unsupported_model(tmp_path / "u.onnx")
    for args in (["optimize", m, tmp_path / "o.onnx", "--steps", 1], ["jvp", m, tmp_path / "o.onnx", "--wrt", "x"]):
        r = scm("scm-export", *args)
        assert r.returncode == 3 and "Hardmax" in r.stderr and "not supported" in r.stderr, (args, r.returncode, r.stderr)
    assert sorted(os.listdir(tmp_path)) == ["u.onnx"]
