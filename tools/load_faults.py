#!/usr/bin/env python3
"""Fault phases of the load test (`make load-test`, after the load table): scm-serve on loopback
through three bounded phases, each of --seconds (20 by default):

  1. 1,000 idle connections and 200 slowloris clients (a byte of a request head every second)
     beside 8 normal clients;
  2. the server restarted at `ulimit -n 256`, 8 normal clients (a request every 0.25 s), then
     300 half-open requests (a head cut short; each reopened a second after the server closes it);
  3. 64 clients spread over 12 (model, steps, precision) queues, asking for 64 samples each.

A probe asks /healthz every 50 ms throughout. Prints one row per phase and checks the bars:
/healthz p99 < 100 ms; in phase 2, the server's CPU beyond the normal clients' work (their CPU
per request, measured before the half-open requests came) < 10% of a core; idle connections
closed within the idle timeout, slowloris clients within the header timeout; no response later
than its deadline plus one batch time; no 5xx but the deadline's 503s; RSS bounded. Exits 1 when
a bar is missed.

    tools/load_faults.py [--seconds 20] [--serve PATH]
"""
import argparse
import http.client
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from load_test import rss_mib
from scmtools import paths

MODELS = [os.path.join(paths.MODELS, m) for m in ("fashion-sct.onnx", "fashion-scd.onnx", "checkerboard-sct.onnx")]
IDLE_TIMEOUT, HEADER_TIMEOUT, DEADLINE = 5, 10, 10
HEAD = b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"


