"""Query benchmark: metrics-adapter's custom-metrics reads against Prometheus 2.42's /api/v1/query.

Run it through bench/query/run.sh. One counter metric, bench_requests_total, in
one namespace: PODS pods x SERIES series, SAMPLES samples each, 10 s apart, the
newest written just before the measurement (one more sample per series is
written before each read when 30 s have passed, so that no read is timed on
data leaving the window), sent by remote write to the adapter
and to a Prometheus 2.42 receiver (--web.enable-remote-write-receiver). Labels:
pod (pod-0000...), hpa (h00..: PODS/50 groups of 50 pods), route (r0..r9: ten
series of each pod per route), s (the series number).

Three reads, each first checked (status 200 and the item count: a benchmark
never times 404s), then timed with wrk (keep-alive) on both servers:
  (a) pods-* over every pod     adapter: .../namespaces/bench/pods/*/bench_requests
                                prometheus: sum(rate(bench_requests_total{namespace="bench"}[2m])) by (pod)
  (b) one pod                   adapter: .../pods/pod-0007/bench_requests
                                prometheus: ...{namespace="bench",pod="pod-0007"}...
  (c) a typical HPA read: 50 pods x 10 series
                                adapter: pods/*?labelSelector=hpa=h01&metricLabelSelector=route=r0
                                prometheus: ...{namespace="bench",hpa="h01",route="r0"}...
The adapter's side is also timed by the adapter itself: its /metrics is scraped
before and after each timed read, and the delta of
metrics_adapter_http_request_duration_seconds{handler="/apis"} (headers read to
response queued: no network, no socket write) gives the server-side mean and
p50/p99, estimated from the buckets by linear interpolation inside the bucket
as Prometheus's histogram_quantile() does (so only as fine as the buckets:
0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100 ms ...). Every run also checks that
the histogram's count grew by the requests made: exactly 1 for the checking
GET, and for wrk at least the requests it completed and at most that plus its
connections (a request cut off at wrk's deadline may have been answered).
Prints a table and writes it as JSON to --out if given.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402
import prom  # noqa: E402
import rw  # noqa: E402

METRIC = "bench_requests_total"
NS = "bench"
STEP_MS = 10000


def build_bodies(pods, per_pod, times, t_first, batch=5000):
    """Remote-write v1 bodies holding every series with samples at @times (ms),
    the counters growing linearly from t_first; batch series per body."""
    bodies, cur = [], []
    for p in range(pods):
        pod = "pod-%04d" % p
        hpa = "h%02d" % (p // 50)
        for s in range(per_pod):
            labels = [("__name__", METRIC), ("hpa", hpa), ("namespace", NS), ("pod", pod),
                      ("route", "r%d" % (s * 10 // per_pod if per_pod >= 10 else s % 10)), ("s", "%03d" % s)]
            rate = 1.0 + (s % 7) * 0.25
            pts = [(t, 100.0 + rate * (t - t_first) / 1000.0) for t in times]
            cur.append(rw.Series(labels, pts))
            if len(cur) == batch:
                bodies.append(rw.v1(cur))
                cur = []
    if cur:
        bodies.append(rw.v1(cur))
    return bodies


def post_all(port, bodies):
    for b in bodies:
        st, _, text = harness.http_post(port, "/api/v1/write", b, rw.headers(1), timeout=60)
        if st not in (200, 204):
            raise AssertionError("remote write to port %d: %d %r" % (port, st, text[:200]))


def wrk(url, seconds, conns, threads):
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--timeout", "60s",
                          "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    done = int(re.search(r"^\s*(\d+) requests in ", out, re.M).group(1))
    if rps == 0:
        return {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "requests": done, "connections": conns}

    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000.0 if unit == "us" else v if unit == "ms" else v * 1000.0

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise AssertionError("wrk saw %s non-2xx answers from %s" % (non2xx.group(1), url))
    return {"rps": rps, "p50_ms": pct(50), "p99_ms": pct(99), "requests": done, "connections": conns}


def sequential(url, n):
    """n requests one after another on one keep-alive connection: req/s and p50/p99 (for answers
    too slow for wrk to complete enough of them within its duration)."""
    import http.client
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    times = []
    t0 = time.monotonic()
    for _ in range(n):
        t = time.monotonic()
        conn.request("GET", u.path + "?" + u.query)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, (url, r.status)
        times.append((time.monotonic() - t) * 1000.0)
    total = time.monotonic() - t0
    conn.close()
    times.sort()
    return {"rps": n / total, "p50_ms": times[len(times) // 2], "p99_ms": times[-1], "method": "sequential %d" % n,
            "requests": n, "connections": 0}


def measure(url, seconds, conns, threads):
    r = wrk(url, seconds, conns, threads)
    if r["rps"] * seconds < 10:
        r = sequential(url, 5)
    return r


DUR = "metrics_adapter_http_request_duration_seconds"
HANDLER = "/apis"  # the route every custom.metrics.k8s.io read is answered by (serve.c)


def server_hist(ad):
    """The adapter's latency histogram for the metrics API route, summed over listeners:
    ({upper bound: cumulative count}, sum in seconds, count). All zero before the route's first answer."""
    m = ad.metrics()
    buckets = {}
    for labels, v in m.series(DUR + "_bucket"):
        if labels.get("handler") == HANDLER:
            le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            buckets[le] = buckets.get(le, 0.0) + v
    return buckets, m.sum(DUR + "_sum", handler=HANDLER), m.sum(DUR + "_count", handler=HANDLER)


