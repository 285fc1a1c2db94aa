#!/usr/bin/env python3
"""Load test of scm-serve on loopback (`make load-test`): wrk at 1, 8 and 64 concurrent clients,
each request one 2-step sample of the shipped Fashion-MNIST model with its own seed; then 64
clients with batching off; then `scm-run` alone at batch 64 on the same machine. Prints a
Markdown table: requests/s, images/s, latency p50/p99, errors (non-2xx and socket errors), the
server's RSS before and after. Bounded: each row runs for its --seconds and stops by itself.

    tools/load_test.py [--seconds 20] [--long 60] [--threads 2] [--count 1] [--baseline SCM_SERVE --rounds 3]

With --baseline (another scm-serve binary, a previous build say), both binaries run the table
in alternation, --rounds times, and the medians and their ratios are printed.

wrk comes from Debian (installed here when missing).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from scmtools import paths

SERVE = paths.SERVE
RUN = paths.binary("scm-run", paths.RELEASE)
MODEL = os.path.join(paths.MODELS, "fashion-sct.onnx")

LUA = """
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  counter = id * 100000000
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/v1/samples", {["Content-Type"] = "application/json"},
    string.format('{"model": "fashion-sct", "steps": 2, "count": %d, "seed": %d, "format": "npy"}', COUNT, counter))
end
"""


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    v, u = float(m.group(1)), m.group(2)
    return v * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[u]


def wrk(url, clients, seconds, script):
    r = subprocess.run(["wrk", "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{seconds}s", "--latency",
                        "--timeout", "30s", "-s", script, url], capture_output=True, text=True, timeout=seconds + 60)
    out = r.stdout
    if r.returncode != 0:
        sys.exit(f"load_test: wrk failed:\n{out}\n{r.stderr}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    sock = sum(int(x) for x in m.groups()) if (m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)) else 0
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50": ms(lat["50"]), "p99": ms(lat["99"]), "errors": non2xx + sock, "requests": total}


def start(serve, flags, work):
    port_file = os.path.join(work, "port")
    if os.path.exists(port_file):
        os.remove(port_file)
    log = open(os.path.join(work, "serve.log"), "a")
    p = subprocess.Popen([serve, "--models", MODEL, "--port", "0", "--port-file", port_file, "--steps", "2",
                          "--precisions", "fp32", "--log-level", "warning", *flags], stdout=log, stderr=subprocess.STDOUT)
    t0 = time.time()
    while not os.path.exists(port_file):
        if p.poll() is not None or time.time() - t0 > 120:
            sys.exit("load_test: the server did not start (see " + log.name + ")")
        time.sleep(0.05)
    return p, f"http://127.0.0.1:{int(open(port_file).read())}"


def stop(p):
    p.send_signal(signal.SIGTERM)
    return p.wait(60)


def table(serve, label, args, work, script):
    """The rows of one run of the table with the binary `serve`."""
    rows = []
    for batching in (True, False):
        flags = ["--threads", str(args.threads), "--max-batch", "64", "--batch-wait-ms", "5", "--queue-limit", "4096"]
        if not batching:
            flags.append("--no-batching")
        p, url = start(serve, flags, work)
        before = rss_mib(p.pid)
        for clients in ((1, 8, 64) if batching else (64,)):
            w = wrk(url, clients, args.long if clients == 64 else args.seconds, script)
            w.update(clients=clients, batching=batching, rss_before=before, rss_after=rss_mib(p.pid),
                     seconds=args.long if clients == 64 else args.seconds)
            rows.append(w)
            print(f"  {label}: {clients} clients, "
                  f"batching {'on' if batching else 'off'}: {w['rps']:.1f} req/s", file=sys.stderr)
        code = stop(p)
        if code != 0:
            sys.exit(f"load_test: the server exited {code} on SIGTERM")
    return rows


def median_rows(runs):
    """Row by row, the run with the median requests/s (each row's own median)."""
    out = []
    for i in range(len(runs[0])):
        by_rps = sorted((r[i] for r in runs), key=lambda w: w["rps"])
        out.append({**by_rps[len(by_rps) // 2], "range": (by_rps[0]["rps"], by_rps[-1]["rps"])})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20, help="per row at 1 and 8 clients")
    ap.add_argument("--long", type=int, default=60, help="per row at 64 clients")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--count", type=int, default=1, help="samples per request")
    ap.add_argument("--serve", default=SERVE, help="the scm-serve binary measured")
    ap.add_argument("--baseline", help="another scm-serve binary measured in the same run, in alternation")
    ap.add_argument("--rounds", type=int, default=1, help="runs of the table per binary (medians are printed)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    work = tempfile.mkdtemp(prefix="scm-load-")
    script = os.path.join(work, "post.lua")
    open(script, "w").write(LUA.replace("COUNT", str(args.count)))
    runs, baseline_runs = [], []
    for k in range(args.rounds):
        # Alternate which binary goes first, so that neither always runs on a warmer machine.
        order = [(args.serve, "this binary", runs), (args.baseline, "baseline", baseline_runs)]
        for serve, label, into in (order if k % 2 == 0 else order[::-1]):
            if serve:
                into.append(table(serve, label, args, work, script))
    rows = median_rows(runs)
    r = subprocess.run([RUN, MODEL, "--steps", "2", "--count", "4096", "--batch", "64", "--threads", str(args.threads), "--json"],
                       capture_output=True, text=True)
    alone = json.loads(r.stdout)["images_per_second"] if r.returncode == 0 else float("nan")
    print(f"| clients | batching | seconds | requests | requests/s | images/s | p50 ms | p99 ms | errors | RSS before -> after (MiB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for w in rows:
        print(f"| {w['clients']} | {'on' if w['batching'] else 'off'} | {w['seconds']} | {w['requests']} | {w['rps']:.1f} | "
              f"{w['rps'] * args.count:.1f} | {w['p50']:.1f} | {w['p99']:.1f} | {w['errors']} | "
              f"{w['rss_before']:.0f} -> {w['rss_after']:.0f} |")
    print(f"| scm-run alone, batch 64 | | | | | {alone:.1f} | | | | |")
    best = max(w["rps"] * args.count for w in rows if w["batching"] and w["clients"] == 64)
    print(f"\nbatching at 64 clients: {best:.1f} images/s = {best / alone:.2f} of scm-run's batch-64 figure")
    if baseline_runs:
        base = median_rows(baseline_runs)
        print(f"\n| clients | batching | requests/s (range), this binary | requests/s (range), baseline | ratio |")
        print("| --- | --- | --- | --- | --- |")
        for w, b in zip(rows, base):
            print(f"| {w['clients']} | {'on' if w['batching'] else 'off'} | {w['rps']:.1f} ({w['range'][0]:.1f}-{w['range'][1]:.1f}) | "
                  f"{b['rps']:.1f} ({b['range'][0]:.1f}-{b['range'][1]:.1f}) | {w['rps'] / b['rps']:.2f} |")
        print(f"\nmedians of {args.rounds} rounds each, the binaries in alternation")


if __name__ == "__main__":
    main()
