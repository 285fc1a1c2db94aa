"""scm-train and scm-export CKPT end to end: quality of a short sCT run on the checkerboard,
bitwise resume, crash-safe checkpoints, NaN handling, bad data and flags, export contract."""
import json
import os
import random
import shutil
import signal
import subprocess
import time

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import BIN, ROOT, inside_checkerboard, scm


def train(*args, check=True):
    r = subprocess.run([os.path.join(BIN, "scm-train"), *map(str, args)], capture_output=True, text=True, timeout=1200)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def ckpt_tensors(path):
    m = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}, {p.key: p.value for p in m.metadata_props}


def test_checkerboard_sct_two_steps_land_in_the_cells(tmp_path):
    """sCT from scratch on the 4x4 checkerboard for ~1 minute, exported, 2-step samples through
    scm-run: at least 85% inside the filled cells (an untrained network gives about 50%)."""
    out = tmp_path / "run"
    r = train("--data", "checkerboard", "--objective", "sct", "--out", out, "--steps", 16000, "--batch", 256,
              "--checkpoint-every", 8000, "--threads", 2, "--json")
    report = json.loads(r.stdout)
    assert report["steps"] == 16000 and os.path.exists(report["checkpoint"]) and os.path.exists(report["samples"])
    model = tmp_path / "model.onnx"
    r = scm("scm-export", report["checkpoint"], model)
    assert r.returncode == 0, r.stderr
    m = onnx.load(str(model))
    onnx.checker.check_model(m, full_check=True)
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["scm.parameterization"] == "consistency" and meta["scm.dataset"] == "checkerboard"
    assert meta["scm.schedule.2"].endswith(",1.1000000") and "scm.schedule.4" in meta and meta["scm.data_range"] == "-4.0,4.0"
    # onnxruntime agrees with our runtime on the exported file.
    import crosscheck_ort
    res = crosscheck_ort.crosscheck(str(model), batch=16, binary=os.path.join(BIN, "scm-infer"))
    assert all(o["relative_error"] <= 1e-4 for o in res), res
    fractions = {}
    for steps in (1, 2):
        npy = tmp_path / f"s{steps}.npy"
        r = scm("scm-run", model, "--steps", steps, "--count", 10000, "--seed", 1, "--npy", npy)
        assert r.returncode == 0, r.stderr
        fractions[steps] = float(inside_checkerboard(np.load(npy)).mean())
    print(f"checkerboard sCT, {report['seconds']:.1f} s ({report['seconds_per_step'] * 1000:.2f} ms/step): "
          f"inside {fractions[1]:.3f} (1 step), {fractions[2]:.3f} (2 steps)")
    assert fractions[2] >= 0.85, fractions
    # The untrained network, for contrast: far below.
    untrained = tmp_path / "untrained"
    train("--data", "checkerboard", "--objective", "sct", "--out", untrained, "--steps", 1, "--batch", 8, "--lr", 1e-9)
    scm("scm-export", untrained / "checkpoints" / "step_00000001.ckpt", tmp_path / "u.onnx")
    scm("scm-run", tmp_path / "u.onnx", "--steps", 2, "--count", 4000, "--npy", tmp_path / "u.npy")
    assert inside_checkerboard(np.load(tmp_path / "u.npy")).mean() < 0.7


@pytest.mark.parametrize("data,model,batch", [("checkerboard", "default", 64), ("fashion-mnist", "small", 4)])
def test_resume_is_bitwise_identical(data, model, batch, tmp_path):
    """A run stopped and resumed (twice, once by SIGINT) ends with the same bytes as one never stopped."""
    common = ["--data", data, "--objective", "sct", "--model", model, "--batch", batch, "--checkpoint-every", 7, "--seed", 3,
              "--threads", 2, "--tangent-warmup", 10, "--lr-warmup", 5]
    straight = tmp_path / "straight"
    train(*common, "--out", straight, "--steps", 24)
    parts = tmp_path / "parts"
    train(*common, "--out", parts, "--steps", 10)
    r = train(*common, "--out", parts, "--steps", 24, "--resume", "--json")
    assert json.loads(r.stdout)["start_step"] == 10
    a, ma = ckpt_tensors(straight / "checkpoints" / "step_00000024.ckpt")
    b, mb = ckpt_tensors(parts / "checkpoints" / "step_00000024.ckpt")
    assert ma == mb and a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # The loss logs agree step by step (the resumed run rewrote the lines after its checkpoint).
    la = [l.split(",")[:3] for l in (straight / "loss.csv").read_text().splitlines()]
    lb = [l.split(",")[:3] for l in (parts / "loss.csv").read_text().splitlines()]
    assert la == lb and len(la) == 25


