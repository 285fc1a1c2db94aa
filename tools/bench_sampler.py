#!/usr/bin/env python3
"""Benchmark: whole consistency sampling with scm-run (optimized per step, and the stored model
with t as an input) against the same sampling rule in NumPy + onnxruntime, in one run.

    tools/bench_sampler.py [--bin .build/release] [--channels 32] [--size 28] [--batch 64]
                           [--count 192] [--steps 1,2,4] [--threads 1,2] [--rounds 5]

For each step count and thread count, one round runs `scm-run --steps N --count C --batch B
--json` (images/s over sampling: noise, network evaluations and mixing; plan compilation is
reported separately and excluded), the same with --no-optimize, and the reference sampler of
tools/scmtools/trigflow_ref.py on onnxruntime (ORT_ENABLE_ALL, same threads; noise drawn
beforehand, mixing included). Rounds are interleaved and the median round is reported.
"""
import argparse
import json
import os
import tempfile

import numpy as np
import onnx

import make_tiny_model
from bench import ort_images_per_second
from scmtools import proc, trigflow_ref
from scmtools.paths import RELEASE


def scm_run(binary, model, steps, count, batch, threads, optimize):
    args = [model, "--steps", steps, "--count", count, "--batch", batch, "--threads", threads, "--json"]
    if not optimize:
        args.append("--no-optimize")
    return json.loads(proc.scm("scm-run", *args, bin_dir=binary, check=True).stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=RELEASE)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--count", type=int, default=192)
    ap.add_argument("--steps", default="1,2,4")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--groupnorm", choices=["onnx", "pytorch"], default="onnx")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "unet.onnx")
        onnx.save(make_tiny_model.build(a.groupnorm, channels=a.channels, size=a.size, seed=0), model)
        print(f"TrigFlow UNet {a.channels} channels 1x{a.size}x{a.size} ({a.groupnorm} GroupNorm), {a.count} samples "
              f"at batch {a.batch}; median of {a.rounds} interleaved rounds")
        print(f"{'steps':>5} {'thr':>3} | {'scm img/s':>9} {'ms/step':>8} {'plans s':>7} | {'unopt img/s':>11} | "
              f"{'ort img/s':>9} | {'scm/ort':>7} {'opt/unopt':>9}")
        for threads in map(int, a.threads.split(",")):
            net = trigflow_ref.Network(model, threads)
            for steps in map(int, a.steps.split(",")):
                rounds = []
                for _ in range(a.rounds):
                    ours = scm_run(a.bin, model, steps, a.count, a.batch, threads, True)
                    unopt = scm_run(a.bin, model, steps, a.count, a.batch, threads, False)
                    theirs = ort_images_per_second(net, steps, a.count, a.batch, (1, a.size, a.size), rng)
                    rounds.append((ours["images_per_second"], ours["ms_per_step"], ours["prepare_seconds"],
                                   unopt["images_per_second"], theirs))
                med = [float(np.median([r[i] for r in rounds])) for i in range(5)]
                print(f"{steps:>5} {threads:>3} | {med[0]:>9.1f} {med[1]:>8.2f} {med[2]:>7.2f} | {med[3]:>11.1f} | "
                      f"{med[4]:>9.1f} | {med[0] / med[4]:>7.2f} {med[0] / med[3]:>9.2f}")


if __name__ == "__main__":
    main()
