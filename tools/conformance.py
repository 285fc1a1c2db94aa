#!/usr/bin/env python3
"""ONNX backend node tests through our runtime.

    tools/conformance.py [--bin .build/debug] [--tests .build/onnx-node-tests] [--skips FILE]
                         [--expected FILE] [--write-expected] [--threads 1,2,3] [--no-batch] [-j N]

Runs every node test whose ops are all supported (`scm-infer --list-ops`), and every test named in
the expected set or the skips file whatever the binary lists (a test whose op the binary dropped
fails to compile and is reported, it does not leave the run), through `scm-infer`, compares each
output with the test's expected output as ONNX's runner does (rtol 1e-3, atol 1e-7 for floats,
exact otherwise, same dtype and shape) and prints

    conformance: N passed, M failed, K skipped

followed by the failures and skips with their reasons. A test is skipped when scm-infer exits
with status 3 (a documented unsupported dtype, attribute or mode).

Gates (each mismatch is reported as a failure):
- --skips FILE: each skip must be listed in FILE (test name, tab, reason) and each listed test
  must still be skipped.
- --expected FILE: the tests that must pass, one name per line. A listed test that fails, is
  skipped or is not run fails; a test that passes and is not listed fails too (add it:
  `--write-expected` rewrites FILE with the tests that pass).
- Threads: each passing test runs again at every further count of --threads (default 1,2,3; the
  first is the one compared with ONNX's outputs), with `--min-parallel-elements 0` so that every
  loop of two or more chunks is spread over the threads (node tests are below the runtime's
  default threshold), and every output must be bitwise equal to the first run's (raw bytes, so
  -0.0 vs 0.0 and NaN payloads count).
- Batch (unless --no-batch): for each passing test whose model maps samples to samples along
  axis 0 (decided from the model and the test's data by ONNX's reference evaluator, never by our
  runtime; see batch_case), the inputs that carry the outputs' axis 0 are stacked with random
  samples (the original in the middle), the model's dim 0 rewritten, and the original's rows must
  be bitwise what it gives alone: in a batch of 3 samples at 1 and 2 threads (loops spread), and
  in a large batch (LARGE_ELEMENTS) at 2 threads at the default threshold. --batch-summary prints
  the covered ops and the tests left out, by reason.

Exit status 1 when anything failed.
"""
import argparse
import collections
import concurrent.futures
import dataclasses
import os
import subprocess
import sys
import tempfile
import warnings
import zlib

import numpy as np
import onnx
from onnx import numpy_helper

from scmtools.paths import CONFORMANCE_EXPECTED as EXPECTED, CONFORMANCE_SKIPS as SKIPS, DEBUG, NODE_TESTS

BATCH_THREADS = (1, 2)  # the small batch runs at each, every loop spread over the threads
LARGE_THREADS = (2,)  # the large batch, at the runtime's default threshold
BATCH_SAMPLES = 3  # the small batch: the original sample in the middle of two random ones
# The large batch: enough samples that the biggest batched tensor has LARGE_ELEMENTS (four of the
# runtime's 32768-element chunks, eight times its 16384-element threshold for spreading a loop over
# the threads), at most LARGE_MAX_SAMPLES, so every kernel runs its parallel path at its default setting.
LARGE_ELEMENTS = 1 << 17
LARGE_MAX_SAMPLES = 4096


@dataclasses.dataclass
class Result:
    status: str  # passed / failed / skipped (conformance at the first thread count)
    reason: str = ""
    threads: str = ""  # "" (not run: the test did not pass) / equal / differ
    threads_reason: str = ""
    batch: str = ""  # "" (not run) / equal / differ / skipped (the model does not batch along axis 0)
    batch_reason: str = ""