class Server:
    """scm-serve on a free loopback port, optionally under a descriptor limit."""

    def __init__(self, serve, flags, nofile=None):
        self.dir = tempfile.mkdtemp(prefix="scm-faults-")
        port_file = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "serve.log"), "w")
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        self.proc = subprocess.Popen([serve, "--port", "0", "--port-file", port_file, "--log-level", "warning", *map(str, flags)],
                                     stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limit)
        t0 = time.time()
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() - t0 > 300:
                sys.exit(f"load_faults: the server did not start (see {self.log.name})")
            time.sleep(0.05)
        self.port = int(open(port_file).read())
        self.peak_rss = self.rss()
        self.start_rss = self.peak_rss

    def rss(self):
        return rss_mib(self.proc.pid)

    def cpu(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        if code != 0:
            sys.exit(f"load_faults: the server exited {code} on SIGTERM (see {self.log.name})")


class Probe(threading.Thread):
    """/healthz every 50 ms on a new connection; latencies in ms (a failure counts as 5000)."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.latencies, self.failures, self.running = server, [], 0, True

    def run(self):
        while self.running:
            t0 = time.perf_counter()
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
                c.request("GET", "/healthz")
                ok = c.getresponse().status == 200
                c.close()
            except OSError:
                ok = False
            self.latencies.append((time.perf_counter() - t0) * 1000 if ok else 5000.0)
            self.failures += not ok
            self.server.peak_rss = max(self.server.peak_rss, self.server.rss())
            time.sleep(0.05)


class Client(threading.Thread):
    """A normal client on one keep-alive connection: requests until stopped, each recorded as
    (status, seconds, the seconds its batch ran)."""

    def __init__(self, server, body, pause=0.0):
        super().__init__(daemon=True)
        self.server, self.body, self.pause = server, body, pause
        self.results, self.running, self.seed = [], True, 0

    def run(self):
        c = None
        while self.running:
            self.seed += 1
            body = json.dumps({**self.body, "seed": self.seed, "format": "npy"})
            t0 = time.time()
            try:
                c = c or http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
                c.request("POST", "/v1/samples", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                status, ran = r.status, float(r.getheader("X-SCM-Batch-Ms", "0")) / 1000
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = None
            except OSError:
                status, ran, c = 0, 0.0, None
            self.results.append((status, time.time() - t0, ran))
            if self.pause:
                time.sleep(self.pause)


class Sockets(threading.Thread):
    """Raw connections that idle, dribble a head (slowloris) or stop half-way (half-open); each
    one's lifetime until the server closes it is recorded. `reopen`: a closed one comes back a
    second later."""

    def __init__(self, server, count, kind, reopen=False):
        super().__init__(daemon=True)
        self.server, self.count, self.kind, self.reopen = server, count, kind, reopen
        self.lifetimes, self.running, self.failed = [], True, 0
        self.selector = selectors.DefaultSelector()
        self.open_at, self.sent = {}, {}

    def connect(self):
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", self.server.port))
        except OSError:
            self.failed += 1
            s.close()
            return
        s.setblocking(False)
        sent = {"idle": 0, "slowloris": 1, "half-open": 40}[self.kind]
        s.send(HEAD[:sent])
        self.open_at[s], self.sent[s] = time.time(), sent
        self.selector.register(s, selectors.EVENT_READ)

    def run(self):
        for _ in range(self.count):
            self.connect()
        pending, last_drip = [], time.time()
        while self.running:
            for key, _ in self.selector.select(timeout=0.1):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self.lifetimes.append(time.time() - self.open_at.pop(s))
                    self.selector.unregister(s)
                    s.close()
                    if self.reopen:
                        pending.append(time.time() + 1)
            if self.kind == "slowloris" and time.time() - last_drip >= 1:
                last_drip = time.time()
                for s in list(self.open_at):
                    try:
                        s.send(HEAD[self.sent[s] % len(HEAD):][:1])
                        self.sent[s] += 1
                    except OSError:
                        pass
            while pending and pending[0] <= time.time():
                pending.pop(0)
                self.connect()
        for s in list(self.open_at):
            s.close()

    def still_open(self):
        return len(self.open_at)


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def responses(clients):
    return [r for c in clients for r in c.results]


def check(row, name, ok, detail):
    row["bars"].append((name, ok, detail))


def phase_idle_and_slowloris(serve, seconds):
    server = Server(serve, ["--models", MODELS[0], "--steps", "2", "--precisions", "fp32", "--idle-timeout", IDLE_TIMEOUT,
                            "--header-timeout", HEADER_TIMEOUT, "--deadline", DEADLINE, "--max-connections", 2048], nofile=4096)
    probe = Probe(server)
    clients = [Client(server, {"model": "fashion-sct", "steps": 2, "count": 1}) for _ in range(8)]
    for t in [probe, *clients]:
        t.start()
    time.sleep(1)
    idle, slow = Sockets(server, 1000, "idle"), Sockets(server, 200, "slowloris")
    idle.start()
    slow.start()
    time.sleep(seconds - 1)
    return server, probe, clients, [idle, slow], {}


def phase_descriptor_limit(serve, seconds):
    server = Server(serve, ["--models", MODELS[0], "--steps", "2", "--precisions", "fp32", "--idle-timeout", IDLE_TIMEOUT,
                            "--header-timeout", HEADER_TIMEOUT, "--deadline", DEADLINE], nofile=256)
    probe = Probe(server)
    clients = [Client(server, {"model": "fashion-sct", "steps": 2, "count": 1}, pause=0.25) for _ in range(8)]
    for t in [probe, *clients]:
        t.start()
    time.sleep(1)
    base = seconds // 4
    cpu0, n0 = server.cpu(), len(responses(clients))
    time.sleep(base)
    cpu1, n1 = server.cpu(), len(responses(clients))
    per_request = (cpu1 - cpu0) / max(1, n1 - n0)
    half = Sockets(server, 300, "half-open", reopen=True)
    half.start()
    time.sleep(1)
    cpu2, n2, t2 = server.cpu(), len(responses(clients)), time.time()
    time.sleep(seconds - base - 2)
    extra = (server.cpu() - cpu2 - (len(responses(clients)) - n2) * per_request) / (time.time() - t2)
    return server, probe, clients, [half], {"extra_cpu": extra, "per_request_ms": per_request * 1000}


def phase_many_queues(serve, seconds):
    server = Server(serve, ["--models", *MODELS, "--steps", "1,2", "--precisions", "fp32,bf16", "--max-count", 64,
                            "--deadline", DEADLINE])
    names = [os.path.basename(m)[:-5] for m in MODELS]
    queues = [(m, s, p) for m in names for s in (1, 2) for p in ("fp32", "bf16")]
    probe = Probe(server)
    clients = [Client(server, {"model": m, "steps": s, "precision": p, "count": 64}) for i in range(64)
               for (m, s, p) in [queues[i % len(queues)]]]
    for t in [probe, *clients]:
        t.start()
    time.sleep(seconds)
    return server, probe, clients, [], {}


def finish(name, result):
    server, probe, clients, sockets, extra = result
    for t in [probe, *clients, *sockets]:
        t.running = False
    for t in [*clients, *sockets]:
        t.join(150)
    probe.join(10)
    server.peak_rss = max(server.peak_rss, server.rss())
    server.stop()
    rs = responses(clients)
    statuses = {}
    for status, _, _ in rs:
        statuses[status] = statuses.get(status, 0) + 1
    row = {"phase": name, "probe_p50": percentile(probe.latencies, 0.5), "probe_p99": percentile(probe.latencies, 0.99),
           "probes": len(probe.latencies), "statuses": statuses, "rss": (server.start_rss, server.peak_rss),
           "latest": max((s for _, s, _ in rs), default=0.0), "bars": [], **extra}
    # Each response against its deadline plus the time its own batch ran (X-SCM-Batch-Ms).
    late = max((s - DEADLINE - ran for _, s, ran in rs), default=-DEADLINE)
    check(row, "/healthz p99 < 100 ms", row["probe_p99"] < 100, f"{row['probe_p99']:.1f} ms over {len(probe.latencies)} probes")
    bad = {s: n for s, n in statuses.items() if (s >= 500 and s != 503) or s == 0}
    check(row, "no 5xx but the deadline's 503s", not bad, f"statuses {dict(sorted(statuses.items()))}")
    check(row, "no response later than its deadline + its batch's time", late <= 0.1,
          f"latest {row['latest']:.2f} s; at most {late:+.2f} s past deadline + batch time (0.1 s allowed for HTTP)")
    check(row, "RSS bounded (peak < 2x start + 256 MiB)", server.peak_rss < 2 * server.start_rss + 256,
          f"{server.start_rss:.0f} -> {server.peak_rss:.0f} MiB")
    for s in sockets:
        limit = {"idle": IDLE_TIMEOUT, "slowloris": HEADER_TIMEOUT, "half-open": IDLE_TIMEOUT}[s.kind] + 1.0
        longest = max(s.lifetimes, default=0.0)
        check(row, f"{s.kind} connections closed within {limit - 1:.0f} s", longest <= limit and (s.kind == "half-open" or s.still_open() == 0),
              f"{len(s.lifetimes)} closed, longest {longest:.2f} s, {s.still_open()} still open, {s.failed} failed to connect")
    if "extra_cpu" in extra:
        check(row, "CPU beyond the normal clients' work < 10% of a core", extra["extra_cpu"] < 0.10,
              f"{extra['extra_cpu'] * 100:.1f}% (normal work {extra['per_request_ms']:.1f} ms CPU per request)")
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20, help="per phase")
    ap.add_argument("--serve", default=paths.SERVE, help="the scm-serve binary")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    rows = []
    for name, phase in (("1: 1,000 idle + 200 slowloris + 8 clients", phase_idle_and_slowloris),
                        ("2: ulimit -n 256, 300 half-open + 8 clients", phase_descriptor_limit),
                        ("3: 64 clients over 12 queues, 64 samples each", phase_many_queues)):
        print(f"  phase {name} ...", file=sys.stderr)
        rows.append(finish(name, phase(args.serve, args.seconds)))
    print("| phase | /healthz p50 / p99 ms | responses by status | latest s | RSS MiB |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['phase']} | {r['probe_p50']:.1f} / {r['probe_p99']:.1f} | {dict(sorted(r['statuses'].items()))} | "
              f"{r['latest']:.2f} | {r['rss'][0]:.0f} -> {r['rss'][1]:.0f} |")
    missed = 0
    print()
    for r in rows:
        for name, ok, detail in r["bars"]:
            print(f"- phase {r['phase'][0]}: {name}: {'met' if ok else 'MISSED'} ({detail})")
            missed += not ok
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
