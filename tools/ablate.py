#!/usr/bin/env python3
"""Recipe ablations: every variant of a base `scm-train` command trained for the same steps with
the same seed, then measured the same way (`training_curve.py eval`), and one Markdown table.

    tools/ablate.py run SPEC.json [--only NAME,...] [--threads 2]
    tools/ablate.py table SPEC.json

SPEC.json (committed beside its results, e.g. training/ablations/scd.json):

    {"out": "training/ablations/scd",            # one folder per variant below it
     "base": ["--data", "fashion-mnist", "--objective", "scd", ...],
     "steps": 1000, "checkpoint_every": 500,
     "eval": {"samplers": ["steps:2", "steps:1"], "count": 2000},
     "variants": {"baseline": {"flags": [], "note": "..."},
                  "warmup-2000": {"flags": ["--tangent-warmup", "2000"], "note": "..."}}}

A variant's flags are appended to the base flags (the trainer's last value of a flag wins).
`run` trains each variant that has not reached `steps` (resuming a stopped one), evaluates every
checkpoint, and keeps loss.csv and curve.csv in OUT/NAME; the checkpoints stay in OUT/NAME/
checkpoints (git ignores them there: 20 MB each). A variant that has finished is skipped, so
`run` can be stopped and started again across sessions. `table` prints one row per variant: FD of
each sampler at the last step and at the first evaluated one, the change against the first
variant (the baseline), the smallest class share, the near-copy share, the seconds per step
(measured on a shared machine: a guide, not a benchmark). Rows of sample seed 0 only.
"""
import argparse
import json
import os
import subprocess
import sys

from scmtools.paths import ROOT, TOOLS
from training_curve import BIN, read_curve as rows, training_time



def load(path):
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"ablate: cannot read {path}: {e}")
    for key in ("out", "base", "steps", "eval", "variants"):
        if key not in spec:
            sys.exit(f"ablate: {path} has no '{key}'")
    if not spec["variants"]:
        sys.exit(f"ablate: {path} lists no variants")
    return spec


def last_step(run_dir):
    r = rows(os.path.join(run_dir, "loss.csv"))
    return int(r[-1]["step"]) if r else 0


def run(spec, args):
    names = list(spec["variants"])
    if args.only:
        wanted = args.only.split(",")
        unknown = [n for n in wanted if n not in spec["variants"]]
        if unknown:
            sys.exit(f"ablate: no variant {', '.join(unknown)} (variants: {', '.join(names)})")
        names = wanted
    for name in names:
        out = os.path.join(ROOT, spec["out"], name)
        flags = spec["base"] + spec["variants"][name].get("flags", [])
        if last_step(out) < spec["steps"]:
            os.makedirs(out, exist_ok=True)
            cmd = [os.path.join(BIN, "scm-train"), *flags, "--steps", str(spec["steps"]), "--out", out,
                   "--checkpoint-every", str(spec.get("checkpoint_every", spec["steps"])), "--threads", str(args.threads)]
            if os.path.isdir(os.path.join(out, "checkpoints")) and os.listdir(os.path.join(out, "checkpoints")):
                cmd.append("--resume")
            print(f"ablate: {name}: {' '.join(cmd)}", flush=True)
            if subprocess.run(cmd).returncode != 0:
                sys.exit(f"ablate: training {name} failed")
        for sampler in spec["eval"]["samplers"]:
            r = subprocess.run([sys.executable, os.path.join(TOOLS, "training_curve.py"), "eval", out,
                                "--sampler", sampler, "--count", str(spec["eval"].get("count", 2000)),
                                "--every", str(spec.get("checkpoint_every", spec["steps"])), "--threads", str(args.threads)])
            if r.returncode != 0:
                sys.exit(f"ablate: evaluating {name} failed")


def seconds_per_step(run_dir):
    steps, _, total = training_time(run_dir)
    return total / steps if steps else float("nan")


def table(spec):
    samplers = spec["eval"]["samplers"]
    count = int(spec["eval"].get("count", 2000))
    results = {}
    for name in spec["variants"]:
        run_dir = os.path.join(ROOT, spec["out"], name)
        curve = [r for r in rows(os.path.join(run_dir, "curve.csv")) if int(r["count"]) == count and int(r["seed"]) == 0]
        results[name] = {s: sorted(((int(r["step"]), r) for r in curve if r["sampler"] == s), key=lambda p: p[0])
                         for s in samplers}
    base = next(iter(spec["variants"]))
    head = ["variant", "flags"] + [f"FD {s} at {spec['steps']}" for s in samplers] + \
           [f"vs {base}", "FD at first eval", "min class", "near-copies", "s/step", "note"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for name, v in spec["variants"].items():
        res = results[name]
        cells = [f"`{name}`", " ".join(v.get("flags", [])) or "(base)"]
        final = {}
        for s in samplers:
            pts = [(st, r) for st, r in res[s] if st == spec["steps"]]
            final[s] = float(pts[-1][1]["fd"]) if pts else None
            cells.append(f"{final[s]:.2f}" if final[s] is not None else "not run")
        first = samplers[0]
        b = [r for st, r in results[base][first] if st == spec["steps"]]
        if final[first] is not None and b:
            cells.append(f"{100 * (final[first] / float(b[-1]['fd']) - 1):+.0f}%")
        else:
            cells.append("")
        early = res[first][0] if res[first] else None
        cells.append(f"{float(early[1]['fd']):.2f} at {early[0]}" if early else "")
        last = [r for st, r in res[first] if st == spec["steps"]]
        cells.append(f"{100 * float(last[-1]['min_class_share']):.1f}%" if last else "")
        cells.append(f"{100 * float(last[-1]['near_share']):.1f}%" if last else "")
        sps = seconds_per_step(os.path.join(ROOT, spec["out"], name))
        cells.append(f"{sps:.2f}" if sps == sps else "")
        cells.append(v.get("note", ""))
        print("| " + " | ".join(cells) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("spec")
    r.add_argument("--only", help="comma-separated variant names")
    r.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("table")
    t.add_argument("spec")
    a = p.parse_args()
    spec = load(a.spec)
    if a.cmd == "run":
        run(spec, a)
    else:
        table(spec)


if __name__ == "__main__":
    main()
