#!/usr/bin/env python3
"""The quality table of models/README.md, regenerated: every row is `scm-run` (samples, wall time)
then `scm-eval` (quality) on the same .npy file.

    tools/quality_table.py fashion [--count 10000] [--sct M] [--flow M] [--steps 1,2,4] [--ode 8,16,32,64]
                                   [--precisions fp32,bf16]
    tools/quality_table.py checkerboard [--count 10000] [--sct M] [--precisions fp32,bf16]

`fashion`: 1, 2 and 4 consistency steps of the consistency model, the flow model's probability-flow
ODE (Heun) with each of --ode steps, and the real test set (the floor): Fréchet distance and KID in
the shipped classifier's features, the smallest class share, the share of samples nearer to a
training image than 95% of test images are (memorization), and the wall time of `scm-run`.
`checkerboard`: 1, 2 and 4 steps: share in the filled cells, energy distance, sliced W1.
--precisions runs every row once per precision (`scm-run --precision`, same seed, so the same
noise); with fp32 and bf16 a second table compares each bf16 row's samples with the fp32 row's,
sample by sample: mean and largest absolute difference in the data range, and the share of
values that differ by more than one 8-bit pixel level (fashion).

Uses the release binaries (`make demo` builds them); samples and JSON go to --work
(default .build/quality). Prints a Markdown table on stdout, progress on stderr.
"""
import argparse
import json
import os
import subprocess
import sys
import time

from scmtools.paths import BUILD, MODELS
from training_curve import BIN  # SCM_BIN: binaries elsewhere (a copy, while a build runs)


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"quality_table: {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def row(name, model, flags, args):
    npy = os.path.join(args.work, name + ".npy")
    args.files[name] = npy
    start = time.perf_counter()
    sampled = json.loads(run(os.path.join(BIN, "scm-run"), model, *flags, "--count", args.count, "--seed", args.seed,
                             "--threads", args.threads, "--npy", npy, "--json"))
    wall = time.perf_counter() - start
    extra = ["--classifier", args.classifier] if args.data == "fashion-mnist" else []
    quality = json.loads(run(os.path.join(BIN, "scm-eval"), npy, "--data", args.data, *extra, "--json"))
    print(f"  {name}: {wall:.1f} s", file=sys.stderr)
    return sampled, wall, quality


def fashion(args):
    print(f"| sampler | NFE | FD | KID x 1000 | smallest class | near-copies | scm-run wall time, {args.count} samples |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    floor = None
    rows = [(f"consistency, {n} step{'s' if n > 1 else ''}", args.sct, ["--steps", n]) for n in args.steps]
    rows += [(f"PF-ODE Heun {n}", args.flow, ["--ode-steps", n]) for n in args.ode]
    rows = [(label + ("" if p == "fp32" else f", {p}"), model, flags + ["--precision", p]) for label, model, flags in rows
            for p in args.precisions]
    for label, model, flags in rows:
        sampled, wall, q = row(label.replace(" ", "-").replace(",", ""), model, flags, args)
        if sampled.get("precision", "fp32") != flags[-1]:
            label += f" (ran {sampled['precision']}: not supported here)"
        s = q["samples"]
        floor = q["floor"]
        print(f"| {label} | {sampled['nfe']} | {s['fd']:.2f} | {1000 * s['kid']['mean']:.1f} | "
              f"{100 * s['min_class_share']:.1f}% ({q['classes'][s['min_class']]}) | {100 * s['nn']['near_share']:.1f}% | "
              f"{wall:.1f} s |", flush=True)
    print(f"| real test set (floor) | | {floor['fd']:.3f} | {1000 * floor['kid']['mean']:.1f} | "
          f"{100 * floor['min_class_share']:.1f}% | {100 * floor['nn']['near_share']:.1f}% | |")
    compare(args, [label for label, _, _ in rows], pixel=2 / 255)


def checkerboard(args):
    print(f"| sampler | NFE | in the filled cells | energy distance | sliced W1 | scm-run wall time, {args.count} samples |")
    print("| --- | --- | --- | --- | --- | --- |")
    floor = None
    labels = []
    for n in args.steps:
        for p in args.precisions:
            label = f"consistency, {n} step{'s' if n > 1 else ''}" + ("" if p == "fp32" else f", {p}")
            labels.append(label)
            sampled, wall, q = row(label.replace(" ", "-").replace(",", ""), args.sct, ["--steps", n, "--precision", p], args)
            s, floor = q["samples"], q["floor"]
            print(f"| {label} | {sampled['nfe']} | {100 * s['support_share']:.2f}% | "
                  f"{s['energy_distance']:.5f} | {s['sliced_w1']:.4f} | {wall:.2f} s |", flush=True)
    print(f"| exact samples (floor) | | {100 * floor['support_share']:.2f}% | {floor['energy_distance']:.5f} | "
          f"{floor['sliced_w1']:.4f} | |")
    compare(args, labels, pixel=None)


def compare(args, labels, pixel):
    """Each non-fp32 row's samples against its fp32 row's (same seed: same noise), value by value."""
    pairs = [(label, label.rsplit(", ", 1)[0]) for label in labels if any(label.endswith(", " + p) for p in args.precisions
                                                                         if p != "fp32")]
    if not pairs:
        return
    import numpy as np
    print()
    print("| rows | mean abs difference | largest | " + ("share differing by more than one pixel level |" if pixel else ""))
    print("| --- | --- | --- | " + ("--- |" if pixel else ""))
    for label, base in pairs:
        a = np.load(args.files[label.replace(" ", "-").replace(",", "")]).astype(np.float64)
        b = np.load(args.files[base.replace(" ", "-").replace(",", "")]).astype(np.float64)
        d = np.abs(a - b)
        # pixel: one 8-bit level of the data range [-1, 1]
        share = f" {100 * float(np.mean(d > pixel)):.3f}% |" if pixel else ""
        print(f"| {label} vs fp32 | {float(d.mean()):.2e} | {float(d.max()):.3f} |{share}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", choices=["fashion", "checkerboard"])
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sct", help="the consistency model (default: the shipped one)")
    p.add_argument("--flow", default=os.path.join(MODELS, "fashion-flow.onnx"))
    p.add_argument("--steps", help="consistency step counts (empty: none; default 1,2,4, or the one step count of a "
                                   "multistep model: its segments)")
    p.add_argument("--ode", default="8,16,32,64", help="PF-ODE Heun step counts (empty: none)")
    p.add_argument("--classifier", default=os.path.join(MODELS, "fashion-classifier.onnx"))
    p.add_argument("--work", default=os.path.join(BUILD, "quality"))
    p.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16 (each row once per precision)")
    args = p.parse_args()
    args.precisions = args.precisions.split(",")
    args.files = {}
    args.ode = [int(n) for n in args.ode.split(",") if n]
    args.sct = args.sct or os.path.join(MODELS, "fashion-sct.onnx" if args.data == "fashion" else "checkerboard-sct.onnx")
    if args.steps is None:
        import onnx
        meta = {e.key: e.value for e in onnx.load(args.sct, load_external_data=False).metadata_props}
        args.steps = str(len(meta["scm.segments"].split(",")) + 1) if "scm.segments" in meta else "1,2,4"
    args.steps = [int(n) for n in args.steps.split(",") if n]
    args.data = "fashion-mnist" if args.data == "fashion" else "checkerboard"
    os.makedirs(args.work, exist_ok=True)
    (fashion if args.data == "fashion-mnist" else checkerboard)(args)


if __name__ == "__main__":
    main()