def test_sigint_saves_and_resumes(tmp_path):
    common = ["--data", "checkerboard", "--objective", "sct", "--batch", 64, "--checkpoint-every", 100000, "--seed", 5, "--threads", 1]
    out = tmp_path / "run"
    p = subprocess.Popen([os.path.join(BIN, "scm-train"), *map(str, common), "--out", str(out), "--steps", "200000", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    report = json.loads(stdout)
    assert report["interrupted"] and report["steps"] > 0 and os.path.exists(report["checkpoint"])
    stopped = report["steps"]
    r = train(*common, "--out", out, "--steps", stopped + 20, "--resume", "--json")
    assert json.loads(r.stdout)["start_step"] == stopped
    straight = tmp_path / "straight"
    train(*common, "--out", straight, "--steps", stopped + 20)
    a, _ = ckpt_tensors(out / "checkpoints" / f"step_{stopped + 20:08d}.ckpt")
    b, _ = ckpt_tensors(straight / "checkpoints" / f"step_{stopped + 20:08d}.ckpt")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_kill_during_checkpoints_leaves_a_loadable_one(tmp_path):
    """SIGKILL at random moments of a run that saves every step: the latest checkpoint always
    loads, resumes, and no temporary file is mistaken for one."""
    out = tmp_path / "run"
    common = ["--data", "checkerboard", "--objective", "sct", "--model", "default", "--batch", 32, "--checkpoint-every", 1,
              "--threads", 1, "--out", out]
    rng = random.Random(0)
    for k in range(5):
        args = [os.path.join(BIN, "scm-train"), *map(str, common), "--steps", "100000"] + (["--resume"] if k else [])
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.6 + rng.random())
        p.kill()
        p.wait()
        ckpts = sorted((out / "checkpoints").glob("step_*.ckpt"))
        assert ckpts, "no checkpoint after a kill"
        r = scm("scm-export", ckpts[-1], tmp_path / f"m{k}.onnx")
        assert r.returncode == 0, (ckpts[-1], r.stderr)
    r = train(*common, "--steps", int(sorted((out / "checkpoints").glob("step_*.ckpt"))[-1].stem[5:]) + 3, "--resume", "--json")
    assert json.loads(r.stdout)["steps"] >= 3


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    """An absurd learning rate: step 1's update blows the weights up, step 2's loss is not finite.
    The run stops with an error naming step 2 and the last good checkpoint (step 1), which loads."""
    out = tmp_path / "run"
    r = train("--data", "checkerboard", "--objective", "flow", "--out", out, "--steps", 400, "--batch", 64, "--lr", 1e6,
              "--lr-warmup", 0, "--max-grad-norm", 0, "--checkpoint-every", 1, check=False)
    assert r.returncode == 1, r.stderr
    ck = out / "checkpoints" / "step_00000001.ckpt"
    assert "step 2: the loss is" in r.stderr and f"last good checkpoint is {ck}" in r.stderr, r.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [ck.name]
    assert scm("scm-export", ck, tmp_path / "m.onnx").returncode == 0


def test_bad_data_flags_and_configurations(tmp_path):
    def fails(*args, expect, code=1):
        r = train(*args, check=False)
        assert r.returncode == code, (r.returncode, r.stderr)
        assert expect in r.stderr, r.stderr
        assert "Fatal error" not in r.stderr
    base = ["--objective", "sct", "--steps", 2, "--batch", 4]
    fails("--data", "nope", *base, "--out", tmp_path / "a", expect="checkerboard")
    fails("--data", tmp_path / "missing-dir", *base, "--out", tmp_path / "a", expect="missing-dir")
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "a.png").write_bytes(b"not a png")
    fails("--data", tmp_path / "pngs", *base, "--out", tmp_path / "a", expect="a.png")
    fails("--data", "checkerboard", "--objective", "nope", "--steps", 2, "--out", tmp_path / "a", expect="--objective", code=64)
    fails("--data", "checkerboard", "--objective", "sct", "--out", tmp_path / "a", expect="--steps", code=64)
    fails("--data", "checkerboard", *base, "--out", tmp_path / "a", "--lr", -1, expect="--lr", code=64)
    fails("--data", "checkerboard", *base, "--out", tmp_path / "a", "--model", "huge", expect="--model")
    # A finished run: again without --resume is refused; --resume with other settings names them.
    train("--data", "checkerboard", *base, "--out", tmp_path / "done")
    fails("--data", "checkerboard", *base, "--out", tmp_path / "done", expect="--resume")
    fails("--data", "checkerboard", "--objective", "sct", "--steps", 4, "--batch", 8, "--out", tmp_path / "done", "--resume",
          expect="batch: 4 vs 8")
    # A corrupted checkpoint is an error naming it, not a crash.
    ck = sorted((tmp_path / "done" / "checkpoints").glob("*.ckpt"))[-1]
    ck.write_bytes(ck.read_bytes()[:200])
    fails("--data", "checkerboard", *base, "--out", tmp_path / "done", "--resume", expect=ck.name)


