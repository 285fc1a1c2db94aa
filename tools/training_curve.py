#!/usr/bin/env python3
"""Quality along a training run: FD (scm-eval, classifier features) of each checkpoint's EMA
weights, and a plot of FD against training steps for one or more runs.

    tools/training_curve.py eval RUN_DIR --sampler ode:8|steps:2|mid:1.3 [--count 2000] [--every 1000]
                                 [--seed 0] [--threads 2]
    tools/training_curve.py plot OUT.png RUN_DIR[:SAMPLER[:LABEL[:OFFSET]]] ... [--title T]
    tools/training_curve.py walltime RUN_DIR ...

`eval` exports every checkpoint of RUN_DIR/checkpoints whose step is a multiple of --every (and
the latest) with `scm-export`, draws --count samples with `scm-run` (`ode:K`: the probability-flow
ODE with K Heun steps, for flow checkpoints; `steps:N`: N consistency steps at the stored schedule;
`mid:T`: 2 consistency steps at t_max then T), measures them with
`scm-eval`, and appends one line per checkpoint to RUN_DIR/curve.csv (step, sampler, count, seed,
fd, kid, min_class_share, near_share, seconds). Checkpoints already in curve.csv for the same
sampler, count and seed are skipped, so it can be re-run while the run goes on (`nice` it).

`plot` draws FD (log scale) against steps from the curve.csv files, each run's steps shifted by
its OFFSET (a stage started from another run's checkpoint: the steps before it) (matplotlib: run it with
.venv-bench/bin/python, which tools/setup_bench.sh fills; `make test`'s .venv has no matplotlib). Uses the release binaries (`make demo` builds them).

`walltime` sums a run's training time over its resumed segments (loss.csv's seconds restart at 0
with each segment): steps, segments, hours, and seconds per step, one line per run (the
equal-compute table's training column; a consistency run's teacher is its own line).
"""
import argparse
import csv
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from scmtools.paths import RELEASE, bin_dir

BIN = bin_dir("SCM_BIN", RELEASE)  # SCM_BIN: binaries elsewhere (a copy, while a build runs)
FIELDS = ["step", "sampler", "count", "seed", "fd", "kid", "min_class_share", "near_share", "seconds"]


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"training_curve: {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def sampler_flags(spec, model=None):
    """scm-run's flags for a sampler spec: ode:K, steps:N, or mid:T (2 consistency steps at t_max
    then T, the midpoint tuned instead of the stored one; t_max is read from `model`)."""
    m = re.fullmatch(r"(ode|steps):([1-9][0-9]*)|mid:([0-9]*\.?[0-9]+)", spec)
    if not m:
        sys.exit(f"training_curve: --sampler must be ode:K, steps:N or mid:T, is '{spec}'")
    if m.group(3):
        if model is None:
            return []
        meta = json.loads(run(os.path.join(BIN, "scm-inspect"), model, "--json"))["metadata"]
        return ["--schedule", f"{meta['scm.t_max']},{m.group(3)}"]
    return ["--ode-steps", m.group(2)] if m.group(1) == "ode" else ["--steps", m.group(2)]


