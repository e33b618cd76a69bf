#!/usr/bin/python3
"""Parity of adapter/rate with Prometheus 2.42's own rate(), increase(), irate().

Starts a real Prometheus (Debian package) with the remote-write receiver on a
free loopback port, remote-writes hand-built counter series into it (v1
protobuf and snappy via tests/integration/rw.py), then for a
fixed evaluation time T asks Prometheus for rate/increase/irate(x_total[2m])
and compares each series with rate_tool (tests/adapter/rate_tool.c, path in
argv[1]) fed the same samples and the range [T - 2m, T].

Tolerances: 1e-6 relative for steadily increasing counters, 1e-3 across a
counter reset. Series with fewer than two samples in the range must be absent
from both. No stale markers are sent (the adapter removes stale series at once,
a deliberate difference from PromQL).

Usage: /usr/bin/python3 test_rate_parity.py path/to/rate_tool [prometheus]
"""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rw  # noqa: E402

RANGE_MS = 120_000


# --- the sample sets ---------------------------------------------------------

def build_series(t_eval):
    """Returns {pod: (samples, tolerance)}; t_eval is the evaluation time in ms."""
    rng = random.Random(42)
    start = t_eval - RANGE_MS
    sets = {}

    # Steady counter, 15 s interval, newest sample 2.5 s before T.
    sets["steady"] = ([(t_eval - 2500 - 15000 * i, 1000.0 + 1.5 * (300 - 15 * i)) for i in range(20)][::-1], 1e-6)
    # Jittered intervals (5-20 s) and uneven increments, fractional values.
    t, v, s = start - 40000, 5000.25, []
    while t <= t_eval - 700:
        s.append((t, v))
        t += rng.randint(5000, 20000)
        v += rng.uniform(0.0, 50.0)
    sets["jitter"] = (s, 1e-6)
    # A counter that starts inside the range at a small value: the zero clamp.
    sets["young"] = ([(start + 45000 + 10000 * i, 3.0 + 2.0 * i) for i in range(8)], 1e-6)
    # Zero point between 0.5 and 1.1 intervals before the first sample.
    sets["clamp"] = ([(start + 60000 + 10000 * i, 8.0 + 10.0 * i) for i in range(7)], 1e-6)
    # Two samples only, far from both edges: half-interval extrapolation.
    sets["sparse"] = ([(start + 50000, 100.0), (start + 70000, 130.0)], 1e-6)
    # A sample exactly at the range start: Prometheus 2.x ranges are closed.
    # increase() is 120 with that sample in the range, ~90 without it.
    sets["edge"] = ([(start - 10000, 1.0), (start, 11.0), (start + 10000, 41.0), (t_eval - 30000, 101.0)], 1e-6)
    # Large magnitudes with small increments.
    sets["big"] = ([(start - 5000 + 10000 * i, 1e12 + 0.125 * i * i) for i in range(14)], 1e-6)
    # Counter resets (a restart), one and two.
    s, v = [], 700.0
    for i in range(16):
        if i == 7:
            v = 4.0
        s.append((start - 20000 + 9000 * i, v))
        v += rng.uniform(1.0, 9.0)
    sets["reset"] = (s, 1e-3)
    s, v = [], 50.0
    for i in range(13):
        if i in (4, 9):
            v = rng.uniform(0.0, 3.0)
        s.append((start + 3000 + 10000 * i, v))
        v += 7.0
    sets["resets2"] = (s, 1e-3)
    # One sample in the range: no value anywhere.
    sets["lonely"] = ([(start - 60000, 1.0), (start - 30000, 2.0), (t_eval - 1000, 3.0)], 1e-6)
    return sets


# --- processes ------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def wait_ready(base, proc, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("prometheus exited with %d" % proc.returncode)
        try:
            if http_get(base + "/-/ready", timeout=1)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError("prometheus not ready within %d s" % deadline_s)


def remote_write(base, series):
    """series: list of (labels dict, [(t_ms, value), ...])."""
    body = rw.v1([rw.series(labels, samples) for labels, samples in series])
    req = urllib.request.Request(base + "/api/v1/write", data=body, method="POST", headers=rw.headers(1))
    with urllib.request.urlopen(req, timeout=10) as r:
        if r.status // 100 != 2:
            raise RuntimeError("remote write answered %d" % r.status)


def prom_query(base, expr, t_ms):
    q = urllib.parse.urlencode({"query": expr, "time": "%d.%03d" % divmod(t_ms, 1000)})
    status, body = http_get(base + "/api/v1/query?" + q)
    doc = json.loads(body)
    if doc.get("status") != "success":
        raise RuntimeError("query %s failed: %s" % (expr, body[:300]))
    return {r["metric"]["pod"]: float(r["value"][1]) for r in doc["data"]["result"]}


def c_eval(tool, fn, samples, t_ms):
    lines = ["%s %d %d" % (fn, t_ms - RANGE_MS, t_ms)] + ["%d %r" % (t, v) for t, v in samples]
    out = subprocess.run([tool], input="\n".join(lines) + "\n", capture_output=True, text=True,
                         check=True, timeout=10).stdout.strip()
    return None if out == "none" else float(out)


def main():
    tool = os.path.abspath(sys.argv[1])
    prom_bin = sys.argv[2] if len(sys.argv) > 2 else shutil.which("prometheus") or "/usr/bin/prometheus"
    tmp = tempfile.mkdtemp(prefix="rate-parity-")
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    proc = subprocess.Popen([prom_bin, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                             "--web.listen-address=127.0.0.1:%d" % port, "--web.enable-remote-write-receiver"],
                            stdout=log, stderr=subprocess.STDOUT)
    failures = 0
    try:
        wait_ready(base, proc)
        # A fixed evaluation time with a millisecond part, a few minutes back.
        t_eval = (int(time.time()) - 300) * 1000 + 437
        sets = build_series(t_eval)
        remote_write(base, [({"__name__": "x_total", "pod": pod}, s) for pod, (s, _) in sets.items()])
        compared = 0
        for fn in ("rate", "increase", "irate"):
            prom = prom_query(base, "%s(x_total[2m])" % fn, t_eval)
            for pod, (samples, tol) in sorted(sets.items()):
                ours = c_eval(tool, fn, samples, t_eval)
                theirs = prom.get(pod)
                if ours is None or theirs is None:
                    if ours is not None or theirs is not None:
                        print("FAIL %s(%s): adapter %r, prometheus %r" % (fn, pod, ours, theirs))
                        failures += 1
                    continue
                rel = abs(ours - theirs) / max(abs(theirs), 1e-300)
                ok = rel <= tol or ours == theirs
                print("%s %-8s %-8s adapter %-22r prometheus %-22r rel %.2e" %
                      ("ok  " if ok else "FAIL", fn, pod, ours, theirs, rel))
                failures += not ok
                compared += 1
        if "lonely" in prom or compared < 25:
            print("FAIL: expected the lonely series absent and >= 25 comparisons (got %d)" % compared)
            failures += 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if failures:
            print(open(os.path.join(tmp, "prometheus.log")).read()[-2000:])
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d failure(s)" % failures)
        return 1
    print("test_rate_parity: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
