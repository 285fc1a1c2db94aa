#!/usr/bin/env python3
"""The quality table of models/README.md, regenerated: every row is `scm-run` (samples, wall time)
then `scm-eval` (quality) on the same .npy file.

    tools/quality_table.py fashion [--count 10000] [--sct M] [--flow M] [--steps 1,2,4] [--ode 8,16,32,64]
    tools/quality_table.py checkerboard [--count 10000] [--sct M]

`fashion`: 1, 2 and 4 consistency steps of the consistency model, the flow model's probability-flow
ODE (Heun) with each of --ode steps, and the real test set (the floor): Fréchet distance and KID in
the shipped classifier's features, the smallest class share, the share of samples nearer to a
training image than 95% of test images are (memorization), and the wall time of `scm-run`.
`checkerboard`: 1, 2 and 4 steps: share in the filled cells, energy distance, sliced W1.

Uses the release binaries (`make demo` builds them); samples and JSON go to --work
(default .build/quality). Prints a Markdown table on stdout, progress on stderr.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BIN = os.path.join(ROOT, ".build", "release")


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"quality_table: {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def row(name, model, flags, args):
    npy = os.path.join(args.work, name + ".npy")
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
    for label, model, flags in rows:
        sampled, wall, q = row(label.replace(" ", "-").replace(",", ""), model, flags, args)
        s = q["samples"]
        floor = q["floor"]
        print(f"| {label} | {sampled['nfe']} | {s['fd']:.2f} | {1000 * s['kid']['mean']:.1f} | "
              f"{100 * s['min_class_share']:.1f}% ({q['classes'][s['min_class']]}) | {100 * s['nn']['near_share']:.1f}% | "
              f"{wall:.1f} s |", flush=True)
    print(f"| real test set (floor) | | {floor['fd']:.3f} | {1000 * floor['kid']['mean']:.1f} | "
          f"{100 * floor['min_class_share']:.1f}% | {100 * floor['nn']['near_share']:.1f}% | |")


def checkerboard(args):
    print(f"| sampler | NFE | in the filled cells | energy distance | sliced W1 | scm-run wall time, {args.count} samples |")
    print("| --- | --- | --- | --- | --- | --- |")
    floor = None
    for n in args.steps:
        sampled, wall, q = row(f"checkerboard-{n}", args.sct, ["--steps", n], args)
        s, floor = q["samples"], q["floor"]
        print(f"| consistency, {n} step{'s' if n > 1 else ''} | {sampled['nfe']} | {100 * s['support_share']:.2f}% | "
              f"{s['energy_distance']:.5f} | {s['sliced_w1']:.4f} | {wall:.2f} s |", flush=True)
    print(f"| exact samples (floor) | | {100 * floor['support_share']:.2f}% | {floor['energy_distance']:.5f} | "
          f"{floor['sliced_w1']:.4f} | |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", choices=["fashion", "checkerboard"])
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sct", help="the consistency model (default: the shipped one)")
    p.add_argument("--flow", default=os.path.join(ROOT, "models", "fashion-flow.onnx"))
    p.add_argument("--steps", default="1,2,4", help="consistency step counts (empty: none)")
    p.add_argument("--ode", default="8,16,32,64", help="PF-ODE Heun step counts (empty: none)")
    p.add_argument("--classifier", default=os.path.join(ROOT, "models", "fashion-classifier.onnx"))
    p.add_argument("--work", default=os.path.join(ROOT, ".build", "quality"))
    args = p.parse_args()
    args.ode = [int(n) for n in args.ode.split(",") if n]
    args.steps = [int(n) for n in args.steps.split(",") if n]
    args.sct = args.sct or os.path.join(ROOT, "models", "fashion-sct.onnx" if args.data == "fashion" else "checkerboard-sct.onnx")
    args.data = "fashion-mnist" if args.data == "fashion" else "checkerboard"
    os.makedirs(args.work, exist_ok=True)
    (fashion if args.data == "fashion-mnist" else checkerboard)(args)


if __name__ == "__main__":
    main()
