#!/usr/bin/env python3
"""`make bench`: whole consistency sampling with scm-run against the same rule on onnxruntime, on
the same model files, same threads, same run; then one sCT training step.

    tools/bench.py [--bin .build/release] [--threads 2] [--steps 1,2,4] [--batches 1,64] [--rounds 3]
                   [--models unet,trainer] [--precisions fp32,bf16] [--no-train]

Models: `unet` is tools/make_tiny_model.py's TrigFlow UNet with widths 32/64/64 at 28x28 (random
weights); `trainer` is scm-train's default Fashion-MNIST UNet (one training step, then
scm-export). For every (model, steps, batch) each round runs `scm-run --json` (images/s over
sampling: noise, network evaluations, mixing; plan compilation excluded) and the reference
sampler of Tests/crosscheck/trigflow_ref.py on onnxruntime (ORT_ENABLE_ALL, same threads), and
the FMA-loop peak of tools/fma_peak.c (built with cc -O3) on the same threads; with several
--precisions, scm-run runs once per precision in each round (`--precision bf16`: bf16
convolutions, against the same float32 onnxruntime figure; a CPU without AVX512-BF16 runs
float32 and the row says so); medians over the
interleaved rounds, and scm/ort as the median and range of each round's own ratio (both sides
ran back to back, so a machine that slows down for a while moves both). Our GFLOP/s counts 2 x
multiply-adds of Conv, Gemm and MatMul of the optimized network per image times evaluations per image times images/s; "peak" is its share of
the FMA loop. The machine is shared: read the ratios, not the absolute numbers.
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

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "Tests", "crosscheck"))
import make_tiny_model  # noqa: E402
import trigflow_ref  # noqa: E402


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)}: {r.stderr}")
    return r.stdout


def fma_peak_binary(build_dir):
    out = os.path.join(build_dir, "fma_peak")
    src = os.path.join(ROOT, "tools", "fma_peak.c")
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


def scm_images_per_second(bin_dir, model, steps, count, batch, threads, precision):
    d = json.loads(run([os.path.join(bin_dir, "scm-run"), model, "--steps", str(steps), "--count", str(count), "--batch",
                        str(batch), "--threads", str(threads), "--precision", precision, "--json"]))
    return d["images_per_second"], d["precision"]


def ort_images_per_second(net, steps, count, batch, shape, rng):
    times = net.schedule(steps)
    noise = rng.standard_normal((steps, count, *shape)).astype(np.float32)
    trigflow_ref.consistency_sample(net, times, noise[:, :batch])  # warm-up
    t0 = time.perf_counter()
    for b0 in range(0, count, batch):
        trigflow_ref.consistency_sample(net, times, noise[:, b0:b0 + batch])
    return count / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build", "release"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", default="1,2,4")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="unet,trainer")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--no-train", action="store_true")
    a = ap.parse_args()
    peak_bin = fma_peak_binary(os.path.join(ROOT, ".build"))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        models = []
        for name in a.models.split(","):
            if name == "unet":
                path = os.path.join(tmp, "unet.onnx")
                onnx.save(make_tiny_model.build("onnx", size=28, widths=(32, 64, 64), seed=0), path)
                models.append(("unet 32/64/64", path))
            elif name == "trainer":
                models.append(("trainer default", trainer_model(a.bin, tmp, a.threads)))
            else:
                sys.exit(f"unknown model {name}")
        print(f"threads {a.threads}; medians of {a.rounds} interleaved rounds; peak = FMA loop (tools/fma_peak.c) in the same rounds")
        precisions = a.precisions.split(",")
        print(f"{'model':<16} {'steps':>5} {'batch':>5} {'prec':>4} | {'scm img/s':>9} {'ort img/s':>9} {'scm/ort':>7} {'range':<11}| "
              f"{'GFLOP/s':>7} {'peak':>7} {'share':>6}")
        for label, path in models:
            fpi = flops_per_image(a.bin, path)
            net = trigflow_ref.Network(path, a.threads)
            shape = [int(v) for v in net.meta["scm.sample_shape"].split(",")]
            for batch in map(int, a.batches.split(",")):
                for steps in map(int, a.steps.split(",")):
                    # About 200 GFLOP of network per row and side (a second or so), at least 8
                    # batches: a process's first tens of milliseconds ran slow (OpenBLAS's own
                    # threads spun for about 0.1 s after load; now stopped at the first compile),
                    # which a row of 256 small images did not amortize.
                    count = max(8 * batch, -(-int(2e11 / (fpi * steps)) // batch) * batch)
                    rounds = []  # per round: ({precision: (images/s, precision run)}, ort images/s, peak)
                    for _ in range(a.rounds):
                        ours = {p: scm_images_per_second(a.bin, path, steps, count, batch, a.threads, p) for p in precisions}
                        theirs = ort_images_per_second(net, steps, count, batch, shape, rng)
                        peak = float(run([peak_bin, str(a.threads)]))
                        rounds.append((ours, theirs, peak))
                    theirs = float(np.median([r[1] for r in rounds]))
                    peak = float(np.median([r[2] for r in rounds]))
                    for p in precisions:
                        ours = float(np.median([r[0][p][0] for r in rounds]))
                        ran = rounds[0][0][p][1]
                        # the ratio of each round (both sides ran back to back), then their median and range
                        ratios = [r[0][p][0] / r[1] for r in rounds]
                        gflops = fpi * steps * ours / 1e9
                        note = "" if ran == p else f"  ({p} not supported here: ran {ran})"
                        print(f"{label:<16} {steps:>5} {batch:>5} {p:>4} | {ours:>9.1f} {theirs:>9.1f} {float(np.median(ratios)):>7.2f} "
                              f"{min(ratios):>5.2f}-{max(ratios):<5.2f}| {gflops:>7.1f} {peak:>7.1f} {100 * gflops / peak:>5.1f}%{note}",
                              flush=True)
        print(f"(GFLOP per image per evaluation: "
              + ", ".join(f"{label} {flops_per_image(a.bin, path) / 1e9:.3f}" for label, path in models) + ")")
    if not a.no_train:
        print()
        sys.stdout.flush()
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_train.py"), "--bin", a.bin, "--threads", str(a.threads),
                        "--repeat", "3"], check=True)


if __name__ == "__main__":
    main()