def hist_delta(before, after):
    b0, s0, c0 = before
    b1, s1, c1 = after
    return {le: v - b0.get(le, 0.0) for le, v in b1.items()}, s1 - s0, c1 - c0


def hist_quantile(q, buckets):
    """As Prometheus's histogram_quantile(): the rank's bucket, linear inside it, the lowest
    bucket starting at 0, a rank in +Inf answered by the highest finite bound."""
    les = sorted(buckets)
    total = buckets[les[-1]] if les else 0
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le in les:
        c = buckets[le]
        if c >= rank:
            if le == float("inf"):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def server_side(delta):
    buckets, s, c = delta
    return {"count": int(round(c)), "mean_ms": s / c * 1000.0 if c else float("nan"),
            "p50_ms": hist_quantile(0.5, buckets) * 1000.0, "p99_ms": hist_quantile(0.99, buckets) * 1000.0}


def get_json(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        assert r.status == 200, (url, r.status)
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", default=os.path.join(ROOT, "build", "bin", "metrics-adapter"))
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--series", type=int, default=100, help="series per pod")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--duration", type=int, default=10, help="wrk seconds per read and server")
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-prometheus", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.pods < 50 or a.pods % 50 or a.series < 10 or a.series % 10:
        sys.exit("pods must be a multiple of 50 and series a multiple of 10")

    cases = [
        ("a", "pods-* over all pods", a.pods,
         "pods/*/bench_requests", {},
         'sum(rate(%s{namespace="%s"}[2m])) by (pod)' % (METRIC, NS)),
        ("b", "one pod (object read)", 1,
         "pods/pod-0007/bench_requests", {},
         'sum(rate(%s{namespace="%s",pod="pod-0007"}[2m])) by (pod)' % (METRIC, NS)),
        ("c", "HPA read: 50 pods x 10 series", 50,
         "pods/*/bench_requests", {"labelSelector": "hpa=h01", "metricLabelSelector": "route=r0"},
         'sum(rate(%s{namespace="%s",hpa="h01",route="r0"}[2m])) by (pod)' % (METRIC, NS)),
    ]

    ad = harness.Adapter(["--max-series=0"], binary=a.adapter)
    pr = None
    if not a.no_prometheus:
        pr = prom.Prometheus(prom.config(), args=["--web.enable-remote-write-receiver",
                                                  "--storage.tsdb.retention.time=1h"])
    results = []
    try:
        ad.start()
        if pr:
            pr.start()
        newest = int(time.time() * 1000) - 1000
        t_first = newest - (a.samples - 1) * STEP_MS
        t0 = time.monotonic()
        bodies = build_bodies(a.pods, a.series, [t_first + i * STEP_MS for i in range(a.samples)], t_first)
        t1 = time.monotonic()
        post_all(ad.port, bodies)
        t2 = time.monotonic()
        if pr:
            post_all(pr.port, bodies)
        t3 = time.monotonic()
        print("loaded %d series x %d samples: encode %.1fs, adapter %.1fs, prometheus %.1fs"
              % (a.pods * a.series, a.samples, t1 - t0, t2 - t1, t3 - t2), flush=True)
        m = ad.metrics()
        live = m.sum("metrics_adapter_series_live")
        assert int(live) == a.pods * a.series, "adapter holds %s series" % live

        base = "http://127.0.0.1:%d/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/" % (ad.port, NS)
        for key, what, items, path, params, promql in cases:
            if time.time() * 1000 - newest > 30000:
                # Keep the data inside the window: one more sample per series, the newest
                # again just before the measurement, on both servers.
                newest = int(time.time() * 1000) - 500
                fresh = build_bodies(a.pods, a.series, [newest], t_first)
                post_all(ad.port, fresh)
                if pr:
                    post_all(pr.port, fresh)
            url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
            h0 = server_hist(ad)
            doc = get_json(url)
            assert len(doc["items"]) == items, "(%s) adapter: %d items, expected %d" % (key, len(doc["items"]), items)
            h1 = server_hist(ad)
            # The server counts every answer it queues: one GET, one more in its histogram.
            assert h1[2] - h0[2] == 1, "(%s) one GET moved the histogram's count by %s" % (key, h1[2] - h0[2])
            row = {"case": key, "what": what, "items": items,
                   "adapter": measure(url, a.duration, a.connections, a.threads)}
            d = hist_delta(h1, server_hist(ad))
            row["adapter_server"] = server_side(d)
            done, conns = row["adapter"]["requests"], row["adapter"]["connections"]
            # Everything the client got was counted; a request cut off at wrk's deadline may be too.
            assert done <= d[2] <= done + conns, "(%s) client completed %d requests on %d connections, " \
                "the adapter's histogram counted %s" % (key, done, conns, d[2])
            assert abs(d[0].get(float("inf"), 0.0) - d[2]) < 0.5, "(%s) +Inf bucket is not the count" % key
            if pr:
                purl = "http://127.0.0.1:%d/api/v1/query?%s" % (pr.port, urllib.parse.urlencode({"query": promql}))
                res = get_json(purl)["data"]["result"]
                assert len(res) == items, "(%s) prometheus: %d results, expected %d" % (key, len(res), items)
                # Same data, same function: the values agree (the window ends a moment apart).
                want = {r["metric"]["pod"]: float(r["value"][1]) for r in res}
                for it in doc["items"]:
                    pod = it["describedObject"]["name"]
                    assert pod in want, pod
                row["prometheus"] = measure(purl, a.duration, a.connections, a.threads)
                print("adapter: %s" % json.dumps(row["adapter"]), flush=True)
                row["speedup_rps"] = row["adapter"]["rps"] / max(row["prometheus"]["rps"], 1e-9)
                row["speedup_p50"] = row["prometheus"]["p50_ms"] / max(row["adapter"]["p50_ms"], 1e-6)
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        ad.stop()
        if pr:
            pr.stop()

    print()
    print("adapter server side: %s histogram, handler=\"%s\", delta over each timed read;"
          " p50/p99 estimated from the buckets as histogram_quantile() does" % (DUR, HANDLER))
    print("| read | items | adapter req/s | p50 ms | p99 ms | server n | server mean ms | server p50 ms (est.)"
          " | server p99 ms (est.) | prometheus req/s | p50 ms | p99 ms | speed-up (req/s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ad_, pr_, sv = r["adapter"], r.get("prometheus"), r["adapter_server"]
        print("| (%s) %s | %d | %.0f | %.3f | %.3f | %d | %.3f | %.3f | %.3f | %s | %s | %s | %s |" % (
            r["case"], r["what"], r["items"], ad_["rps"], ad_["p50_ms"], ad_["p99_ms"],
            sv["count"], sv["mean_ms"], sv["p50_ms"], sv["p99_ms"],
            "%.1f" % pr_["rps"] if pr_ else "-", "%.2f" % pr_["p50_ms"] if pr_ else "-",
            "%.2f" % pr_["p99_ms"] if pr_ else "-", "%.0fx" % r["speedup_rps"] if pr_ else "-"))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"pods": a.pods, "series_per_pod": a.series, "samples": a.samples, "results": results}, f,
                      indent=1)


if __name__ == "__main__":
    main()