def read_curve(path):
    """The rows of a CSV file with a header (curve.csv, loss.csv), or none if it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def checkpoints(run_dir):
    found = []
    for p in glob.glob(os.path.join(run_dir, "checkpoints", "step_*.ckpt")):
        m = re.search(r"step_(\d+)\.ckpt$", p)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def evaluate(args):
    sampler_flags(args.sampler)  # checked before any work
    curve = os.path.join(args.run, "curve.csv")
    done = {(int(r["step"]), r["sampler"], int(r["count"]), int(r["seed"])) for r in read_curve(curve)}
    ckpts = checkpoints(args.run)
    if not ckpts:
        sys.exit(f"training_curve: no checkpoints in {args.run}/checkpoints")
    latest = ckpts[-1][0]
    todo = [(s, p) for s, p in ckpts if (s % args.every == 0 or s == latest)
            and (s, args.sampler, args.count, args.seed) not in done]
    if args.latest_only:
        todo = todo[-1:]
    with tempfile.TemporaryDirectory(prefix="scm-curve-") as work:
        for step, path in todo:
            start = time.perf_counter()
            model = os.path.join(work, "model.onnx")
            npy = os.path.join(work, "samples.npy")
            run(os.path.join(BIN, "scm-export"), path, model)
            run(os.path.join(BIN, "scm-run"), model, *sampler_flags(args.sampler, model), "--count", args.count, "--seed", args.seed,
                "--threads", args.threads, "--npy", npy, "--json")
            q = json.loads(run(os.path.join(BIN, "scm-eval"), npy, "--data", "fashion-mnist", "--threads", args.threads,
                               "--json"))["samples"]
            row = {"step": step, "sampler": args.sampler, "count": args.count, "seed": args.seed,
                   "fd": f"{q['fd']:.4f}", "kid": f"{q['kid']['mean']:.6f}",
                   "min_class_share": f"{q['min_class_share']:.4f}", "near_share": f"{q['nn']['near_share']:.4f}",
                   "seconds": f"{time.perf_counter() - start:.1f}"}
            new = not os.path.exists(curve)
            with open(curve, "a", newline="") as f:
                w = csv.DictWriter(f, FIELDS)
                if new:
                    w.writeheader()
                w.writerow(row)
            print(f"step {step}: FD {q['fd']:.2f} ({args.sampler}, {args.count} samples, {row['seconds']} s)", flush=True)


def plot(args):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("training_curve: plot needs matplotlib: run tools/setup_bench.sh, then this script with .venv-bench/bin/python")
    # Beside the axes, the legend hides no line; past ten lines, tab20 keeps every color distinct.
    fig, ax = plt.subplots(figsize=(11, 4.6), dpi=110)
    colors = plt.cm.tab20.colors if len(args.runs) > 10 else plt.cm.tab10.colors
    for i, spec in enumerate(args.runs):
        parts = spec.split(":")
        run_dir = parts[0]
        sampler = ":".join(parts[1:3]) if len(parts) >= 3 else None
        label = parts[3] if len(parts) >= 4 and parts[3] else os.path.basename(os.path.normpath(run_dir))
        try:  # a later stage of a run started from another's checkpoint: its steps counted from there
            offset = int(parts[4]) if len(parts) >= 5 else 0
        except ValueError:
            sys.exit(f"training_curve: the step offset in '{spec}' is not an integer")
        rows = [r for r in read_curve(os.path.join(run_dir, "curve.csv")) if sampler is None or r["sampler"] == sampler]
        if not rows:
            sys.exit(f"training_curve: no rows{' for ' + sampler if sampler else ''} in {run_dir}/curve.csv")
        by = {}
        for r in rows:  # the largest count per step
            s = int(r["step"])
            if s not in by or int(r["count"]) > int(by[s]["count"]):
                by[s] = r
        steps = sorted(by)
        ax.plot([offset + s for s in steps], [float(by[s]["fd"]) for s in steps], marker="o", ms=3, color=colors[i % len(colors)],
                label=f"{label} ({by[steps[0]]['sampler']}, {by[steps[0]]['count']} samples)")
    ax.set_yscale("log")
    ax.set_xlabel("training steps (batch 64)")
    ax.set_ylabel("FD, classifier features")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if args.title:
        ax.set_title(args.title, fontsize=10)
    fig.tight_layout()
    tmp = args.out + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


def training_time(run_dir):
    """(steps, segments, seconds) of a run from its loss.csv: the resumed segments' clocks added up
    (a resumed run starts its clock at 0)."""
    total, last, segments, steps = 0.0, None, 0, 0
    for r in read_curve(os.path.join(run_dir, "loss.csv")):
        sec = float(r["seconds"])
        if last is None or sec < last:  # a new segment
            segments += 1
            if last is not None:
                total += last
        last, steps = sec, int(r["step"])
    return steps, segments, total + (last or 0.0)


def walltime(args):
    for run_dir in args.runs:
        if not os.path.exists(os.path.join(run_dir, "loss.csv")):
            sys.exit(f"training_curve: no loss.csv in {run_dir}")
        steps, segments, total = training_time(run_dir)
        print(f"{run_dir}: {steps} steps, {segments} segment{'s' if segments != 1 else ''}, {total / 3600:.2f} h, "
              f"{total / max(steps, 1):.3f} s per step")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("run")
    e.add_argument("--sampler", required=True)
    e.add_argument("--count", type=int, default=2000)
    e.add_argument("--every", type=int, default=1000)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--latest-only", action="store_true", help="only the latest checkpoint not yet measured")
    q = sub.add_parser("plot")
    q.add_argument("out")
    q.add_argument("runs", nargs="+")
    q.add_argument("--title")
    w = sub.add_parser("walltime")
    w.add_argument("runs", nargs="+")
    args = p.parse_args()
    {"eval": evaluate, "plot": plot, "walltime": walltime}[args.cmd](args)


if __name__ == "__main__":
    main()
