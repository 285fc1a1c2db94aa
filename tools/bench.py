#!/usr/bin/env python3
"""`make bench`: whole consistency sampling with scm-run against the same rule on onnxruntime and on
OpenVINO (float32 and bf16), on the same model files, same threads, same run; then the bf16
accuracy of both; then one sCT training step.

    tools/bench.py [--bin .build/release] [--threads 2] [--steps 1,2,4] [--batches 1,64] [--rounds 3]
                   [--models unet,resunet,trainer[,fashion]] [--precisions fp32,bf16] [--peers ort,openvino]
                   [--accuracy-count 64] [--accuracy-steps 2] [--no-accuracy] [--no-train] [--isa avx2]

`make bench` runs it in .venv-bench (tools/setup_bench.sh: numpy, onnx and onnxruntime at
tools/setup_python.sh's pins, plus a pinned openvino), a venv of its own so that `make test`'s .venv
never gets OpenVINO; with `--peers ort` it also runs in .venv.

Models: `unet` is tools/make_tiny_model.py's TrigFlow UNet with widths 32/64/64 at 28x28 (random
weights, a conv and an ADN block per level); `resunet` the same widths with one residual block per
level as sCM's and EDM's UNets have (two convs with ADN, GroupNorm written as InstanceNormalization +
Reshape as PyTorch's TorchScript exporter writes it, 8 groups, a 128-wide time embedding: 0.54 M
parameters, 178 MFLOP per evaluation); `trainer` is scm-train's default Fashion-MNIST UNet (one training step, then scm-export;
after one step its network's own term is still near zero, so its samples are nearly the skip path
cos(t) x alone and its accuracy rows say little); `fashion` (not in the default) is the shipped
trained Fashion-MNIST model, models/fashion-sct.onnx. For every (model, steps, batch) each round
runs `scm-run --json` (images/s over sampling: noise, network evaluations, mixing; plan compilation
excluded), the reference sampler of tools/scmtools/trigflow_ref.py on onnxruntime (ORT_ENABLE_ALL,
same threads; column `ort`), the same sampler (trigflow_ref.consistency_sample, with the network
evaluated by OpenVINO instead: OpenVINONetwork) on OpenVINO's CPU plugin, and the FMA-loop peak of
tools/fma_peak.c (built with cc -O3) on the same threads. OpenVINO reads the same file, reshaped to
the row's static batch, compiled once per batch (outside the timing) with INFERENCE_NUM_THREADS =
--threads, NUM_STREAMS 1, PERFORMANCE_HINT LATENCY and INFERENCE_PRECISION_HINT f32 (`ov-f32`) or
bf16 (`ov-bf16`: OpenVINO then keeps activations in bf16 too, not only the convolutions' operands; a
note after the table counts its Convolution/FullyConnected/MatMul layers that run in bf16). With
several --precisions, scm-run runs once per precision in each round (`--precision bf16`: bf16
convolutions; a CPU without AVX512-BF16 runs float32 and the row says so), and so does OpenVINO: a
fp32 row's `ov` columns are ov-f32, a bf16 row's are ov-bf16, while `ort` is the same float32
onnxruntime figure on both. Medians over the interleaved rounds, and scm/ort and scm/ov as the
median and range of each round's own ratio (the sides ran back to back, so a machine that slows down
for a while moves all of them). `--peers` picks the peers (default both). Our GFLOP/s counts 2 x
multiply-adds of Conv, Gemm and MatMul of the optimized network per image times evaluations per
image times images/s; "peak" is its share of the FMA loop. The machine is shared: read the ratios,
not the absolute numbers. `--isa F` runs scm-run with SCM_KERNELS_ISA=F (a kernel family forced: avx2,
avx512, portable), and for avx2/avx512 measures the FMA-loop peak at that width (`fma_peak T avx2`).

The accuracy table: per model, one batch of --accuracy-count samples in --accuracy-steps steps on
the same noise (seed 0: scm-run --seed's Philox4x32-10 noise, which trigflow_ref.seeded_noise
draws too, so the comparison is sample for sample): the mean and max absolute difference of
scm-run fp32 and ov-f32 against the reference (trigflow_ref on onnxruntime, float32), of scm-run
bf16 and ov-bf16 against the reference, and of each bf16 against its own float32.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

import make_tiny_model
from scmtools import trigflow_ref
from scmtools.paths import BUILD, MODELS, RELEASE, TOOLS


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)}: {r.stderr}")
    return r.stdout


def fma_peak_binary(build_dir):
    out = os.path.join(build_dir, "fma_peak")
    src = os.path.join(TOOLS, "fma_peak.c")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        run([os.environ.get("CC", "cc"), "-O3", "-pthread", src, "-o", out])
    return out


def trainer_model(bin_dir, tmp, threads):
    run_dir = os.path.join(tmp, "fm-run")
    run([os.path.join(bin_dir, "scm-train"), "--data", "fashion-mnist", "--objective", "sct", "--out", run_dir, "--steps", "1",
         "--threads", str(threads)])
    ckpts = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
    path = os.path.join(tmp, "trainer-default.onnx")
    run([os.path.join(bin_dir, "scm-export"), os.path.join(run_dir, "checkpoints", ckpts[-1]), path])
    return path


def flops_per_image(bin_dir, model):
    d = json.loads(run([os.path.join(bin_dir, "scm-inspect"), model, "--steps", "1", "--batch", "1", "--json"]))
    return d["steps"][0]["after"]["flops"]


def scm_images_per_second(bin_dir, model, steps, count, batch, threads, precision, isa=""):
    env = dict(os.environ, SCM_KERNELS_ISA=isa) if isa else None
    d = json.loads(run([os.path.join(bin_dir, "scm-run"), model, "--steps", str(steps), "--count", str(count), "--batch",
                        str(batch), "--threads", str(threads), "--precision", precision, "--json"], env=env))
    return d["images_per_second"], d["precision"]


def ort_images_per_second(net, steps, count, batch, shape, rng):
    """Images/s of trigflow_ref's consistency sampling on `net`: onnxruntime's trigflow_ref.Network,
    or any network with its interface (OpenVINONetwork below). Noise drawn beforehand, mixing timed."""
    times = net.schedule(steps)
    noise = rng.standard_normal((steps, count, *shape)).astype(np.float32)
    trigflow_ref.consistency_sample(net, times, noise[:, :batch])  # warm-up
    t0 = time.perf_counter()
    for b0 in range(0, count, batch):
        trigflow_ref.consistency_sample(net, times, noise[:, b0:b0 + batch])
    return count / (time.perf_counter() - t0)


# --precisions name -> OpenVINO's INFERENCE_PRECISION_HINT of the peer that row is compared against
OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}
OV_HEAVY = ("Convolution", "Deconvolution", "FullyConnected", "MatMul")


class OpenVINONetwork(trigflow_ref.Network):
    """trigflow_ref.Network with its raw(x, t) on an OpenVINO compiled model (static batch): f, the
    schedule and trigflow_ref.consistency_sample are the onnxruntime reference's own."""

    def __init__(self, like, compiled):
        # Every contract field the reference read (sigma, t_max, the parameterization, segments, ...);
        # only raw() differs.
        vars(self).update(vars(like))
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def raw(self, x, t):
        return self.request.infer({0: x, 1: np.full(x.shape[0], t, np.float32)}, share_inputs=True)[0]


