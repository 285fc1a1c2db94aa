#!/usr/bin/env python3
"""Benchmark of one compiled sCT training step (forward + JVP + loss + backward + fused Adam).

    tools/bench_train.py [--bin .build/release] [--widths 32,64,64] [--size 28] [--batch 64] [--repeat 5] [--threads 1,2]

Builds the UNet of tools/make_tiny_model.py with the given widths (one level each, attention at the
lowest resolution: 7x7 for 28x28 and three levels; velocity output, random weights), exports its sCT
loss (`scm-export sct-loss`) and training step (`scm-export train-step --max-grad-norm 100`),
and runs the step in scm-infer --repeat times per thread count. Prints the median seconds per
step, the FLOPs of the step as our plan counts them (2 x multiply-adds of Conv, ConvTranspose,
ConvWeightGrad, Gemm and MatMul), GFLOP/s, and the planned arena bytes of the step next to those
of the network's forward pass at the same batch. onnxruntime cannot run the step (ai.scm ops):
no side-by-side figure here.
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
from scmtools.paths import RELEASE


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(r.stderr)
    return r.stdout


def write_inputs(model, feeds, tmp, prefix):
    paths = []
    inits = {t.name for t in model.graph.initializer}
    for i, vi in enumerate(x for x in model.graph.input if x.name not in inits):
        p = os.path.join(tmp, f"{prefix}_{i}.pb")
        with open(p, "wb") as f:
            f.write(numpy_helper.from_array(feeds[vi.name], vi.name).SerializeToString())
        paths.append(p)
    return paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=RELEASE)
    ap.add_argument("--widths", default="32,64,64")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--profile", action="store_true", help="print the time per op type of one step first")
    a = ap.parse_args()
    export, infer = os.path.join(a.bin, "scm-export"), os.path.join(a.bin, "scm-infer")
    with tempfile.TemporaryDirectory() as tmp:
        net, loss, step = (os.path.join(tmp, n) for n in ("net.onnx", "loss.onnx", "step.onnx"))
        widths = tuple(map(int, a.widths.split(",")))
        onnx.save(make_tiny_model.build("onnx", size=a.size, seed=0, parameterization="velocity", widths=widths), net)
        run([export, "sct-loss", net, loss])
        run([export, "train-step", loss, step, "--max-grad-norm", "100"])
        m = onnx.load(step)
        params = {t.name: numpy_helper.to_array(t) for t in onnx.load(net).graph.initializer}
        rng = np.random.default_rng(0)
        n, s = a.batch, a.size
        feeds = {"sct_x0": rng.uniform(-1, 1, (n, 1, s, s)).astype(np.float32),
                 "sct_z": (rng.normal(size=(n, 1, s, s)) * 0.5).astype(np.float32),
                 "sct_t": np.arctan(np.exp(rng.normal(-1.0, 1.4, n)) / 0.5).astype(np.float32),
                 "sct_r": np.array(1, np.float32), "train_step": np.array(1, np.float32),
                 "train_lr": np.array(1e-3, np.float32)}
        for vi in m.graph.input:
            if vi.name in feeds:
                continue
            base = vi.name
            for suffix in ("_adam_m", "_adam_v"):
                base = base[: -len(suffix)] if base.endswith(suffix) else base
            feeds[vi.name] = params[base] if base == vi.name else np.zeros_like(params[base])
        trained = sum(params[vi.name].size for vi in m.graph.input if vi.name in params)
        paths = write_inputs(m, feeds, tmp, "in")
        # The network's forward pass at the same batch, for the memory comparison.
        fwd = onnx.load(net)
        ffeeds = {"x": feeds["sct_x0"], "t": feeds["sct_t"]}
        fpaths = write_inputs(fwd, ffeeds, tmp, "fwd")
        f = json.loads(run([infer, net, "--inputs", *fpaths, "--json"]))
        print(f"model: TrigFlow UNet of make_tiny_model, widths {a.widths}, 1x{s}x{s}, {trained} trained parameters; "
              f"sCT step at batch {n} (forward + JVP + loss + backward + Adam)")
        print(f"forward alone: {f['flops'] / 1e9:.2f} GFLOP, arena {f['arena_bytes'] / 2**20:.1f} MiB "
              f"(its activations without reuse, what a backward pass may need: {f['unplanned_bytes'] / 2**20:.1f} MiB)")
        if a.profile:
            r = json.loads(run([infer, step, "--inputs", *paths, "--repeat", "2", "--profile", "--json"]))
            for p in r["profile"][:12]:
                print(f"  {p['op']:<26} {p['ms']:9.2f} ms {100 * p['share']:5.1f}%")
        for threads in map(int, a.threads.split(",")):
            r = json.loads(run([infer, step, "--inputs", *paths, "--repeat", str(a.repeat), "--threads", str(threads), "--json"]))
            sec = r["median_ms"] / 1000
            print(f"threads {threads}: {sec:.3f} s per step (median of {a.repeat}), {r['flops'] / 1e9:.2f} GFLOP per step, "
                  f"{r['flops'] / 1e9 / sec:.1f} GFLOP/s, arena {r['arena_bytes'] / 2**20:.1f} MiB "
                  f"({r['arena_bytes'] / max(1, f['unplanned_bytes']):.2f}x the forward's activations), {r['kernels']} kernels")


if __name__ == "__main__":
    main()