def test_flow_checkpoint_exports_the_velocity_network(tmp_path):
    out = tmp_path / "run"
    r = train("--data", "checkerboard", "--objective", "flow", "--out", out, "--steps", 50, "--batch", 64, "--json")
    ck = json.loads(r.stdout)["checkpoint"]
    r = scm("scm-export", ck, tmp_path / "v.onnx")
    assert r.returncode == 0, r.stderr
    # The summary names the checkpoint's step (it once printed a garbage value: see scm-export's run())
    assert "(step 50, EMA weights), velocity parameterization" in r.stdout, r.stdout
    m = onnx.load(str(tmp_path / "v.onnx"))
    onnx.checker.check_model(m, full_check=True)
    assert {p.key: p.value for p in m.metadata_props}["scm.parameterization"] == "velocity"
    r = scm("scm-run", tmp_path / "v.onnx", "--ode-steps", 4, "--count", 100, "--npy", tmp_path / "v.npy")
    assert r.returncode == 0, r.stderr
    # Export then --optimize --steps works on a checkpoint too.
    r = scm("scm-export", ck, tmp_path / "steps", "--optimize", "--steps", 2)
    assert r.returncode == 0, r.stderr


def test_export_stores_a_tuned_schedule(tmp_path):
    """--store-schedule: a checkpoint exported (or a model written back) with schedules tuned on
    samples, which scm-run then uses for that step count; bad schedules and flags are refused
    and write nothing."""
    r = train("--data", "checkerboard", "--objective", "sct", "--out", tmp_path / "run", "--steps", 20, "--batch", 16, "--json")
    ck = json.loads(r.stdout)["checkpoint"]
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    r = scm("scm-export", ck, a)
    assert r.returncode == 0, r.stderr
    tm = {p.key: p.value for p in onnx.load(str(a)).metadata_props}["scm.t_max"]  # atan(80 / sigma_d)
    r = scm("scm-export", ck, a, "--store-schedule", tm + ",1.3")
    assert r.returncode == 0 and f"scm.schedule.2 = {tm},1.3" in r.stdout, (r.stdout, r.stderr)
    meta = {p.key: p.value for p in onnx.load(str(a)).metadata_props}
    assert meta["scm.schedule.2"] == tm + ",1.3" and meta["scm.schedule.4"].startswith(tm + ",")
    r = scm("scm-export", a, b, "--store-schedule", tm + ",1.2,0.9,0.5", "--store-schedule", tm + ",1.25")
    assert r.returncode == 0, r.stderr
    meta = {p.key: p.value for p in onnx.load(str(b)).metadata_props}
    assert (meta["scm.schedule.2"], meta["scm.schedule.4"]) == (tm + ",1.25", tm + ",1.2,0.9,0.5")
    assert sum(p.key == "scm.schedule.2" for p in onnx.load(str(b)).metadata_props) == 1
    # scm-run samples with the stored times: the same samples as the times given explicitly.
    for model, times in ((a, tm + ",1.3"), (b, tm + ",1.25")):
        r1 = scm("scm-run", model, "--steps", 2, "--count", 32, "--npy", tmp_path / "s1.npy")
        r2 = scm("scm-run", model, "--schedule", times, "--count", 32, "--npy", tmp_path / "s2.npy")
        assert r1.returncode == 0 and r2.returncode == 0, (r1.stderr, r2.stderr)
        assert np.array_equal(np.load(tmp_path / "s1.npy"), np.load(tmp_path / "s2.npy"))
    bad = tmp_path / "bad.onnx"
    for args, expect in ((["--store-schedule", "1.5,1.2"], "must start at t_max"),
                         (["--store-schedule", tm + ",1.2", "--store-schedule", tm + ",1.3"], "two schedules of 2 steps"),
                         (["--store-schedule", tm + ",1.6"], "must decrease"),
                         (["--store-schedule", tm + ",x"], "not a comma-separated list"),
                         (["--store-schedule", tm + ",1.2", "--optimize"], "not with --optimize")):
        r = scm("scm-export", ck, bad, *args)
        assert r.returncode != 0 and expect in r.stderr, (args, r.stderr)
        assert not bad.exists()


