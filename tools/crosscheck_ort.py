#!/usr/bin/env python3
"""Runs a model in our runtime (scm-infer) and in onnxruntime on the same random inputs.

    tools/crosscheck_ort.py MODEL [--batch 2] [--seed 0] [--threads 1] [--bin .build/release]
                            [--rtol 1e-5] [--atol 3e-6] [--json]

Symbolic dims take --batch. Float inputs are drawn from N(0, 1), except an input named `t`
(TrigFlow time), drawn from U(0.05, 1.55); integer inputs are zeros. Prints, per output, the max
absolute error, the max absolute reference value and their ratio (the relative error), and the
element-by-element check |ours - ort| <= rtol |ort| + atol: the largest ratio of the two sides
(at most 1 passes) and the number of elements over the bound.
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

from scmtools import onnxrt
from scmtools.onnxrt import ort_median_ms  # noqa: F401  (re-exported: crosscheck_ort.ort_median_ms)
from scmtools.paths import RELEASE


def random_inputs(model, batch, seed):
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.issubdtype(dtype, np.floating):
            v = rng.uniform(0.05, 1.55, shape) if vi.name == "t" else rng.standard_normal(shape)
        else:
            v = np.zeros(shape)
        feeds[vi.name] = v.astype(dtype)
    return feeds


def ort_session(model_path, threads, optimize=True):
    """An onnxruntime CPU session with `threads` intra-op threads (one inter-op thread) and all graph
    optimizations (optimize=False: none, the graph's nodes as written): scmtools.onnxrt.ort_session."""
    return onnxrt.ort_session(model_path, threads, optimize, inter_threads=1)


def crosscheck(model_path, batch=2, seed=0, threads=1, binary=None, rtol=1e-5, atol=3e-6):
    binary = binary or os.path.join(RELEASE, "scm-infer")
    model = onnx.load(model_path)
    feeds = random_inputs(model, batch, seed)
    ref = ort_session(model_path, threads).run(None, feeds)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (name, v) in enumerate(feeds.items()):
            p = os.path.join(tmp, f"input_{i}.pb")
            with open(p, "wb") as f:
                f.write(numpy_helper.from_array(v, name).SerializeToString())
            paths.append(p)
        out_dir = os.path.join(tmp, "out")
        r = subprocess.run([binary, model_path, "--inputs", *paths, "--output-dir", out_dir, "--threads", str(threads)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"scm-infer failed ({r.returncode}): {r.stderr.strip()}")
        ours = []
        for i in range(len(ref)):
            t = onnx.TensorProto()
            with open(os.path.join(out_dir, f"output_{i}.pb"), "rb") as f:
                t.ParseFromString(f.read())
            ours.append(numpy_helper.to_array(t))
    results = []
    for o, (a, b) in zip(model.graph.output, zip(ours, ref)):
        if a.shape != b.shape:
            raise RuntimeError(f"output {o.name}: shape {a.shape}, onnxruntime {b.shape}")
        if a.size == 0:
            raise RuntimeError(f"output {o.name} is empty: nothing to compare")
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))  # NaN where either is NaN: fails every bound
        bound = rtol * np.abs(b.astype(np.float64)) + atol
        err = float(np.max(diff))
        scale = float(np.max(np.abs(b)))
        results.append({"output": o.name, "max_abs_error": err, "max_abs_value": scale,
                        "relative_error": err / scale if scale > 0 else err,
                        "rtol": rtol, "atol": atol, "elementwise_ratio": float(np.max(diff / bound)),
                        "elements_over": int(np.count_nonzero(~(diff <= bound)))})
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bin", default=RELEASE)
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=3e-6)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = crosscheck(a.model, a.batch, a.seed, a.threads, os.path.join(a.bin, "scm-infer"), a.rtol, a.atol)
    if a.json:
        print(json.dumps(res))
    else:
        for r in res:
            print(f"{r['output']}: max abs error {r['max_abs_error']:.3g}, max abs value {r['max_abs_value']:.3g}, "
                  f"relative {r['relative_error']:.3g}; |ours - ort| <= {r['rtol']:g} |ort| + {r['atol']:g}: "
                  f"worst ratio {r['elementwise_ratio']:.3g}, {r['elements_over']} elements over")


if __name__ == "__main__":
    sys.exit(main())
