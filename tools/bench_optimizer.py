#!/usr/bin/env python3
"""Benchmark: unoptimized vs optimized 2-step sampling on a TrigFlow UNet, with onnxruntime
alongside, in one run.

    tools/bench_optimizer.py [--bin .build/release] [--channels 32] [--size 28] [--repeat 10]

For each GroupNorm encoding and batch size (1 and 64, one thread by default), the network is
evaluated at each time of the model's 2-step schedule:
  - unoptimized: the original file, `t` an input (scm-infer);
  - optimized: the files `scm-export optimize --steps 2 --batch B` writes (t folded, ADN and
    conv epilogues fused);
  - onnxruntime: the original file, ORT_ENABLE_ALL, same thread count.
A 2-step sample costs the two network evaluations; the per-step medians are summed and
images/s = batch / that sum. The three are measured in interleaved rounds (--rounds, each a
scm-infer process with --repeat runs) and the median round is reported, so slow drifts of a shared
machine hit all three alike. (The sampler's noise mixing between steps is the same for all three
and is not included; scm-run reports whole sampling once it exists.)
"""
import argparse
import json
import os
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

import make_tiny_model
from scmtools import proc
from scmtools.onnxrt import ort_median_ms
from scmtools.paths import RELEASE


def write(path, name, array):
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(array, name).SerializeToString())
    return path


def scm_ms(binary, model, inputs, threads, repeat):
    r = proc.scm("scm-infer", model, "--inputs", *inputs, "--threads", threads, "--repeat", repeat + 1, "--json", bin_dir=binary,
                 check=True)
    return json.loads(r.stdout)["median_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=RELEASE)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    print(f"TrigFlow UNet {a.channels} channels 1x{a.size}x{a.size}, 2-step sampling, {a.threads} thread(s); "
          f"median of {a.rounds} interleaved rounds of {a.repeat} runs per step")
    print(f"{'encoding':>9} {'batch':>5} | {'unopt ms':>9} {'img/s':>8} | {'opt ms':>9} {'img/s':>8} | "
          f"{'speedup':>7} | {'ort ms':>9} {'img/s':>8} | {'ort/opt':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for enc in ("onnx", "pytorch"):
            model = os.path.join(tmp, f"unet_{enc}.onnx")
            m = make_tiny_model.build(enc, channels=a.channels, size=a.size, seed=0)
            onnx.save(m, model)
            meta = {p.key: p.value for p in m.metadata_props}
            times = [float(v) for v in meta["scm.schedule.2"].split(",")]
            rng = np.random.default_rng(0)
            for batch in map(int, a.batches.split(",")):
                steps = os.path.join(tmp, f"{enc}_{batch}")
                proc.scm("scm-export", "optimize", model, steps, "--steps", 2, "--batch", batch, bin_dir=a.bin, check=True)
                x = rng.standard_normal((batch, 1, a.size, a.size)).astype(np.float32)
                px = write(os.path.join(tmp, "x.pb"), "x", x)
                rounds = []
                for _ in range(a.rounds):
                    unopt = opt = theirs = 0.0
                    for k, tv in enumerate(times):
                        t = np.full(batch, tv, np.float32)
                        pt = write(os.path.join(tmp, f"t{k}.pb"), "t", t)
                        unopt += scm_ms(a.bin, model, [px, pt], a.threads, a.repeat)
                        opt += scm_ms(a.bin, os.path.join(steps, f"step{k + 1}.onnx"), [px], a.threads, a.repeat)
                        theirs += ort_median_ms(model, {"x": x, "t": t}, a.threads, a.repeat)
                    rounds.append((unopt, opt, theirs))
                unopt, opt, theirs = (float(np.median([r[i] for r in rounds])) for i in range(3))
                print(f"{enc:>9} {batch:>5} | {unopt:>9.2f} {batch / unopt * 1000:>8.1f} | {opt:>9.2f} "
                      f"{batch / opt * 1000:>8.1f} | {unopt / opt:>7.2f} | {theirs:>9.2f} {batch / theirs * 1000:>8.1f} | "
                      f"{theirs / opt:>7.2f}")


if __name__ == "__main__":
    main()
