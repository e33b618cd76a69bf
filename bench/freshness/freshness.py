#!/usr/bin/python3
"""Freshness: how long a value takes to become servable.

Three measurements, one run (the adapter and Prometheus 2.42 started by the
integration harness, tests/integration/harness.py and prom.py):

1. direct: a sample is remote-written to the adapter; from the 204 the
   custom metrics API is polled (pods/POD/METRIC, v1beta2) until it serves
   that value. Two cases, --trials each: a brand-new series (a new pod), and
   a new value of an existing series. Reported: time from the 204 to the
   first answer with the value, and how often the first poll already had it.

2. end to end: an HTTP target (this script) serves a gauge per pod; a real
   Prometheus scrapes it every --scrape-interval and remote-writes to the
   adapter (queue flushed every second: prom.config's remote-write
   settings). The target changes the value at t0; both the adapter's API and
   Prometheus's /api/v1/query (what prometheus-adapter reads, at request time)
   are polled until each returns the new value. Reported per side: time from
   the change to the value being servable.

3. new series end to end: the target starts serving a brand-new pod at t0;
   the same two polls until the new pod is served.

usage: freshness.py --adapter BIN [--trials N] [--e2e-trials N]
                    [--scrape-interval 1s] [--out FILE.json] [--smoke]
"""

import argparse
import http.server
import json
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
from kubernetes.utils import parse_quantity  # noqa: E402

import harness  # noqa: E402
import prom  # noqa: E402
import rw  # noqa: E402

NS = "fresh"
API = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/pods/%s/%s"


def served(a, pod, metric, want):
    """True when the adapter serves `want` for pod/metric (an integer value)."""
    st, _, body = a.get(API % (NS, pod, metric))
    if st != 200:
        return False
    items = json.loads(body).get("items", [])
    return bool(items) and parse_quantity(items[0]["value"]) == int(want)


def poll(cond, timeout, interval=0.0005):
    """Seconds until cond() is true (monotonic), and the number of polls."""
    t0 = time.monotonic()
    n = 0
    deadline = t0 + timeout
    while True:
        n += 1
        if cond():
            return time.monotonic() - t0, n
        if time.monotonic() > deadline:
            raise TimeoutError("not served within %.0f s" % timeout)
        time.sleep(interval)


def summary(xs):
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]  # noqa: E731
    return {"n": len(xs), "min_ms": xs[0] * 1e3, "p50_ms": q(0.5) * 1e3, "p90_ms": q(0.9) * 1e3,
            "p99_ms": q(0.99) * 1e3, "max_ms": xs[-1] * 1e3, "mean_ms": statistics.fmean(xs) * 1e3}


def direct(a, trials):
    res = {}
    for case in ("new_series", "new_value"):
        lat, first, last_t = [], 0, 0
        for i in range(trials):
            pod = "direct-%d" % i if case == "new_series" else "direct-0"
            value = 1000 + i if case == "new_series" else 5000 + i
            # never a future timestamp (the API serves the newest sample not after now)
            t = int(time.time() * 1000)
            while t <= last_t:
                time.sleep(0.001)
                t = int(time.time() * 1000)
            last_t = t
            body = rw.v1([rw.series({"__name__": "fresh_gauge", "namespace": NS, "pod": pod}, [(t, float(value))])])
            st, _, msg = a.post("/api/v1/write", body, rw.headers(1))
            if st != 204:
                raise AssertionError("write: %d %r" % (st, msg))
            dt, n = poll(lambda: served(a, pod, "fresh_gauge", value), 10)
            lat.append(dt)
            first += n == 1
        res[case] = dict(summary(lat), first_poll_served=first / trials)
    return res


class Target:
    """An HTTP target: e2e_gauge{pod=...} for the pods in self.values."""

    def __init__(self):
        self.values = {}
        self.lock = threading.Lock()
        target = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with target.lock:
                    lines = ["# TYPE e2e_gauge gauge"] + [
                        'e2e_gauge{namespace="%s",pod="%s"} %d' % (NS, p, v) for p, v in target.values.items()]
                b = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def set(self, pod, v):
        with self.lock:
            self.values[pod] = v


def race(a, p, pod, value, timeout=30):
    """Poll the adapter and Prometheus until each serves `value` for pod: seconds each, from now."""
    t0 = time.monotonic()
    got = {}
    expr = 'e2e_gauge{namespace="%s",pod="%s"}' % (NS, pod)
    while len(got) < 2:
        now = time.monotonic()
        if now - t0 > timeout:
            raise TimeoutError("%s: %r after %.0f s" % (pod, got, timeout))
        if "adapter" not in got and served(a, pod, "e2e_gauge", value):
            got["adapter"] = time.monotonic() - t0
        if "prometheus" not in got and p.query_scalar(expr) == value:
            got["prometheus"] = time.monotonic() - t0
        time.sleep(0.005)
    return got


def end_to_end(a, trials, interval):
    tgt = Target()
    tgt.set("e2e-0", 1)
    cfg = prom.config(scrape=[("fresh", ["127.0.0.1:%d" % tgt.port])], scrape_interval=interval,
                      remote_write=["http://127.0.0.1:%d/api/v1/write" % a.port])
    res = {}
    with prom.Prometheus(cfg) as p:
        harness.wait_until(lambda: served(a, "e2e-0", "e2e_gauge", 1), 60, "the first remote-written sample",
                           interval=0.1)
        for case in ("new_value", "new_series"):
            lat = {"adapter": [], "prometheus": []}
            for i in range(trials):
                # change just after a scrape would be luck; the scrape phase is uniform over trials
                time.sleep(0.37 * (i % 3))
                if case == "new_value":
                    pod, value = "e2e-0", 100 + i
                else:
                    pod, value = "e2e-new-%d" % i, 7
                tgt.set(pod, value)
                got = race(a, p, pod, value)
                for k in lat:
                    lat[k].append(got[k])
            res[case] = {k: summary(v) for k, v in lat.items()}
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--e2e-trials", type=int, default=20)
    ap.add_argument("--scrape-interval", default="1s")
    ap.add_argument("--out")
    ap.add_argument("--smoke", action="store_true")
    o = ap.parse_args()
    if o.smoke:
        o.trials, o.e2e_trials = 50, 3
    os.environ["MA_BIN"] = o.adapter
    out = {"machine": "%d CPUs, load average at start %s" % (os.cpu_count(), open("/proc/loadavg").read().split()[:3]),
           "scrape_interval": o.scrape_interval}
    with harness.Adapter(["--max-series", "0"]) as a:
        out["direct"] = direct(a, o.trials)
        if prom.available():
            out["end_to_end"] = end_to_end(a, o.e2e_trials, o.scrape_interval)
    out["load_at_end"] = open("/proc/loadavg").read().split()[:3]
    text = json.dumps(out, indent=1)
    print(text)
    if o.out:
        with open(o.out, "w") as f:
            f.write(text + "\n")
    # The property (asserted in --smoke too): every sample was servable, through both paths.
    return 0


if __name__ == "__main__":
    sys.exit(main())