def openvino_compile(core, path, batch, threads, precision):
    """The model file reshaped to batch `batch` (every input's first dimension), compiled for the CPU."""
    model = core.read_model(path)
    model.reshape({i: [batch, *[d.get_length() for d in inp.get_partial_shape()[1:]]] for i, inp in enumerate(model.inputs)})
    return core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                                             "INFERENCE_PRECISION_HINT": precision})


def openvino_heavy_layers(compiled):
    """(layers of OV_HEAVY types in the compiled model, how many of them run in bf16)."""
    total = bf16 = 0
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if str(info["layerType"].astype(str)) in OV_HEAVY:
            total += 1
            bf16 += str(info["runtimePrecision"].astype(str)) == "bf16"
    return total, bf16


def scm_samples(bin_dir, model, steps, count, threads, precision, seed, tmp):
    out = os.path.join(tmp, f"samples-{precision}.npy")
    run([os.path.join(bin_dir, "scm-run"), model, "--steps", str(steps), "--count", str(count), "--batch", str(count),
         "--threads", str(threads), "--precision", precision, "--seed", str(seed), "--npy", out, "--json"])
    return np.load(out)


def accuracy_rows(a, path, net, shape, ov_net, tmp):
    """[(samples, against, mean |d|, max |d|)] on the same seeded noise: trigflow_ref on onnxruntime (float32,
    the reference), scm-run fp32 and bf16, OpenVINO f32 and bf16 (ov_net(precision) -> its network)."""
    steps, count, seed = a.accuracy_steps, a.accuracy_count, 0
    times = net.schedule(steps)
    noise = trigflow_ref.seeded_noise(seed, steps, count, shape)  # the Philox noise of scm-run --seed
    got = {"ort fp32 (ref)": trigflow_ref.consistency_sample(net, times, noise)}
    for p in ("fp32", "bf16"):
        got[f"scm {p}"] = scm_samples(a.bin, path, steps, count, a.threads, p, seed, tmp)
    if ov_net is not None:
        for p in ("fp32", "bf16"):
            got[f"ov {OV_PRECISION[p]}"] = trigflow_ref.consistency_sample(ov_net(p), times, noise)
    # float32 against the reference, then bf16 against the reference, then bf16 against its own float32
    pairs = [("scm fp32", "ort fp32 (ref)"), ("ov f32", "ort fp32 (ref)"), ("scm bf16", "ort fp32 (ref)"),
             ("ov bf16", "ort fp32 (ref)"), ("scm bf16", "scm fp32"), ("ov bf16", "ov f32")]
    rows = []
    for x, y in pairs:
        if x not in got:
            continue
        d = np.abs(got[x].astype(np.float64) - got[y].astype(np.float64))
        rows.append((x, y, float(d.mean()), float(d.max())))
    ref = np.abs(got["ort fp32 (ref)"].astype(np.float64))
    return rows, float(ref.mean()), float(ref.max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=RELEASE)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", default="1,2,4")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="unet,resunet,trainer")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--peers", default="ort,openvino", help="comma-separated: ort (onnxruntime), openvino")
    ap.add_argument("--accuracy-count", type=int, default=64, help="samples of the accuracy table (one batch)")
    ap.add_argument("--accuracy-steps", type=int, default=2)
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--isa", default="", help="SCM_KERNELS_ISA for scm-run (avx2, avx512, portable); the peak at that width")
    a = ap.parse_args()
    if a.isa not in ("", "avx2", "avx512", "portable"):
        sys.exit(f"unknown --isa {a.isa} (avx2, avx512, portable)")
    peak_args = [a.isa] if a.isa in ("avx2", "avx512") else []
    peers = a.peers.split(",")
    for p in peers:
        if p not in ("ort", "openvino"):
            sys.exit(f"unknown peer {p} (ort, openvino)")
    precisions = a.precisions.split(",")
    for p in precisions:
        if p not in OV_PRECISION:
            sys.exit(f"unknown precision {p} (fp32, bf16)")
    use_ort, use_ov = "ort" in peers, "openvino" in peers
    core = None
    if use_ov:
        try:
            import openvino
        except ImportError:
            sys.exit("openvino is not installed in this Python: run `make bench` (tools/setup_bench.sh builds .venv-bench), "
                     "or pass --peers ort")
        core = openvino.Core()
        import onnxruntime
        print(f"onnxruntime {onnxruntime.__version__}, openvino {openvino.get_version()}")
    peak_bin = fma_peak_binary(BUILD)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        models = []
        for name in a.models.split(","):
            if name == "unet":
                path = os.path.join(tmp, "unet.onnx")
                onnx.save(make_tiny_model.build("onnx", size=28, widths=(32, 64, 64), seed=0), path)
                models.append(("unet 32/64/64", path))
            elif name == "resunet":
                path = os.path.join(tmp, "resunet.onnx")
                onnx.save(make_tiny_model.build("instance", size=28, widths=(32, 64, 64), seed=0, resblocks=True, groups=8, emb=128),
                          path)
                models.append(("resunet 32/64/64", path))
            elif name == "trainer":
                models.append(("trainer default", trainer_model(a.bin, tmp, a.threads)))
            elif name == "fashion":
                models.append(("fashion-sct", os.path.join(MODELS, "fashion-sct.onnx")))
            else:
                sys.exit(f"unknown model {name}")
        print(f"threads {a.threads}; medians of {a.rounds} interleaved rounds; peak = FMA loop (tools/fma_peak.c) in the same rounds"
              + (f"; SCM_KERNELS_ISA={a.isa}" if a.isa else ""))
        head = f"{'model':<16} {'steps':>5} {'batch':>5} {'prec':>4} | {'scm img/s':>9} "
        if use_ort:
            head += f"| {'ort img/s':>9} {'scm/ort':>7} {'range':<11}"
        if use_ov:
            head += f"| {'ov img/s':>9} {'scm/ov':>7} {'range':<11}"
        print(head + f"| {'GFLOP/s':>7} {'peak':>7} {'share':>6}")
        if use_ov:
            print("(ov = OpenVINO at the row's precision: f32 for fp32 rows, bf16 for bf16 rows; ort is float32 on every row)")
        ov_notes = {}  # label -> note on the bf16 compiled model's layers
        for label, path in models:
            fpi = flops_per_image(a.bin, path)
            net = trigflow_ref.Network(path, a.threads)
            shape = [int(v) for v in net.meta["scm.sample_shape"].split(",")]
            for batch in map(int, a.batches.split(",")):
                ov_nets = {}
                if use_ov:
                    for p in precisions:
                        compiled = openvino_compile(core, path, batch, a.threads, OV_PRECISION[p])
                        ov_nets[p] = OpenVINONetwork(net, compiled)
                        if p == "bf16" and label not in ov_notes:
                            total, bf16 = openvino_heavy_layers(compiled)
                            ov_notes[label] = f"{label}: OpenVINO bf16 runs {bf16} of its {total} {'/'.join(OV_HEAVY)} layers in bf16"
                for steps in map(int, a.steps.split(",")):
                    # About 200 GFLOP of network per row and side (a second or so), at least 8
                    # batches: a process's first tens of milliseconds ran slow (OpenBLAS's own
                    # threads spun for about 0.1 s after load; now stopped at the first compile),
                    # which a row of 256 small images did not amortize.
                    count = max(8 * batch, -(-int(2e11 / (fpi * steps)) // batch) * batch)
                    # per round: ({precision: (images/s, precision run)}, {peer: images/s}, peak); peers
                    # "ort" and ("ov", precision), each run back to back with scm-run in the same round
                    rounds = []
                    for _ in range(a.rounds):
                        ours = {p: scm_images_per_second(a.bin, path, steps, count, batch, a.threads, p, a.isa) for p in precisions}
                        theirs = {}
                        if use_ort:
                            theirs["ort"] = ort_images_per_second(net, steps, count, batch, shape, rng)
                        for p, ov_net in ov_nets.items():
                            theirs[("ov", p)] = ort_images_per_second(ov_net, steps, count, batch, shape, rng)
                        peak = float(run([peak_bin, str(a.threads)] + peak_args))
                        rounds.append((ours, theirs, peak))
                    peak = float(np.median([r[2] for r in rounds]))
                    for p in precisions:
                        ours = float(np.median([r[0][p][0] for r in rounds]))
                        ran = rounds[0][0][p][1]
                        line = f"{label:<16} {steps:>5} {batch:>5} {p:>4} | {ours:>9.1f} "
                        for peer in (["ort"] if use_ort else []) + ([("ov", p)] if use_ov else []):
                            theirs = float(np.median([r[1][peer] for r in rounds]))
                            # the ratio of each round (both sides ran back to back), then their median and range
                            ratios = [r[0][p][0] / r[1][peer] for r in rounds]
                            line += (f"| {theirs:>9.1f} {float(np.median(ratios)):>7.2f} "
                                     f"{min(ratios):>5.2f}-{max(ratios):<5.2f}")
                        gflops = fpi * steps * ours / 1e9
                        note = "" if ran == p else f"  ({p} not supported here: ran {ran})"
                        print(line + f"| {gflops:>7.1f} {peak:>7.1f} {100 * gflops / peak:>5.1f}%{note}", flush=True)
        print(f"(GFLOP per image per evaluation: "
              + ", ".join(f"{label} {flops_per_image(a.bin, path) / 1e9:.3f}" for label, path in models) + ")")
        for note in ov_notes.values():
            print(f"({note})")
        if not a.no_accuracy:
            print()
            print(f"accuracy: {a.accuracy_count} samples in {a.accuracy_steps} steps, seed 0 (scm-run's Philox noise, the same "
                  f"for every side), one batch; |a - b| over every sample value; ref = trigflow_ref on onnxruntime, float32")
            print(f"{'model':<16} | {'samples':<9} {'against':<15} | {'mean |d|':>9} {'max |d|':>9}")
            for label, path in models:
                net = trigflow_ref.Network(path, a.threads)
                shape = [int(v) for v in net.meta["scm.sample_shape"].split(",")]
                ov_net = None
                if use_ov:
                    def ov_net(p, path=path, net=net):
                        return OpenVINONetwork(net, openvino_compile(core, path, a.accuracy_count, a.threads, OV_PRECISION[p]))
                rows, ref_mean, ref_max = accuracy_rows(a, path, net, shape, ov_net, tmp)
                for x, y, mean, mx in rows:
                    print(f"{label:<16} | {x:<9} {y:<15} | {mean:>9.2e} {mx:>9.2e}")
                print(f"{label:<16} | (ref itself: mean |x| {ref_mean:.3f}, max |x| {ref_max:.3f})", flush=True)
    if not a.no_train:
        print()
        sys.stdout.flush()
        subprocess.run([sys.executable, os.path.join(TOOLS, "bench_train.py"), "--bin", a.bin, "--threads", str(a.threads),
                        "--repeat", "3"], check=True)

if __name__ == "__main__":
    main()
