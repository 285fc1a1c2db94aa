#!/usr/bin/env python3
"""Benchmark: our runtime vs onnxruntime on a TrigFlow-style UNet, side by side in one run.

    tools/bench_runtime.py [--bin .build/release] [--channels 32] [--size 28] [--repeat 10]

Builds the UNet of tools/make_tiny_model.py (conv, GroupNorm, SiLU, attention, Resize, Concat,
Sin/Cos time embedding; random weights), then for batch 1 and 64 and 1 and 2 threads runs it
--repeat times in scm-infer and in onnxruntime (ORT_ENABLE_ALL, same thread count) on the same
inputs, and prints median milliseconds, images/s, achieved GFLOP/s (2 x multiply-adds of Conv,
Gemm and MatMul, counted by our plan) and the ratio. Also prints the single-thread SGEMM rate
of this machine (numpy's OpenBLAS, 1024^3) as the yardstick. Medians of noisy shared machines:
compare ratios, not absolute numbers.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

import make_tiny_model
from scmtools import proc
from scmtools.onnxrt import ort_median_ms
from scmtools.paths import RELEASE


def sgemm_peak():
    code = ("import numpy as np, time\n"
            "a=np.random.rand(1024,1024).astype(np.float32); b=a.copy(); a@b\n"
            "ts=[]\n"
            "for _ in range(5):\n t=time.perf_counter(); a@b; ts.append(time.perf_counter()-t)\n"
            "print(2*1024**3/min(ts)/1e9)")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=RELEASE)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "unet.onnx")
        onnx.save(make_tiny_model.build("onnx", channels=a.channels, size=a.size, seed=0), model_path)
        print(f"model: TrigFlow UNet, {a.channels} channels, 1x{a.size}x{a.size}, GroupNormalization op; "
              f"single-thread SGEMM on this machine: {sgemm_peak():.1f} GFLOP/s")
        print(f"{'batch':>5} {'thr':>3} | {'scm ms':>9} {'img/s':>8} {'GFLOP/s':>7} | {'ort ms':>9} {'img/s':>8} | {'ort/scm':>7}")
        rng = np.random.default_rng(0)
        for batch in map(int, a.batches.split(",")):
            x = rng.standard_normal((batch, 1, a.size, a.size)).astype(np.float32)
            t = rng.uniform(0.1, 1.5, batch).astype(np.float32)
            px, pt = os.path.join(tmp, "x.pb"), os.path.join(tmp, "t.pb")
            open(px, "wb").write(numpy_helper.from_array(x, "x").SerializeToString())
            open(pt, "wb").write(numpy_helper.from_array(t, "t").SerializeToString())
            for threads in map(int, a.threads.split(",")):
                r = proc.scm("scm-infer", model_path, "--inputs", px, pt, "--threads", threads, "--repeat", a.repeat + 1, "--json",
                             bin_dir=a.bin, check=True)
                rep = json.loads(r.stdout)
                ours = rep["median_ms"]
                theirs = ort_median_ms(model_path, {"x": x, "t": t}, threads, a.repeat)
                gflops = rep["flops"] / (ours / 1000) / 1e9
                print(f"{batch:>5} {threads:>3} | {ours:>9.2f} {batch / ours * 1000:>8.1f} {gflops:>7.1f} | "
                      f"{theirs:>9.2f} {batch / theirs * 1000:>8.1f} | {theirs / ours:>7.2f}")


if __name__ == "__main__":
    main()