def supported_ops(binary):
    out = subprocess.run([binary, "--list-ops"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def model_ops(tests_dir, name):
    m = onnx.load(os.path.join(tests_dir, name, "model.onnx"), load_external_data=False)
    return {n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}" for n in m.graph.node}


def candidates(tests_dir, ops):
    names = []
    for t in sorted(os.listdir(tests_dir)):
        p = os.path.join(tests_dir, t, "model.onnx")
        if not os.path.exists(p):
            continue
        m = onnx.load(p, load_external_data=False)
        used = {n.op_type for n in m.graph.node if n.domain in ("", "ai.onnx")}
        if used and used <= ops and all(n.domain in ("", "ai.onnx") for n in m.graph.node):
            names.append(t)
    return names


def compare(expected, actual):
    if expected.dtype != actual.dtype:
        return f"dtype {actual.dtype}, expected {expected.dtype}"
    if expected.shape != actual.shape:
        return f"shape {actual.shape}, expected {expected.shape}"
    if np.issubdtype(expected.dtype, np.floating):
        try:
            np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-7)
        except AssertionError as e:
            return " ".join(str(e).split())[:300]
    elif not np.array_equal(expected, actual):
        return "values differ"
    return None


def bitwise_diff(reference, actual):
    """None when the arrays have the same dtype, shape and bytes; else what differs."""
    if reference.dtype != actual.dtype or reference.shape != actual.shape:
        return f"{actual.dtype}{list(actual.shape)} vs {reference.dtype}{list(reference.shape)}"
    a, b = np.ascontiguousarray(reference), np.ascontiguousarray(actual)
    if a.tobytes() == b.tobytes():
        return None
    w = a.dtype.itemsize
    ra, rb = a.reshape(-1).view(f"V{w}"), b.reshape(-1).view(f"V{w}")
    bad = np.flatnonzero(ra != rb)
    i = int(bad[0])
    where = np.unravel_index(i, a.shape) if a.shape else ()
    return (f"{len(bad)} of {a.size} elements differ in their bytes, first at {tuple(int(x) for x in where)}: "
            f"{a.reshape(-1)[i]!r} vs {b.reshape(-1)[i]!r}")


def data_files(data_set, kind):
    """The `input_<i>.pb` or `output_<i>.pb` files of a test data set, in index order."""
    n = len(kind) + 1
    return sorted((f for f in os.listdir(data_set) if f.startswith(kind + "_")), key=lambda f: int(f[n:-3]))


def read_tensor(path):
    t = onnx.TensorProto()
    with open(path, "rb") as fh:
        t.ParseFromString(fh.read())
    return numpy_helper.to_array(t)


def infer(binary, model, inputs, out_dir, threads, spread=False):
    """Runs scm-infer; returns (exit status, last stderr line). spread: every loop of two or more
    chunks runs over the threads (`--min-parallel-elements 0`); node tests are too small for the
    runtime's default threshold, so without it they would run on the calling thread alone."""
    args = [binary, model, "--output-dir", out_dir, "--threads", str(threads)]
    if spread:
        args += ["--min-parallel-elements", "0"]
    if inputs:
        args += ["--inputs", *inputs]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    err = r.stderr.strip().splitlines()
    return r.returncode, (err[-1] if err else "").replace("scm-infer: error: ", "")


def read_outputs(out_dir, names):
    """The arrays of out_dir/<name> for each name, or (None, why)."""
    arrays = []
    for f in names:
        p = os.path.join(out_dir, f)
        if not os.path.exists(p):
            return None, f"{f} was not written"
        arrays.append(read_tensor(p))
    return arrays, None


# ---- batch invariance -------------------------------------------------------------------------

def _reference_run(model, feeds):
    from onnx.reference import ReferenceEvaluator
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return ReferenceEvaluator(model).run(None, feeds)


def _close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if np.issubdtype(a.dtype, np.floating):
        return bool(np.allclose(a, b, rtol=1e-3, atol=1e-5, equal_nan=True))
    return bool(np.array_equal(a, b))


def _other_sample(arr, rng):
    """A random sample like arr: its values shuffled (so indices stay in range, signs and domains
    stay valid), floats also scaled by factors in [0.5, 1.5]."""
    out = rng.permutation(np.array(arr).reshape(-1)).reshape(arr.shape)
    if np.issubdtype(arr.dtype, np.floating):
        out = (out * rng.uniform(0.5, 1.5, size=arr.shape)).astype(arr.dtype)
    return out


def _batched_model(model, batched, n):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    for vi in [vi for vi in m.graph.input if vi.name in batched] + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_value = n
    return m


def batch_case(model, inputs, outputs, seed):
    """Decides whether the test's model maps each sample to its own rows along axis 0, from the
    model and the data alone (never from our runtime), and builds a batch around the test's data.

    inputs/outputs: the test's arrays in graph order (outputs: ONNX's expected ones). Every output
    must have a common size N0 on axis 0; the inputs with N0 on axis 0 are the candidates for
    batching (the others, weights, scales, shapes, stay as they are). BATCH_SAMPLES samples are
    stacked (random ones around the original, see _stack) and ONNX's reference evaluator runs the
    model rewritten for the batch: the batching is kept when each output has BATCH_SAMPLES*N0 on
    axis 0 and the original's rows equal the test's expected outputs (rtol 1e-3, atol 1e-5; random
    other samples change any output that mixes samples by far more). All candidates are tried
    together first, then each one alone.

    Returns ((indices of the batched inputs, N0, the batched inputs), None) or (None, reason to skip)."""
    if not outputs:
        return None, "no outputs"
    if any(o.ndim == 0 for o in outputs):
        return None, "an output is a scalar (no axis 0)"
    n0 = outputs[0].shape[0]
    if n0 == 0 or any(o.shape[0] != n0 for o in outputs):
        return None, "the outputs have no common axis 0 size"
    inits = {i.name for i in model.graph.initializer}
    names = [vi.name for vi in model.graph.input if vi.name not in inits]
    cand = [i for i, a in enumerate(inputs) if a.ndim >= 1 and a.shape[0] == n0]
    if not cand:
        return None, "no input has the outputs' axis 0 size (the op changes axis 0)"
    stacked = _stack(inputs, cand, BATCH_SAMPLES, np.random.default_rng(seed))
    n, at = n0 * BATCH_SAMPLES, n0 * (BATCH_SAMPLES // 2)
    reason = None
    for subset in [cand] + ([[i] for i in cand] if len(cand) > 1 else []):
        b_inputs = [stacked[i] if i in subset else a for i, a in enumerate(inputs)]
        b_model = _batched_model(model, {names[i] for i in subset}, n)
        try:
            got = _reference_run(b_model, dict(zip(names, b_inputs)))
        except Exception as e:  # noqa: BLE001
            reason = reason or f"the reference evaluator rejects the batched model ({type(e).__name__})"
            continue
        if any(np.ndim(g) == 0 or np.shape(g)[0] != n for g in got):
            reason = reason or "an output's axis 0 does not grow with the batch (shape-fixing input or op)"
            continue
        if not all(_close(g[at:at + n0], e) for g, e in zip(got, outputs)):
            reason = reason or "the reference mixes samples along axis 0"
            continue
        return (subset, n0, b_inputs), None
    return None, reason


def _reference_mixes(model, names, subset, n, b_inputs, at, expected):
    """Whether ONNX's reference evaluator, run on a batch, gives the original's rows other than its
    expected outputs: an op whose result depends on the row index along axis 0 (Trilu of a matrix
    with |k| beyond the small batch's rows) passes batch_case's small batch yet mixes in a large
    one. Asked only when our rows differ, so that such a test is left out rather than failed."""
    try:
        got = _reference_run(_batched_model(model, {names[i] for i in subset}, n), dict(zip(names, b_inputs)))
    except Exception:  # noqa: BLE001
        return False
    n0 = expected[0].shape[0]
    return not all(np.shape(g)[0] == n and _close(g[at:at + n0], e) for g, e in zip(got, expected))


def _stack(inputs, subset, samples, rng):
    """The inputs with those in subset stacked along axis 0 from `samples` samples: the original
    at position samples // 2, random ones (_other_sample) around it."""
    mid = samples // 2
    return [np.concatenate([*[_other_sample(a, rng) for _ in range(mid)], a,
                            *[_other_sample(a, rng) for _ in range(samples - 1 - mid)]]) if i in subset else a
            for i, a in enumerate(inputs)]


def batch_check(binary, model_path, inputs, expected, single_outputs, output_files, seed, tmp):
    """('equal' | 'differ' | 'skipped', reason) for one data set. expected: ONNX's outputs (for
    batch_case); single_outputs: ours, alone at 1 thread. Runs the small batch batch_case built at
    BATCH_THREADS with every loop spread over the threads, and a large one (LARGE_ELEMENTS) at
    LARGE_THREADS at the runtime's default threshold."""
    model = onnx.load(model_path, load_external_data=False)
    case, why = batch_case(model, inputs, expected, seed)
    if case is None:
        return "skipped", why
    subset, n0, small_inputs = case
    names = [vi.name for vi in model.graph.input if vi.name not in {i.name for i in model.graph.initializer}]
    per_sample = max([int(inputs[i].size) for i in subset] + [int(o.size) for o in single_outputs] + [1])
    large = min(LARGE_MAX_SAMPLES, max(BATCH_SAMPLES + 1, -(-LARGE_ELEMENTS // per_sample)))
    for samples, threads in ((BATCH_SAMPLES, BATCH_THREADS), (large, LARGE_THREADS)):
        n, at = samples * n0, (samples // 2) * n0
        label = f"in a batch of {n}"
        b_inputs = small_inputs if samples == BATCH_SAMPLES else \
            _stack(inputs, subset, samples, np.random.default_rng(seed + 1))
        mp = os.path.join(tmp, f"batched_{samples}.onnx")
        with open(mp, "wb") as f:
            f.write(_batched_model(model, {names[i] for i in subset}, n).SerializeToString())
        paths = []
        for k, a in enumerate(b_inputs):
            paths.append(os.path.join(tmp, f"batched_{samples}_input_{k}.pb"))
            with open(paths[-1], "wb") as f:
                f.write(numpy_helper.from_array(a).SerializeToString())
        for t in threads:
            od = os.path.join(tmp, f"batched_{samples}_t{t}")
            rc, msg = infer(binary, mp, paths, od, t, spread=samples == BATCH_SAMPLES)
            if rc != 0:
                return "differ", f"{label}, {t} threads: exit {rc}: {msg}"
            got, why = read_outputs(od, output_files)
            if got is None:
                return "differ", f"{label}, {t} threads: {why}"
            for f, g, s in zip(output_files, got, single_outputs):
                why = bitwise_diff(s, g[at:at + n0]) if g.ndim and g.shape[0] == n else \
                    f"shape {list(g.shape)}, expected {n} on axis 0"
                if why:
                    if samples != BATCH_SAMPLES and _reference_mixes(model, names, subset, n, b_inputs, at, expected):
                        return "skipped", "the reference mixes samples along axis 0 in the large batch"
                    return "differ", f"{f} (rows {at}..{at + n0 - 1}) {label}, {t} threads: {why}"
    return "equal", f"batches of {BATCH_SAMPLES * n0} and {large * n0}"


# ---- one test ---------------------------------------------------------------------------------

def run_one(binary, tests_dir, name, threads=(1,), batch=False):
    """Runs one node test: conformance at threads[0], then the thread and batch sweeps."""
    d = os.path.join(tests_dir, name)
    if not os.path.exists(os.path.join(d, "model.onnx")):
        return Result("failed", f"no such node test in {tests_dir}")
    sets = sorted(s for s in os.listdir(d) if s.startswith("test_data_set_"))
    res = Result("passed")
    thread_diffs, batch_results = [], []
    for s in sets:
        ds = os.path.join(d, s)
        inputs, outputs = data_files(ds, "input"), data_files(ds, "output")
        input_paths = [os.path.join(ds, f) for f in inputs]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, f"t{threads[0]}")
            rc, msg = infer(binary, os.path.join(d, "model.onnx"), input_paths, out, threads[0])
            if rc == 3:
                return Result("skipped", msg)
            if rc != 0:
                return Result("failed", f"exit {rc}: {msg}")
            ours, why = read_outputs(out, outputs)
            if ours is None:
                return Result("failed", why)
            expected = [read_tensor(os.path.join(ds, f)) for f in outputs]
            for f, exp, got in zip(outputs, expected, ours):
                why = compare(exp, got)
                if why:
                    return Result("failed", f"{s}/{f}: {why}")
            for t in threads[1:]:
                rc, msg = infer(binary, os.path.join(d, "model.onnx"), input_paths, os.path.join(tmp, f"t{t}"), t,
                                spread=True)
                other, why = read_outputs(os.path.join(tmp, f"t{t}"), outputs) if rc == 0 else (None, f"exit {rc}: {msg}")
                if other is None:
                    thread_diffs.append(f"{s}, {t} threads: {why}")
                    continue
                for f, a, b in zip(outputs, ours, other):
                    why = bitwise_diff(a, b)
                    if why:
                        thread_diffs.append(f"{s}/{f}, {t} vs {threads[0]} threads: {why}")
            if batch:
                try:
                    arrays = [read_tensor(p) for p in input_paths]
                except (ValueError, TypeError) as e:
                    batch_results.append(("skipped", f"an input is not a tensor ({e})"))
                else:
                    batch_results.append(batch_check(binary, os.path.join(d, "model.onnx"), arrays, expected, ours, outputs,
                                                     zlib.crc32(f"{name}/{s}".encode()), tmp))
    if len(threads) > 1:
        res.threads, res.threads_reason = ("differ", "; ".join(thread_diffs)) if thread_diffs else ("equal", "")
    if batch:
        statuses = [st for st, _ in batch_results]
        for kind in ("differ", "equal", "skipped"):
            if kind in statuses:
                res.batch = kind
                res.batch_reason = next(r for st, r in batch_results if st == kind)
                break
    return res


# ---- the set --------------------------------------------------------------------------------

def load_skips(path):
    skips = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                name, _, reason = line.partition("\t")
                skips[name] = reason
    return skips


def load_expected(path):
    with open(path) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def write_expected(path, results):
    names = sorted(n for n, r in results.items() if r.status == "passed")
    with open(path, "w") as f:
        f.write("# ONNX node tests that must pass through scm-infer (tools/conformance.py fails on any test that leaves\n"
                "# this set and on a passing test missing from it). Regenerate: tools/conformance.py --write-expected\n")
        f.writelines(n + "\n" for n in names)
    return len(names)


def run(binary, tests_dir, skips_file=None, jobs=None, expected_file=None, threads=(1,), batch=False, also=()):
    """{test name: Result} over the candidates: the tests whose ops scm-infer lists, plus every test
    named in the skips and expected files and in `also` (so a test cannot leave the run because the
    binary stopped listing its op: it runs, fails to compile and is reported)."""
    documented = load_skips(skips_file) if skips_file else {}
    expected = load_expected(expected_file) if expected_file else set()
    names = sorted(set(candidates(tests_dir, supported_ops(binary))) | set(documented) | expected | set(also))
    with concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count()) as ex:
        results = dict(zip(names, ex.map(lambda n: run_one(binary, tests_dir, n, threads, batch), names)))
    sf = os.path.basename(skips_file) if skips_file else ""
    ef = os.path.basename(expected_file) if expected_file else ""
    for name, r in results.items():
        if name in expected and name in documented:
            r.status, r.reason = "failed", f"listed both in {ef} and in {sf}"
        elif name in expected:
            if r.status == "skipped":
                r.status, r.reason = "failed", f"in {ef} but skipped: {r.reason}"
            elif r.status == "failed":
                r.reason = f"in {ef} but failed: {r.reason}"
        elif name in documented:
            if r.status == "passed":
                r.status, r.reason = "failed", f"listed as skipped in {sf} but now passes: remove it"
            elif r.status == "failed":
                r.reason = f"listed as skipped in {sf} but fails instead: {r.reason}"
        elif r.status == "skipped" and skips_file:
            r.status, r.reason = "failed", f"skipped but not documented in {sf}: {r.reason}"
        elif r.status == "passed" and expected_file:
            r.status, r.reason = "failed", f"passes but is not in {ef}: add it (tools/conformance.py --write-expected)"
    return results


def report(results):
    """(counts, text): counts of the conformance statuses and of the sweeps' outcomes
    (threads_equal, threads_differ, batch_equal, batch_differ, batch_skipped)."""
    counts = {k: sum(1 for r in results.values() if r.status == k) for k in ("passed", "failed", "skipped")}
    for sweep in ("threads", "batch"):
        for k in ("equal", "differ", "skipped"):
            counts[f"{sweep}_{k}"] = sum(1 for r in results.values() if getattr(r, sweep) == k)
    lines = [f"conformance: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"]
    if counts["threads_equal"] + counts["threads_differ"]:
        lines.append(f"threads: {counts['threads_equal']} tests bitwise equal at every thread count, "
                     f"{counts['threads_differ']} differ")
    if counts["batch_equal"] + counts["batch_differ"] + counts["batch_skipped"]:
        lines.append(f"batch: {counts['batch_equal']} tests bitwise equal alone and in a small and a large batch at "
                     f"{' and '.join(map(str, BATCH_THREADS))} threads, {counts['batch_differ']} differ, "
                     f"{counts['batch_skipped']} not batched")
    for kind in ("failed", "skipped"):
        for name, r in sorted(results.items()):
            if r.status == kind:
                lines.append(f"  {kind}: {name}: {r.reason}")
    for name, r in sorted(results.items()):
        if r.threads == "differ":
            lines.append(f"  thread variance: {name}: {r.threads_reason}")
    for name, r in sorted(results.items()):
        if r.batch == "differ":
            lines.append(f"  batch variance: {name}: {r.batch_reason}")
    return counts, "\n".join(lines)


def batch_summary(results, tests_dir):
    """Which ops the batch check covers and which tests it leaves out, by reason."""
    covered, skipped = collections.Counter(), collections.defaultdict(collections.Counter)
    for name, r in results.items():
        if r.batch == "equal" or r.batch == "differ":
            covered.update(model_ops(tests_dir, name))
        elif r.batch == "skipped":
            skipped[r.batch_reason].update([name])
    lines = [f"batch check covers {sum(1 for r in results.values() if r.batch in ('equal', 'differ'))} tests; "
             f"ops (tests): " + ", ".join(f"{op} ({n})" for op, n in sorted(covered.items()))]
    for reason, names in sorted(skipped.items(), key=lambda kv: -sum(kv[1].values())):
        lines.append(f"  not batched, {sum(names.values())} tests: {reason}: " + ", ".join(sorted(names)))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=DEBUG)
    ap.add_argument("--tests", default=NODE_TESTS)
    ap.add_argument("--skips", default=SKIPS)
    ap.add_argument("--expected", default=EXPECTED)
    ap.add_argument("--write-expected", action="store_true",
                    help="rewrite the expected set with the tests that pass (no thread or batch sweep)")
    ap.add_argument("--threads", default="1,2,3", help="thread counts; the first is compared with ONNX's outputs")
    ap.add_argument("--no-batch", action="store_true", help="leave out the batch-invariance check")
    ap.add_argument("--batch-summary", action="store_true", help="print the ops and tests the batch check covers")
    ap.add_argument("-j", type=int, default=None)
    a = ap.parse_args()
    binary = os.path.join(a.bin, "scm-infer")
    skips = a.skips if os.path.exists(a.skips) else None
    if a.write_expected:
        results = run(binary, a.tests, skips, a.j, also=load_expected(a.expected) if os.path.exists(a.expected) else ())
        n = write_expected(a.expected, results)
        counts, text = report(results)
        print(text)
        print(f"wrote {n} tests to {a.expected}")
        return 1 if counts["failed"] else 0
    threads = tuple(int(t) for t in a.threads.split(","))
    results = run(binary, a.tests, skips, a.j, a.expected if os.path.exists(a.expected) else None,
                  threads, not a.no_batch)
    counts, text = report(results)
    print(text)
    if a.batch_summary and not a.no_batch:
        print(batch_summary(results, a.tests))
    return 1 if counts["failed"] or counts["threads_differ"] or counts["batch_differ"] else 0


if __name__ == "__main__":
    sys.exit(main())
