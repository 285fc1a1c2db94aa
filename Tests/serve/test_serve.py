"""scm-serve end to end (`make serve-check`, part of `make test`): the server on a free loopback
port, its endpoints, responses bitwise equal to `scm-run` alone and coalesced, the 400/413/429/503
paths, and a graceful SIGTERM that answers the request in flight and exits 0."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")))
from scmtools import paths  # noqa: E402  (tools/scmtools: the repository's paths, shared with tools/ and the other tests)

ROOT = paths.ROOT
SERVE = os.environ.get("SCM_SERVE", paths.SERVE)
RUN = paths.binary("scm-run", paths.RELEASE)
FASHION = os.path.join(paths.MODELS, "fashion-sct.onnx")
TINY = os.path.join(paths.MODELS, "tiny-trigflow.onnx")


class Server:
    def __init__(self, *flags, models=(FASHION, TINY), threads=2, steps="1,2", nofile=None):
        """`nofile`: the server's descriptor limit (ulimit -n)."""
        self.dir = tempfile.mkdtemp(prefix="scm-serve-")
        port_file = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        import resource
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        self.proc = subprocess.Popen([SERVE, "--models", *models, "--port", "0", "--port-file", port_file, "--threads", str(threads),
                                      "--steps", steps, *map(str, flags)], stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=limit)
        deadline = time.time() + 120
        while not os.path.exists(port_file):
            assert self.proc.poll() is None, self.output()
            assert time.time() < deadline, "the server did not start in 120 s"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(open(port_file).read())}"

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def request(self, path, body=None, raw=None, timeout=60):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def server():
    s = Server("--batch-wait-ms", 300)
    yield s
    s.stop()