def test_multistep_model_exports_and_samples_deterministically(tmp_path):
    """--segments B: the exported consistency function maps x_t to the ODE's point at the segment
    start s(t) (u = t - s(t) in place of t, the same network F), the file stores scm.segments
    and its schedule, and scm-run samples it in exactly one step per segment without fresh noise:
    f(f(sigma_d z_0, t_max), B). Other step counts and schedules are refused."""
    import onnxruntime as ort
    r = train("--data", "checkerboard", "--objective", "flow", "--out", tmp_path / "flow", "--steps", 20, "--batch", 32, "--json")
    tck = json.loads(r.stdout)["checkpoint"]
    r = train("--data", "checkerboard", "--objective", "scd", "--teacher", tck, "--segments", "0.9", "--out", tmp_path / "ms",
              "--steps", 5, "--batch", 32, "--json")
    ck = json.loads(r.stdout)["checkpoint"]
    model = tmp_path / "ms.onnx"
    r = scm("scm-export", ck, model)
    assert r.returncode == 0, r.stderr
    meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    tm, sd = meta["scm.t_max"], float(meta["scm.sigma_data"])
    assert meta["scm.segments"] == "0.9000000" and meta["scm.schedule.2"] == tm + ",0.9000000", meta
    assert "scm.schedule.1" not in meta and "scm.schedule.4" not in meta
    # The same weights as a one-segment model: F = (cos t x - f_plain) / (sigma_d sin t).
    tensors = onnx.load(str(ck))
    for p in tensors.metadata_props:
        if p.key == "scm.train.config":
            c = json.loads(p.value)
            assert c["segments"] == [0.9]
            del c["segments"]
            p.value = json.dumps(c)
    onnx.save(tensors, str(tmp_path / "plain.ckpt"))
    assert scm("scm-export", tmp_path / "plain.ckpt", tmp_path / "plain.onnx").returncode == 0
    ms = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    plain = ort.InferenceSession(str(tmp_path / "plain.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2)).astype(np.float32)
    t = np.array([1.5, 1.2, 0.9000001, 0.9, 0.5, 0.1], np.float32)
    f_ms = ms.run(None, {"x": x, "t": t})[0]
    f_plain = plain.run(None, {"x": x, "t": t})[0].astype(np.float64)
    t64 = t.astype(np.float64)
    F = (np.cos(t64)[:, None] * x - f_plain) / (sd * np.sin(t64)[:, None])
    u = np.where(t > np.float32(0.9), t64 - np.float64(np.float32(0.9)), t64)[:, None]
    np.testing.assert_allclose(f_ms, np.cos(u) * x - np.sin(u) * sd * F, rtol=1e-4, atol=1e-5)
    # scm-run: two deterministic steps, the second noise ignored.
    noise = rng.normal(size=(2, 16, 2)).astype(np.float32)
    np.save(tmp_path / "z.npy", noise)
    noise[1] = rng.normal(size=(16, 2))
    np.save(tmp_path / "z2.npy", noise)
    for name in ("z", "z2"):
        r = scm("scm-run", model, "--steps", 2, "--noise", tmp_path / f"{name}.npy", "--npy", tmp_path / f"{name}-out.npy")
        assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "z-out.npy")
    assert np.array_equal(got, np.load(tmp_path / "z2-out.npy"))
    tmax = np.float32(float(tm))
    x1 = ms.run(None, {"x": sd * noise[0], "t": np.full(16, tmax, np.float32)})[0]
    x0 = ms.run(None, {"x": x1, "t": np.full(16, 0.9, np.float32)})[0]
    np.testing.assert_allclose(got, x0, rtol=1e-4, atol=1e-4)
    for args, expect in ((["--steps", 1], "exactly 2 steps, not 1"), (["--steps", 4], "exactly 2 steps, not 4"),
                         (["--schedule", tm + ",1.0"], "segment boundaries")):
        r = scm("scm-run", model, *args, "--count", 4, "--npy", tmp_path / "bad.npy")
        assert r.returncode != 0 and expect in r.stderr, (args, r.stderr)
        r = scm("scm-inspect", model, *args)  # the per-step specialization reads the segments too
        assert r.returncode != 0 and expect in r.stderr, (args, r.stderr)
    assert scm("scm-inspect", model, "--steps", 2).returncode == 0
    r = train("--data", "checkerboard", "--objective", "flow", "--segments", "0.9", "--out", tmp_path / "bad", "--steps", 1, check=False)
    assert r.returncode != 0 and "--segments applies to" in r.stderr, r.stderr
    for bad in ("0.9,0.9", "1.6", "x"):
        r = train("--data", "checkerboard", "--objective", "sct", "--segments", bad, "--out", tmp_path / "bad", "--steps", 1, check=False)
        assert r.returncode != 0 and "--segments" in r.stderr, (bad, r.stderr)


def test_scd_distills_a_flow_teacher(tmp_path):
    """sCD: a flow teacher (6000 steps), then a student whose dx_t/dt is the teacher's velocity,
    compiled into the same step: its 2-step samples reach the teacher's level (~80% in the cells
    at this length). A teacher that is not a flow checkpoint is refused."""
    teacher = tmp_path / "teacher"
    r = train("--data", "checkerboard", "--objective", "flow", "--out", teacher, "--steps", 6000, "--batch", 256, "--threads", 2,
              "--checkpoint-every", 6000, "--json")
    tck = json.loads(r.stdout)["checkpoint"]
    student = tmp_path / "student"
    r = train("--data", "checkerboard", "--objective", "scd", "--teacher", tck, "--out", student, "--steps", 6000, "--batch", 256,
              "--threads", 2, "--checkpoint-every", 6000, "--json")
    sck = json.loads(r.stdout)["checkpoint"]
    assert scm("scm-export", sck, tmp_path / "s.onnx").returncode == 0
    assert scm("scm-run", tmp_path / "s.onnx", "--steps", 2, "--count", 10000, "--npy", tmp_path / "s.npy").returncode == 0
    inside = float(inside_checkerboard(np.load(tmp_path / "s.npy")).mean())
    print(f"sCD from a 6000-step flow teacher: {inside:.3f} of 2-step samples inside")
    assert inside >= 0.7, inside
    r = train("--data", "checkerboard", "--objective", "scd", "--teacher", sck, "--out", tmp_path / "bad", "--steps", 2, check=False)
    assert r.returncode == 1 and "flow checkpoint" in r.stderr, r.stderr


def test_init_starts_from_a_checkpoint(tmp_path):
    """scd starts from its teacher's EMA weights by default (sCM's recipe), `--init none` from the
    seeded random initialization, `--init CKPT` from any checkpoint of the same network; another
    network is refused. A learning rate of 1e-30 for one step leaves the start visible."""
    r = train("--data", "checkerboard", "--objective", "flow", "--out", tmp_path / "flow", "--steps", 20, "--batch", 32, "--json")
    tck = json.loads(r.stdout)["checkpoint"]
    teacher, _ = ckpt_tensors(tck)
    ema = {k[len("ema/"):]: v for k, v in teacher.items() if k.startswith("ema/")}
    assert ema and any(np.abs(v).sum() > 0 for v in ema.values())

    def one_step(name, *flags):
        r = train("--data", "checkerboard", "--objective", "scd", "--teacher", tck, "--out", tmp_path / name, "--steps", 1,
                  "--batch", 32, "--lr", 1e-30, "--lr-warmup", 0, *flags, "--json")
        return ckpt_tensors(json.loads(r.stdout)["checkpoint"])

    start, meta = one_step("default")
    assert json.loads(meta["scm.train.config"])["initialize"] == str(tck)
    # The exported model names where it started and its teacher: the lineage of a staged run.
    r = scm("scm-export", tmp_path / "default" / "checkpoints" / "step_00000001.ckpt", tmp_path / "default.onnx")
    assert r.returncode == 0, r.stderr
    training = {p.key: p.value for p in onnx.load(str(tmp_path / "default.onnx")).metadata_props}["scm.training"]
    assert training.startswith("scd, 1 steps,") and training.endswith(f", initialized from {tck}, teacher {tck}"), training
    for k, v in ema.items():
        np.testing.assert_allclose(start[k], v, rtol=1e-6, atol=0, err_msg=k)
    scratch, meta = one_step("scratch", "--init", "none")
    assert "initialize" not in json.loads(meta["scm.train.config"])
    assert any(not np.allclose(scratch[k], v) for k, v in ema.items())
    explicit, _ = one_step("explicit", "--init", tck)
    assert all(np.array_equal(explicit[k], start[k]) for k in ema)
    # Resuming with the same (default) flags is the same configuration.
    r = train("--data", "checkerboard", "--objective", "scd", "--teacher", tck, "--out", tmp_path / "default", "--steps", 2,
              "--batch", 32, "--lr", 1e-30, "--lr-warmup", 0, "--resume")
    # A checkpoint of another network.
    r = train("--data", "checkerboard", "--objective", "flow", "--model", "small", "--out", tmp_path / "small", "--steps", 1,
              "--batch", 32, "--json")
    small = json.loads(r.stdout)["checkpoint"]
    r = train("--data", "checkerboard", "--objective", "sct", "--init", small, "--out", tmp_path / "bad", "--steps", 1, check=False)
    assert r.returncode == 1 and "holds another network" in r.stderr and "--init" in r.stderr, r.stderr
    r = train("--data", "checkerboard", "--objective", "sct", "--init", tmp_path / "missing.ckpt", "--out", tmp_path / "bad2",
              "--steps", 1, check=False)
    assert r.returncode == 1 and "missing.ckpt" in r.stderr, r.stderr


def test_no_ema_ramp_holds_the_decay_from_the_first_step(tmp_path):
    """The EMA's ramp min(decay, (1 + step) / (10 + step)) forgets a random start; after --init
    it also caps the decay at 2/11 on step 1 (and 0.991 at step 1000). --no-ema-ramp holds the
    decay from step 1: ema_1 = d * start + (1 - d) * p_1. Recorded in the configuration (so a
    resume with the ramp is refused), in the exported model, and refused with the power EMA."""
    r = train("--data", "checkerboard", "--objective", "flow", "--out", tmp_path / "flow", "--steps", 20, "--batch", 32, "--json")
    tck = json.loads(r.stdout)["checkpoint"]
    teacher, _ = ckpt_tensors(tck)
    start = {k[len("ema/"):]: v for k, v in teacher.items() if k.startswith("ema/")}

    def first_step(name, *flags):
        r = train("--data", "checkerboard", "--objective", "scd", "--teacher", tck, "--out", tmp_path / name, "--steps", 1,
                  "--batch", 32, "--lr", 1e-2, "--lr-warmup", 0, "--ema-decay", 0.9, *flags, "--json")
        return ckpt_tensors(json.loads(r.stdout)["checkpoint"])

    for name, flags, d in [("ramp", [], 2 / 11), ("fixed", ["--no-ema-ramp"], 0.9)]:
        w, meta = first_step(name, *flags)
        moved = 0
        for k, s0 in start.items():
            p1, e1 = w[k], w["ema/" + k]
            moved = max(moved, float(np.abs(p1 - s0).max()))
            np.testing.assert_allclose(e1, d * s0 + (1 - d) * p1, rtol=1e-5, atol=1e-6, err_msg=f"{name}: {k}")
        assert moved > 1e-3, moved  # the step moved the weights, so the two decays are told apart
        assert json.loads(meta["scm.train.config"]).get("emaRamp") == (False if flags else None)
    r = scm("scm-export", tmp_path / "fixed" / "checkpoints" / "step_00000001.ckpt", tmp_path / "fixed.onnx")
    assert r.returncode == 0, r.stderr
    training = {p.key: p.value for p in onnx.load(str(tmp_path / "fixed.onnx")).metadata_props}["scm.training"]
    assert "EMA 0.9 (no ramp)" in training, training
    r = train("--data", "checkerboard", "--objective", "scd", "--teacher", tck, "--out", tmp_path / "fixed", "--steps", 2,
              "--batch", 32, "--lr", 1e-2, "--lr-warmup", 0, "--ema-decay", 0.9, "--resume", check=False)
    assert r.returncode == 1 and "emaRamp" in r.stderr, r.stderr
    r = train("--data", "checkerboard", "--objective", "scd", "--teacher", tck, "--out", tmp_path / "bad", "--steps", 1,
              "--ema-std", 0.05, "--no-ema-ramp", check=False)
    assert r.returncode != 0 and "--no-ema-ramp" in r.stderr, r.stderr


def test_resume_after_the_teacher_and_init_moved(tmp_path):
    """A resumed run takes its weights from its checkpoint, so --init may name another path (the
    record keeps the original), and it accepts its teacher at a new path when the file's bytes
    are the same (digest recorded in the configuration); the same tensors as a run never stopped.
    Another teacher is refused."""
    tck = json.loads(train("--data", "checkerboard", "--objective", "flow", "--out", tmp_path / "flow", "--steps", 20,
                           "--batch", 32, "--json").stdout)["checkpoint"]
    common = ["--data", "checkerboard", "--objective", "scd", "--batch", 32, "--lr-warmup", 0, "--checkpoint-every", 2,
              "--seed", 5, "--threads", 1]
    straight = json.loads(train(*common, "--teacher", tck, "--out", tmp_path / "straight", "--steps", 6, "--json").stdout)
    train(*common, "--teacher", tck, "--out", tmp_path / "parts", "--steps", 3)
    moved = tmp_path / "moved.ckpt"
    shutil.move(tck, moved)
    parts = json.loads(train(*common, "--teacher", moved, "--out", tmp_path / "parts", "--steps", 6, "--resume", "--json").stdout)
    a, _ = ckpt_tensors(straight["checkpoint"])
    b, meta = ckpt_tensors(parts["checkpoint"])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    config = json.loads(meta["scm.train.config"])
    assert config["teacher"] == str(moved) and config["initialize"] == str(tck) and len(config["teacherDigest"]) == 16
    other = json.loads(train("--data", "checkerboard", "--objective", "flow", "--out", tmp_path / "flow2", "--steps", 20,
                             "--batch", 32, "--seed", 1, "--json").stdout)["checkpoint"]
    r = train(*common, "--teacher", other, "--out", tmp_path / "parts", "--steps", 8, "--resume", check=False)
    assert r.returncode == 1 and "teacher" in r.stderr and "another configuration" in r.stderr, r.stderr


def test_random_kills_resume_to_the_uninterrupted_result(tmp_path):
    """SIGKILL at seeded random moments, half of them while a checkpoint is being written (a
    temporary file in the folder): after every kill the latest checkpoint exports and the run
    resumes from it; the final checkpoint is bitwise the one of a run never interrupted."""
    # The trajectory does not depend on --steps (test_resume_is_bitwise_identical): the killed runs
    # aim far, and both finishes stop 25 steps after the last kill.
    common = ["--data", "checkerboard", "--objective", "sct", "--batch", 32, "--checkpoint-every", 1, "--seed", 11,
              "--threads", 1, "--tangent-warmup", 50]
    out = tmp_path / "killed"
    ckdir = out / "checkpoints"
    rng = random.Random(16)
    kills, during_write, last = 0, 0, 0
    for k in range(8):
        args = [os.path.join(BIN, "scm-train"), *map(str, common), "--steps", "1000000", "--out", str(out)] + (["--resume"] if k else [])
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if k % 2:  # wait for a checkpoint write in flight (its temporary file), then kill at once
            deadline = time.monotonic() + 0.3 + rng.random()
            while time.monotonic() < deadline or not (ckdir.exists() and any(f.startswith(".") for f in os.listdir(ckdir))):
                if p.poll() is not None or time.monotonic() > deadline + 10:
                    break
            writing = ckdir.exists() and any(f.startswith(".") for f in os.listdir(ckdir))
        else:
            time.sleep(0.3 + rng.random())
            writing = False
        if p.poll() is not None:
            assert False, f"scm-train ended before kill {k} (exit {p.returncode}): {p.stderr.read()[-500:]}"
        p.kill()
        p.wait()
        p.stderr.close()
        kills += 1
        during_write += writing
        ckpts = sorted(ckdir.glob("step_*.ckpt"))
        assert ckpts, "no checkpoint after a kill"
        step = int(ckpts[-1].stem[5:])
        assert step >= last, (step, last)  # never lost progress
        last = step
        r = scm("scm-export", ckpts[-1], tmp_path / f"m{k}.onnx")
        assert r.returncode == 0, (ckpts[-1], r.stderr)
        assert all(f.startswith("step_") and f.endswith(".ckpt") or f.startswith(".step_") for f in os.listdir(ckdir))
    assert during_write >= 2, f"only {during_write} of {kills} kills hit a checkpoint write"
    target = last + 25
    common += ["--steps", target]
    r = train(*common, "--out", out, "--resume", "--json")
    assert json.loads(r.stdout)["start_step"] == last
    straight = tmp_path / "straight"
    train(*common, "--out", straight)
    a, ma = ckpt_tensors(out / "checkpoints" / f"step_{target:08d}.ckpt")
    b, mb = ckpt_tensors(straight / "checkpoints" / f"step_{target:08d}.ckpt")
    assert ma == mb and a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    la = [l.split(",")[:3] for l in (straight / "loss.csv").read_text().splitlines()]
    lb = [l.split(",")[:3] for l in (out / "loss.csv").read_text().splitlines()]
    assert la == lb and len(la) == target + 1
    print(f"{kills} kills ({during_write} during a checkpoint write), last at step {last} of {target}")


def test_cmt_maps_trajectory_points_to_their_ends(tmp_path):
    """Consistency mid-training: a flow teacher exported to ONNX, CMT from it (its trajectories
    integrated once and cached), exported. From the same noise (scm-run keys the start by seed and
    index in both samplers), the CMT model's one step lands near the end of the teacher's Heun 16
    trajectory, far nearer than the teacher's own one-step jump that CMT starts from, on noise it
    never trained on; its 2-step samples land in the cells. A second run with the same teacher and
    trajectory settings reads the cache; an sCD stage starts from the CMT model file
    (--init MODEL.onnx) with the flow model file as teacher."""
    r = train("--data", "checkerboard", "--objective", "flow", "--out", tmp_path / "flow", "--steps", 4000, "--batch", 256,
              "--threads", 2, "--checkpoint-every", 4000, "--json")
    flow = tmp_path / "flow.onnx"
    assert scm("scm-export", json.loads(r.stdout)["checkpoint"], flow).returncode == 0

    def samples(model, *flags):
        npy = tmp_path / "s.npy"
        r = scm("scm-run", model, *flags, "--count", 10000, "--seed", 1, "--npy", npy)
        assert r.returncode == 0, r.stderr
        return np.load(npy)

    cache = tmp_path / "cache"
    common = ["--data", "checkerboard", "--objective", "cmt", "--teacher", flow, "--trajectories", 4096,
              "--trajectory-cache", cache, "--batch", 256, "--threads", 2, "--lr", 3e-4, "--checkpoint-every", 3000, "--json"]
    r = train(*common, "--out", tmp_path / "cmt", "--steps", 3000)
    assert "trajectories: integrating 4096 (heun, 16 steps" in r.stderr, r.stderr
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].endswith("-heun16-n4096-s1000.npy"), files
    cmt = tmp_path / "cmt.onnx"
    assert scm("scm-export", json.loads(r.stdout)["checkpoint"], cmt).returncode == 0
    config = json.loads(ckpt_tensors(json.loads(r.stdout)["checkpoint"])[1]["scm.train.config"])
    assert config["initialize"] == str(flow) and config["trajectories"]["steps"] == 16 and config["distance"] == "l2"
    ends = samples(flow, "--ode-steps", 16)
    jump = float(np.mean(np.sum((samples(flow, "--steps", 1) - ends) ** 2, axis=1)))
    one = float(np.mean(np.sum((samples(cmt, "--steps", 1) - ends) ** 2, axis=1)))
    two = float(inside_checkerboard(samples(cmt, "--steps", 2)).mean())
    print(f"CMT on the checkerboard: mean squared distance to the Heun 16 end {one:.3f} (the teacher's jump: {jump:.3f}); "
          f"2-step samples inside: {two:.3f}")
    assert one <= 0.25 * jump and two >= 0.7, (one, jump, two)
    # Same teacher and trajectory settings: the cache is read, not integrated again.
    r = train(*common, "--out", tmp_path / "cmt2", "--steps", 1, "--distance", "pseudo-huber")
    assert "trajectories: read 4096" in r.stderr and "integrating" not in r.stderr, r.stderr
    # sCD continues from the CMT model file with the flow model file as its teacher.
    r = train("--data", "checkerboard", "--objective", "scd", "--teacher", flow, "--init", cmt, "--out", tmp_path / "scd",
              "--steps", 1, "--batch", 32, "--lr", 1e-30, "--lr-warmup", 0, "--json")
    start, meta = ckpt_tensors(json.loads(r.stdout)["checkpoint"])
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(cmt)).graph.initializer}
    shared = [k for k in start if k in stored and not k.startswith(("adam_", "ema/"))]
    assert len(shared) > 4 and all(np.allclose(start[k], stored[k], rtol=1e-6, atol=0) for k in shared)
    # CMT's flags belong to CMT; a consistency model is no teacher.
    r = train("--data", "checkerboard", "--objective", "sct", "--trajectories", 10, "--out", tmp_path / "bad", "--steps", 1, check=False)
    assert r.returncode != 0 and "--trajectories applies to --objective cmt" in r.stderr, r.stderr
    r = train("--data", "checkerboard", "--objective", "cmt", "--teacher", cmt, "--out", tmp_path / "bad2", "--steps", 1, check=False)
    assert r.returncode == 1 and "is a consistency model" in r.stderr, r.stderr