def scm_run(tmp_path, *args):
    out = str(tmp_path / "ref")
    flag = "--npy" if "npy" in args else "--out"
    args = [a for a in args if a != "npy"]
    r = subprocess.run([RUN, FASHION, *map(str, args), flag, out + (".npy" if flag == "--npy" else ".png")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return open(out + (".npy" if flag == "--npy" else ".png"), "rb").read()


def test_health_models_metrics(server):
    status, _, body = server.request("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = server.request("/v1/models")
    models = {m["name"]: m for m in json.loads(body)["models"]}
    assert set(models) == {"fashion-sct", "tiny-trigflow"}
    f = models["fashion-sct"]
    assert f["sample_shape"] == [1, 28, 28] and f["sigma_data"] == 0.5 and f["steps"] == [1, 2]
    assert f["parameterization"] == "consistency" and f["data_range"] == [-1, 1] and "2" in f["schedules"]
    status, headers, body = server.request("/metrics")
    assert status == 200 and b"scm_samples_total" in body
    assert server.request("/nowhere")[0] == 404


def test_alone_is_scm_run(server, tmp_path):
    status, headers, png = server.request("/v1/samples", {"model": "fashion-sct", "steps": 2, "count": 8, "seed": 5})
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert png == scm_run(tmp_path, "--steps", 2, "--count", 8, "--seed", 5)
    status, headers, npy = server.request("/v1/samples", {"model": "fashion-sct", "steps": 1, "count": 3, "seed": 9, "format": "npy"})
    assert status == 200 and npy == scm_run(tmp_path, "--steps", 1, "--count", 3, "--seed", 9, "npy")


def test_coalesced_requests_are_each_scm_run(server, tmp_path):
    """Six concurrent requests (different seeds and counts) within the 300 ms wait: one batch, and
    each response bitwise what scm-run writes for the request alone."""
    asks = [(s, c) for s, c in [(1, 3), (2, 1), (3, 7), (4, 2), (1 << 40, 5), (6, 4)]]
    results = {}

    def go(seed, count):
        results[(seed, count)] = server.request("/v1/samples", {"model": "fashion-sct", "steps": 2, "count": count, "seed": seed})

    threads = [threading.Thread(target=go, args=a) for a in asks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    coalesced = 0
    for (seed, count), (status, headers, png) in results.items():
        assert status == 200, png
        coalesced = max(coalesced, int(headers["X-SCM-Batch-Requests"]))
        assert png == scm_run(tmp_path, "--steps", 2, "--count", count, "--seed", seed), (seed, count)
    assert coalesced >= 2, "no two requests shared a batch"


@pytest.mark.parametrize("body,field", [
    (b'{"model": "fashion-sct", "steps": ', "body"),
    (b'[1, 2]', "body"),
    (b'{"model": "nope"}', "model"),
    (b'{"steps": 2}', "model"),
    (b'{"model": "fashion-sct", "steps": 4}', "steps"),
    (b'{"model": "fashion-sct", "steps": "two"}', "steps"),
    (b'{"model": "fashion-sct", "count": 0}', "count"),
    (b'{"model": "fashion-sct", "count": 100000}', "count"),
    (b'{"model": "fashion-sct", "count": 2.5}', "count"),
    (b'{"model": "fashion-sct", "count": true}', "count"),
    (b'{"model": "fashion-sct", "count": false}', "count"),
    (b'{"model": "fashion-sct", "count": null}', "count"),
    (b'{"model": "fashion-sct", "count": [1]}', "count"),
    (b'{"model": "fashion-sct", "count": 1e400}', "body"),
    (b'{"model": "fashion-sct", "count": ' + b"[" * 5000 + b"]" * 5000 + b"}", "body"),  # nesting past the parser's depth
    (b'{"model": "fashion-sct", "precision": 16}', "precision"),
    (b'{"model": "fashion-sct", "seed": -1}', "seed"),
    (b'{"model": "fashion-sct", "precision": "fp16"}', "precision"),
    (b'{"model": "fashion-sct", "format": "jpeg"}', "format"),
    (b'{"model": "fashion-sct", "nrow": 2, "format": "npy"}', "nrow"),
    (b'{"model": "fashion-sct", "colour": 1}', "colour"),
])
def test_bad_requests_name_the_field(server, body, field):
    status, headers, reply = server.request("/v1/samples", raw=body)
    assert status == 400, reply
    error = json.loads(reply)["error"]
    assert error["field"] == field and error["message"], error
    if b": true" in body or b": false" in body:
        assert "boolean" in error["message"], error  # a JSON boolean is not taken for 1 or 0


def test_body_too_large(server):
    status, _, reply = server.request("/v1/samples", raw=b'{"model": "fashion-sct", "pad": "' + b"x" * 40000 + b'"}')
    assert status == 413 and json.loads(reply)["error"]["field"] == "body"
    assert server.request("/healthz")[0] == 200


def test_queue_full_and_deadline():
    s = Server("--batch-wait-ms", 1500, "--queue-limit", 10, "--max-count", 10, "--deadline", 0.5)
    try:
        first = {}
        t = threading.Thread(target=lambda: first.setdefault("r", s.request("/v1/samples", {"model": "fashion-sct", "count": 8})))
        t.start()
        time.sleep(0.2)
        status, headers, reply = s.request("/v1/samples", {"model": "fashion-sct", "count": 4})
        assert status == 429 and headers.get("Retry-After") == "1", reply
        t.join()
        status, headers, reply = first["r"]
        # It waited 0.5 s for company that never came (the wait bound is 1.5 s): past its deadline.
        assert status == 503 and headers.get("Retry-After") == "1" and b"deadline" in reply, reply
        # Another model's queue is not this one's.
        assert s.request("/v1/samples", {"model": "tiny-trigflow", "format": "npy"}, timeout=10)[0] in (200, 503)
    finally:
        s.stop()
    assert s.proc.returncode == 0


def test_sigterm_answers_in_flight_and_exits_0(tmp_path):
    s = Server("--batch-wait-ms", 800)
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("r", s.request("/v1/samples", {"model": "fashion-sct", "count": 4, "seed": 2})))
    t.start()
    time.sleep(0.3)  # the request waits in its batch's 800 ms window
    s.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert s.proc.wait(30) == 0, s.output()
    status, _, png = got["r"]
    assert status == 200 and png == scm_run(tmp_path, "--steps", 2, "--count", 4, "--seed", 2)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(s.url + "/healthz", timeout=5)


def test_bad_flags_and_models():
    for flags, message in [(["--models", "/nonexistent"], "does not exist"),
                           (["--models", os.path.join(ROOT, "models", "fashion-classifier.onnx")], "scm.format"),
                           (["--models", FASHION, "--steps", "0"], "--steps"),
                           (["--models", FASHION, "--precisions", "fp16"], "--precisions"),
                           (["--models", FASHION, "--queue-limit", "1"], "--queue-limit")]:
        r = subprocess.run([SERVE, "--port", "0", *flags], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and message in r.stderr, (flags, r.returncode, r.stderr)


def test_folder_skips_other_models(tmp_path):
    """A --models folder may hold other models (the classifier): skipped and said at start; a folder
    with no TrigFlow model at all is refused."""
    import shutil
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(TINY, folder / "tiny-trigflow.onnx")
    shutil.copy(os.path.join(ROOT, "models", "fashion-classifier.onnx"), folder / "fashion-classifier.onnx")
    s = Server(models=(str(folder),))
    try:
        status, _, body = s.request("/v1/models")
        assert status == 200 and [m["name"] for m in json.loads(body)["models"]] == ["tiny-trigflow"]
    finally:
        s.stop()
    assert "skipped" in s.output() and "fashion-classifier.onnx" in s.output()
    os.remove(folder / "tiny-trigflow.onnx")
    r = subprocess.run([SERVE, "--port", "0", "--models", str(folder)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no TrigFlow models" in r.stderr, r.stderr


def test_multistep_model_is_served_at_its_own_count(tmp_path):
    """A multistep consistency model (`scm.segments 1.1`: two segments, so exactly 2 steps) is
    served at 2 steps only, beside a one-segment model served at all of --steps 1,2; 2 is its
    requests' default; 1 step gets a 400 naming `steps`; its answer is bitwise scm-run's; and a
    server whose --steps lacks its count does not start. The fixture is tiny-trigflow (random
    weights) with the multistep metadata: serving reads the contract, not what the weights learned."""
    import onnx
    m = onnx.load(TINY)
    keep = [(p.key, p.value) for p in m.metadata_props if not p.key.startswith("scm.schedule.")]
    del m.metadata_props[:]
    for k, v in keep + [("scm.segments", "1.1"), ("scm.schedule.2", "1.5645464,1.1")]:
        e = m.metadata_props.add()
        e.key, e.value = k, v
    path = str(tmp_path / "tiny-ms.onnx")
    onnx.save(m, path)
    s = Server(models=(FASHION, path))
    try:
        models = {d["name"]: d for d in json.loads(s.request("/v1/models")[2])["models"]}
        assert models["fashion-sct"]["steps"] == [1, 2] and models["tiny-ms"]["steps"] == [2], models
        assert list(models["tiny-ms"]["schedules"]) == ["2"]
        assert models["tiny-ms"]["schedules"]["2"] == pytest.approx([1.5645464, 1.1])
        status, _, reply = s.request("/v1/samples", {"model": "tiny-ms", "steps": 1})
        error = json.loads(reply)["error"]
        assert status == 400 and error["field"] == "steps" and "served: 2" in error["message"], (status, error)
        status, _, body = s.request("/v1/samples", {"model": "tiny-ms", "count": 3, "seed": 5, "format": "npy"})
        assert status == 200, body
        ref = str(tmp_path / "ref.npy")
        r = subprocess.run([RUN, path, "--count", "3", "--seed", "5", "--npy", ref], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert body == open(ref, "rb").read()
    finally:
        s.stop()
    r = subprocess.run([SERVE, "--port", "0", "--models", path, "--steps", "1,4"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--steps" in r.stderr and "exactly 2 steps" in r.stderr, r.stderr


def test_duplicate_keys_are_refused(server):
    """Strict JSON: a key given twice is a 400 naming it, not one of the two winning silently."""
    status, _, reply = server.request("/v1/samples", raw=b'{"model": "fashion-sct", "count": 1, "count": 2}')
    error = json.loads(reply)["error"]
    assert status == 400 and error["field"] == "count" and "twice" in error["message"], (status, error)


def test_seeds_over_the_whole_range(server, tmp_path):
    """Seeds are integers over 0 ... 2^64 - 1, read as integers (never through a Double, which
    would round 2^53 + 1): the answer is scm-run's for the same seed; 2^64 and fractions are 400s."""
    for seed in (2**64 - 1, 2**53 + 1):
        status, _, npy = server.request("/v1/samples", raw=b'{"model": "fashion-sct", "steps": 1, "count": 2, "format": "npy", "seed": %d}' % seed)
        assert status == 200, npy
        assert npy == scm_run(tmp_path, "--steps", 1, "--count", 2, "--seed", seed, "npy"), seed
    for seed in (b"18446744073709551616", b"1.5", b"-1"):
        status, _, reply = server.request("/v1/samples", raw=b'{"model": "fashion-sct", "seed": ' + seed + b"}")
        assert status == 400 and json.loads(reply)["error"]["field"] == "seed", (seed, reply)


def test_head_and_readyz(server):
    """HEAD answers the GET endpoints without a body; /readyz says the models are loaded."""
    for path in ("/healthz", "/readyz", "/v1/models"):
        req = urllib.request.Request(server.url + path, method="HEAD")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200 and r.read() == b"", path
    status, _, body = server.request("/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"


def test_a_bad_model_in_a_folder_is_unavailable_not_fatal(tmp_path):
    """One unreadable model file in a --models folder is logged and listed as unavailable while the
    others are served; --strict-models makes it stop the server."""
    import shutil
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(TINY, folder / "tiny-trigflow.onnx")
    (folder / "broken.onnx").write_bytes(open(TINY, "rb").read()[:100])
    s = Server(models=(str(folder),))
    try:
        status, _, body = s.request("/v1/models")
        listing = json.loads(body)
        assert [m["name"] for m in listing["models"]] == ["tiny-trigflow"], listing
        assert [os.path.basename(u["file"]) for u in listing["unavailable"]] == ["broken.onnx"] and listing["unavailable"][0]["reason"]
        assert s.request("/v1/samples", {"model": "tiny-trigflow", "format": "npy"})[0] == 200
    finally:
        s.stop()
    assert "unavailable" in s.output() and "broken.onnx" in s.output()
    r = subprocess.run([SERVE, "--port", "0", "--models", str(folder), "--strict-models"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "broken.onnx" in r.stderr, r.stderr


def test_early_413_and_refusals_logged_with_a_request_id():
    """A body whose declared length is past --max-body-bytes gets its 413 before any of it is sent
    (and the connection closes); the refusal is logged with the request's id, as every 4xx and 5xx."""
    import socket
    s = Server()
    try:
        host, port = s.url.rsplit("/", 1)[1].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as c:
            c.sendall(b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{")
            t0 = time.time()
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = c.recv(4096)
                assert chunk, reply
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 413") and time.time() - t0 < 5, reply
            assert b"connection: close" in reply.lower(), reply
        status, _, _ = s.request("/v1/samples", {"model": "nope"})
        assert status == 400
    finally:
        s.stop()
    log = s.output()
    assert "413" in log and "400" in log and "hb.request.id" in log, log


def test_protocol_errors_are_4xx(server):
    """Malformed chunked framing is the client's fault: a 400 naming the body, no parser internals,
    and counted as a 400 in /metrics (not a 500)."""
    import socket
    host, port = server.url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as c:
        c.sendall(b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        reply = c.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400") and b'"field":"body"' in reply, reply
    assert b"NIO" not in reply and b"HTTPParserError" not in reply, reply
    metrics = server.request("/metrics")[2].decode()
    assert not any(line.startswith("scm_requests_total") and 'status="500"' in line for line in metrics.splitlines()), metrics


def test_idle_connections_are_closed():
    """--idle-timeout closes a connection that never sends, one whose headers stop arriving, and an
    idle keep-alive after its response; a request in progress within the timeout is answered."""
    import socket
    s = Server("--idle-timeout", 1)
    try:
        host, port = s.url.rsplit("/", 1)[1].split(":")

        def closed_within(send, seconds):
            with socket.create_connection((host, int(port)), timeout=seconds + 5) as c:
                if send:
                    c.sendall(send)
                t0 = time.time()
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        return time.time() - t0 <= seconds
        assert closed_within(b"", 3)                                           # never sends
        assert closed_within(b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nConte", 3)  # headers stop
        assert closed_within(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 3)      # keep-alive, then idle
        assert s.request("/healthz")[0] == 200
    finally:
        s.stop()


def test_bearer_token(tmp_path):
    """--token-file: /v1/* needs the token (401 with WWW-Authenticate otherwise, the wrong token
    too); the probes and /metrics stay open; a missing or short token file stops the start."""
    token = "s3cret-token-0123456789"
    (tmp_path / "token").write_text(token + "\n")
    s = Server("--token-file", tmp_path / "token", models=(TINY,))
    try:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": token}):
            req = urllib.request.Request(s.url + "/v1/models", headers=headers)
            try:
                urllib.request.urlopen(req, timeout=10)
                assert False, headers
            except urllib.error.HTTPError as e:
                assert e.code == 401 and e.headers.get("WWW-Authenticate") == "Bearer", headers
        req = urllib.request.Request(s.url + "/v1/samples", data=b'{"format": "npy"}', headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
        for path in ("/healthz", "/readyz", "/metrics"):
            assert s.request(path)[0] == 200, path
    finally:
        s.stop()
    (tmp_path / "short").write_text("abc")
    for f in (tmp_path / "short", tmp_path / "missing"):
        r = subprocess.run([SERVE, "--port", "0", "--models", TINY, "--token-file", f], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "--token-file" in r.stderr, r.stderr


def test_connection_cap():
    """--max-connections 4: the server keeps a place free while a connection is idle: with three
    idle connections open (a keep-alive already served, then two that never sent), a fourth closes
    the older of the two that never sent (not the served one, though it is older) and is served
    (scm_connections_evicted_total counts it); with four connections busy reading their bodies, a
    fifth is not served until one of them ends (here by --body-timeout)."""
    import socket
    s = Server("--max-connections", 4, "--body-timeout", 2)
    try:
        host, port = s.url.rsplit("/", 1)[1].split(":")

        def first_reply(c, timeout):
            c.settimeout(timeout)
            try:
                return c.recv(4096)
            except socket.timeout:
                return None
        held = [socket.create_connection((host, int(port)), timeout=10)]
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (first_reply(held[0], 5) or b"").startswith(b"HTTP/1.1 200")
        for _ in range(2):
            time.sleep(0.1)
            held.append(socket.create_connection((host, int(port)), timeout=10))
        time.sleep(0.1)
        fourth = socket.create_connection((host, int(port)), timeout=10)
        fourth.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (first_reply(fourth, 5) or b"").startswith(b"HTTP/1.1 200")
        assert first_reply(held[1], 5) == b"", "the oldest connection that never sent was not closed"
        for c in (held[0], held[2]):
            assert first_reply(c, 0.2) is None, "another idle connection was closed"
        for c in held + [fourth]:
            c.close()
        time.sleep(0.3)
        busy = []
        for _ in range(4):
            busy.append(socket.create_connection((host, int(port)), timeout=10))
            busy[-1].sendall(b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            time.sleep(0.2)
        fifth = socket.create_connection((host, int(port)), timeout=10)
        fifth.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        t0 = time.time()
        assert first_reply(fifth, 1.0) is None, "served while every connection was busy"
        assert (first_reply(fifth, 10) or b"").startswith(b"HTTP/1.1 200")
        assert 1.0 < time.time() - t0 + 1.0 < 4, time.time() - t0
        for c in busy + [fifth]:
            c.close()
        time.sleep(0.5)
        metrics = s.request("/metrics")[2].decode()
        values = {l.split(" ")[0]: float(l.split(" ")[1]) for l in metrics.splitlines() if l and not l.startswith("#")}
        assert values.get("scm_connections_evicted_total") == 1, values
    finally:
        s.stop()


def test_one_admission_bound_over_all_queues():
    """--max-pending-work bounds the work of all queues together: while 8 samples at 2 steps (16
    evaluations) wait in one model's queue, a request to another model's queue gets 429 with a
    Retry-After, though its own queue is empty; once the first is answered it is served."""
    s = Server("--batch-wait-ms", 1500, "--max-count", 8, "--queue-limit", 64, "--max-pending-work", 16)
    try:
        first = {}
        t = threading.Thread(target=lambda: first.setdefault("r", s.request("/v1/samples", {"model": "fashion-sct", "count": 8})))
        t.start()
        time.sleep(0.3)
        status, headers, reply = s.request("/v1/samples", {"model": "tiny-trigflow", "steps": 1, "format": "npy"})
        assert status == 429 and int(headers.get("Retry-After", "0")) >= 1 and b"sample-evaluations" in reply, (status, reply)
        t.join()
        assert first["r"][0] == 200
        assert s.request("/v1/samples", {"model": "tiny-trigflow", "steps": 1, "format": "npy"})[0] == 200
    finally:
        s.stop()


def test_abandoned_work_is_dropped():
    """A client that closes its connection while its request waits for a batch: the request is
    dropped unrun (no samples drawn, scm_abandoned_total counts it) and its place is given back."""
    import socket
    s = Server("--batch-wait-ms", 2000, "--max-count", 8, "--queue-limit", 8)
    try:
        host, port = s.url.rsplit("/", 1)[1].split(":")
        body = b'{"model": "fashion-sct", "count": 8}'
        c = socket.create_connection((host, int(port)), timeout=10)
        c.sendall(b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.3)
        c.close()
        time.sleep(0.5)
        # Its 8 samples no longer hold the queue of 8: another request fits at once.
        status, _, _ = s.request("/v1/samples", {"model": "fashion-sct", "count": 8, "format": "npy"})
        assert status == 200
        metrics = s.request("/metrics")[2].decode()
        values = {l.split(" ")[0]: float(l.split(" ")[1]) for l in metrics.splitlines() if l and not l.startswith("#")}
        assert values.get("scm_abandoned_total") == 1 and values.get("scm_samples_total") == 8, values
    finally:
        s.stop()


def test_http_1_0_closes_after_its_response(server):
    """An HTTP/1.0 request is answered and its connection closed (HTTP/1.1 and HTTP/1.0 with
    keep-alive stay open for the next request)."""
    import socket
    host, port = server.url.rsplit("/", 1)[1].split(":")

    def closes(request):
        with socket.create_connection((host, int(port)), timeout=3) as c:
            c.sendall(request)
            data = b""
            try:
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        return data, True
                    data += chunk
            except socket.timeout:
                return data, False
    data, closed = closes(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
    assert b" 200 " in data.split(b"\r\n")[0] and closed, data
    data, closed = closes(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b" 200 " in data.split(b"\r\n")[0] and not closed, data
    data, closed = closes(b"GET /healthz HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
    assert b" 200 " in data.split(b"\r\n")[0] and not closed, data


def test_readyz_is_503_while_draining():
    """--drain-seconds: after SIGTERM, /readyz answers 503 while /healthz and requests are still
    served; then the server stops and exits 0."""
    s = Server("--drain-seconds", 2, models=(TINY,))
    try:
        assert s.request("/readyz")[0] == 200
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        status, _, body = s.request("/readyz")
        assert status == 503 and json.loads(body)["status"] == "draining", body
        assert s.request("/healthz")[0] == 200
        assert s.request("/v1/samples", {"format": "npy"})[0] == 200
        s.proc.wait(30)
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.output()


def test_a_request_past_its_deadline_is_refused_up_front_and_the_5xx_logged():
    """Once batches have run, a request whose work cannot finish within --deadline at the rate
    they run at is answered 503 at once, with a Retry-After, instead of queueing and answering
    late; the 503 is logged at error level with its request id, as every 5xx."""
    s = Server("--deadline", 0.05, "--max-count", 256, models=(FASHION,))
    try:
        assert s.request("/v1/samples", {"count": 1, "format": "npy"})[0] == 200   # measures the rate
        t0 = time.time()
        status, headers, reply = s.request("/v1/samples", {"count": 256, "format": "npy"})
        assert status == 503 and b"deadline" in reply and int(headers.get("Retry-After", "0")) >= 1, (status, reply)
        assert time.time() - t0 < 1.0
    finally:
        s.stop()
    logged = [l for l in s.output().splitlines() if "POST /v1/samples: 503" in l]
    assert logged and " error " in logged[0] and "hb.request.id" in logged[0], s.output()


def test_metrics_on_a_port_of_their_own():
    """--metrics-port: /metrics moves off the public port (404 there) to its own."""
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = Server("--metrics-port", port, models=(TINY,))
    try:
        assert s.request("/metrics")[0] == 404
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    assert r.status == 200 and b"scm_samples_total" in r.read()
                    break
            except urllib.error.URLError:
                assert time.time() < deadline
                time.sleep(0.1)
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.output()


def test_lazy_compile_gives_the_same_bytes(tmp_path):
    """--lazy-compile: plans are compiled by the first batch of each size; the answers are still
    bitwise scm-run's."""
    s = Server("--lazy-compile", models=(FASHION,))
    try:
        status, _, png = s.request("/v1/samples", {"steps": 2, "count": 8, "seed": 5})
        assert status == 200 and png == scm_run(tmp_path, "--steps", 2, "--count", 8, "--seed", 5)
    finally:
        s.stop()


def test_a_running_batch_stops_when_its_clients_have_gone():
    """A client that closes its connection while its request runs: the batch stops between its
    chunks (the sampler's batches of --max-batch), scm_stopped_total counts it, no samples are
    returned, and the server goes on serving at once."""
    import socket
    s = Server("--max-batch", 4, "--max-count", 256, "--batch-wait-ms", 0, models=(FASHION,))
    try:
        body = json.dumps({"count": 256, "format": "npy"}).encode()
        t0 = time.time()
        assert s.request("/v1/samples", raw=body)[0] == 200
        whole = time.time() - t0
        host, port = s.url.rsplit("/", 1)[1].split(":")
        c = socket.create_connection((host, int(port)), timeout=10)
        c.sendall(b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(whole * 0.2)
        c.close()
        t1 = time.time()
        status, _, _ = s.request("/v1/samples", {"count": 4, "format": "npy"})
        assert status == 200
        # Answered well before the 256 samples of the gone client could have been drawn.
        assert time.time() - t1 < whole * 0.8, (time.time() - t1, whole)
        metrics = s.request("/metrics")[2].decode()
        values = {l.split(" ")[0]: float(l.split(" ")[1]) for l in metrics.splitlines() if l and not l.startswith("#")}
        assert values.get("scm_stopped_total") == 1 and values.get("scm_samples_total") == 260, values
    finally:
        s.stop()


def make_certificate(folder, name="server"):
    """A self-signed certificate for 127.0.0.1 and its key, made by openssl."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_tls_with_a_certificate_the_test_makes(tmp_path):
    """--tls-certificate/--tls-key: HTTPS that a client trusting the certificate verifies, answers
    bitwise scm-run's; plain HTTP on that port gets no answer; a key of another certificate, a
    missing file or one flag alone stop the start with the flag named (exit 1, or 64)."""
    import ssl
    cert, key = make_certificate(tmp_path)
    s = Server("--tls-certificate", cert, "--tls-key", key, models=(FASHION,))
    try:
        url = s.url.replace("http://", "https://")
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(url + "/healthz", timeout=10, context=context) as r:
            assert r.status == 200
        req = urllib.request.Request(url + "/v1/samples", data=json.dumps({"steps": 2, "count": 4, "seed": 3}).encode())
        with urllib.request.urlopen(req, timeout=60, context=context) as r:
            assert r.read() == scm_run(tmp_path, "--steps", 2, "--count", 4, "--seed", 3)
        # A client that does not trust the certificate refuses it; plain HTTP is not answered as HTTP.
        try:
            urllib.request.urlopen(url + "/healthz", timeout=10, context=ssl.create_default_context())
            assert False, "an untrusted certificate was accepted"
        except urllib.error.URLError as e:
            assert isinstance(e.reason, ssl.SSLCertVerificationError), e
        try:
            reply = urllib.request.urlopen(s.url + "/healthz", timeout=10).read()
            assert False, reply
        except (urllib.error.URLError, ConnectionError, http_client_errors()):
            pass
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.output()
    other_cert, other_key = make_certificate(tmp_path, "other")
    for flags, code, says in ((["--tls-certificate", cert, "--tls-key", other_key], 1, "--tls-key"),
                              (["--tls-certificate", tmp_path / "missing.pem", "--tls-key", key], 1, "--tls-certificate"),
                              (["--tls-certificate", key, "--tls-key", key], 1, "--tls-certificate"),
                              (["--tls-certificate", cert], 64, "--tls-key")):
        r = subprocess.run([SERVE, "--port", "0", "--models", TINY, *map(str, flags)], capture_output=True, text=True, timeout=60)
        assert r.returncode == code and says in r.stderr, (flags, r.returncode, r.stderr)


def http_client_errors():
    import http.client
    return http.client.HTTPException


def test_access_log(server, tmp_path):
    """--access-log: one line per answered request (method, path, status, bytes, time, peer) with
    its request id; without the flag, answered requests are not logged."""
    s = Server("--access-log", models=(TINY,))
    try:
        assert s.request("/healthz")[0] == 200
        assert s.request("/v1/samples", {"format": "npy"})[0] == 200
        assert s.request("/nowhere")[0] == 404
    finally:
        s.stop()
    log = s.output()
    for line in ("GET /healthz 200", "POST /v1/samples 200", "GET /nowhere 404"):
        hits = [l for l in log.splitlines() if line in l]
        assert hits and "hb.request.id" in hits[0] and " ms from 127.0.0.1:" in hits[0], (line, log)
    assert "GET /healthz 200" not in server.output()


def test_accept_at_the_descriptor_limit():
    """At `ulimit -n 256` with the default --max-connections (512), the cap is lowered to what the
    limit leaves (logged); 300 half-open requests do not make the server spin (under 10% of a
    core) or fail, and /healthz is answered at once (in the place of the oldest of them)."""
    import socket
    s = Server(models=(TINY,), threads=1, steps="1", nofile=256)
    try:
        port = int(s.url.rsplit(":", 1)[1])
        clients = []
        for _ in range(300):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            clients.append(c)
        time.sleep(0.3)
        for c in clients:
            try:
                c.send(b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nContent-Le")
            except OSError:
                pass
        cpu = lambda: sum(int(x) for x in open(f"/proc/{s.proc.pid}/stat").read().rsplit(")", 1)[1].split()[11:13]) / os.sysconf("SC_CLK_TCK")  # noqa: E731
        c0, t0 = cpu(), time.time()
        time.sleep(1.5)
        busy = (cpu() - c0) / (time.time() - t0)
        assert busy < 0.10, busy
        # The half-open requests are the connections idle the longest: each probe takes the place
        # of one of them and is answered at once.
        for _ in range(10):
            t0 = time.time()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                assert r.status == 200
            assert time.time() - t0 < 0.5, time.time() - t0
        for c in clients:
            c.close()
        assert s.proc.poll() is None
    finally:
        s.stop()
    out = s.output()
    assert s.proc.returncode == 0 and "descriptor limit (ulimit -n) is 256" in out, out


def test_slow_clients_are_closed_by_the_header_and_body_timeouts():
    """--header-timeout and --body-timeout: a head sent a byte at a time, or a body, is closed once
    its timeout has passed since it began, though bytes keep arriving (the idle timeout never
    fires); a keep-alive connection idle past them is not (that is the idle timeout's), and its
    next request is answered."""
    import socket
    s = Server("--header-timeout", 1, "--body-timeout", 1, "--idle-timeout", 30, models=(TINY,))
    try:
        host, port = s.url.rsplit("/", 1)[1].split(":")

        def dribble(prefix, rest):
            with socket.create_connection((host, int(port)), timeout=10) as c:
                c.sendall(prefix)
                t0 = time.time()
                for b in rest:
                    try:
                        c.sendall(bytes([b]))
                    except OSError:
                        break
                    c.settimeout(0.25)
                    try:
                        if c.recv(4096) == b"":
                            break
                    except socket.timeout:
                        pass
                    assert time.time() - t0 < 6, "still open after 6 s"
                return time.time() - t0
        head = b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
        assert 0.9 < dribble(b"", head * 4) < 2.5
        assert 0.9 < dribble(head, b" " * 200) < 2.5
        with socket.create_connection((host, int(port)), timeout=10) as c:
            for _ in range(2):
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert c.recv(4096).startswith(b"HTTP/1.1 200")
                time.sleep(1.6)
    finally:
        s.stop()


def test_a_request_answered_before_its_body_ends_leaves_its_connection_idle(tmp_path):
    """A request answered before its body has all arrived (a 401 read from the head alone): once
    the body ends the connection is idle again, so at the cap it is the one closed for a newcomer,
    while a connection still sending its body is not."""
    import socket
    token = "s3cret-token-0123456789"
    (tmp_path / "token").write_text(token)
    s = Server("--token-file", tmp_path / "token", "--max-connections", 3, "--body-timeout", 30, models=(TINY,))
    try:
        host, port = s.url.rsplit("/", 1)[1].split(":")
        early = socket.create_connection((host, int(port)), timeout=10)
        early.sendall(b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        assert early.recv(4096).startswith(b"HTTP/1.1 401")
        early.sendall(b"{}        ")  # the body's 10 bytes, after the answer
        time.sleep(0.3)
        busy = socket.create_connection((host, int(port)), timeout=10)
        busy.sendall(b"POST /v1/samples HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                     + b"\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.3)
        newcomer = socket.create_connection((host, int(port)), timeout=10)
        newcomer.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert newcomer.recv(4096).startswith(b"HTTP/1.1 200")
        early.settimeout(5)
        assert early.recv(4096) == b"", "the connection answered early was not idle"
        busy.settimeout(0.3)
        try:
            assert busy.recv(4096) != b"", "the busy connection was closed"
        except socket.timeout:
            pass
        for c in (early, busy, newcomer):
            c.close()
    finally:
        s.stop()
