"""Golden-file tests of the metrics APIs: the real binary on loopback, fixed store contents.

The store is filled by remote write with samples whose timestamps sit just before
the request, so the values do not depend on when the test runs:
  - gauges hold one constant value;
  - counters grow by exactly RATE per second, one sample every 15 s, over more
    than the 2 m window: Prometheus's extrapolated rate() of such a series is
    RATE * (sampled + to-start + to-end) / range = RATE, whatever the offset of
    the window, and RATE is chosen off the milli grid (1.2345 -> "1235m") so
    that floating-point noise in the last digit cannot change the quantity.
The bodies are compared byte for byte with tests/api/golden/requests/*.json,
except the item timestamps (the newest sample used, at second precision), which
are checked against the sample times written and then replaced by "<TS>" in
the comparison.

    /usr/bin/python3 tests/integration/test_serve.py            # check
    /usr/bin/python3 tests/integration/test_serve.py --update   # rewrite the golden files (review the diff)
"""

import datetime
import json
import os
import re
import sys
import time
import urllib.parse

import harness
import rw

GOLDEN = os.path.join(harness.ROOT, "tests", "api", "golden", "requests")
UPDATE = "--update" in sys.argv

STEP_MS = 15000
RATE_A, RATE_B = 1.2345, 0.5  # per second


def counter(labels, rate, newest_ms, n=10, base=1000.0):
    samples = [(newest_ms - (n - 1 - i) * STEP_MS, base + rate * i * STEP_MS / 1000.0)
               for i in range(n)]
    return rw.series(labels, samples)


def gauge(labels, value, t_ms):
    return rw.series(labels, [(t_ms, value)])


def fill(a, newest_ms):
    """The fixed store contents; returns {series-set name: newest sample time}."""
    series = [
        # Pods in ns1: a counter (two series on pod-a), a gauge.
        counter({"__name__": "http_requests_total", "namespace": "ns1", "pod": "pod-a", "app": "web",
                 "code": "200"}, RATE_A, newest_ms),
        counter({"__name__": "http_requests_total", "namespace": "ns1", "pod": "pod-a", "app": "web",
                 "code": "500"}, RATE_B, newest_ms),
        counter({"__name__": "http_requests_total", "namespace": "ns1", "pod": "pod-b", "app": "web",
                 "code": "200"}, RATE_B, newest_ms),
        counter({"__name__": "http_requests_total", "namespace": "ns1", "pod": "pod-c", "app": "batch",
                 "code": "200"}, RATE_A, newest_ms),
        gauge({"__name__": "queue_depth", "namespace": "ns1", "pod": "pod-a", "app": "web"}, 2000, newest_ms),
        gauge({"__name__": "queue_depth", "namespace": "ns1", "pod": "pod-b", "app": "web"}, 0.25, newest_ms),
        # Another namespace: never in ns1's answers.
        gauge({"__name__": "queue_depth", "namespace": "ns2", "pod": "pod-a", "app": "web"}, 7, newest_ms),
        # Nodes (root-scoped, through --resource-labels node=nodes).
        gauge({"__name__": "node_load", "node": "node-1"}, 1.5, newest_ms),
        gauge({"__name__": "node_load", "node": "node-2"}, 0.1, newest_ms),
        # A cluster-level series without a namespace: external reads in any namespace include it.
        gauge({"__name__": "jobs_waiting", "queue": "email"}, 12, newest_ms),
        gauge({"__name__": "jobs_waiting", "queue": "sms", "namespace": "ns1"}, 3, newest_ms),
        # Idle longer than --series-ttl (5m): never served, even before the reaper deletes it.
        gauge({"__name__": "old_gauge", "namespace": "ns1", "pod": "pod-a"}, 1, newest_ms - 301000),
        # A NaN gauge: left out of every answer.
        gauge({"__name__": "broken", "namespace": "ns1", "pod": "pod-a"}, float("nan"), newest_ms),
    ]
    status, _, body = a.post("/api/v1/write", rw.v1(series), rw.headers(1))
    assert status == 204, (status, body)


V1 = "/apis/custom.metrics.k8s.io/v1beta1"
V2 = "/apis/custom.metrics.k8s.io/v1beta2"
EXT = "/apis/external.metrics.k8s.io/v1beta1"

# (golden name, path, expected status)
CASES = []
for ver, root in (("v1beta1", V1), ("v1beta2", V2)):
    CASES += [
        ("%s-object" % ver, root + "/namespaces/ns1/pods/pod-a/http_requests", 200),
        ("%s-wildcard" % ver, root + "/namespaces/ns1/pods/%2A/http_requests", 200),
        ("%s-wildcard-selector" % ver,
         root + "/namespaces/ns1/pods/*/http_requests?labelSelector=" + urllib.parse.quote("app in (web)"), 200),
        ("%s-wildcard-metric-selector" % ver,
         root + "/namespaces/ns1/pods/*/http_requests?metricLabelSelector=" + urllib.parse.quote("code=200"), 200),
        ("%s-namespace" % ver, root + "/namespaces/ns1/metrics/queue_depth", 200),
        ("%s-root-object" % ver, root + "/nodes/node-1/node_load", 200),
        ("%s-root-wildcard" % ver, root + "/nodes/*/node_load", 200),
        ("%s-gauge-wildcard" % ver, root + "/namespaces/ns1/pods/*/queue_depth", 200),
    ]
CASES += [
    ("external", EXT + "/namespaces/ns1/jobs_waiting", 200),
    ("external-selector", EXT + "/namespaces/ns1/jobs_waiting?labelSelector=queue%3Demail", 200),
    ("external-counter", EXT + "/namespaces/ns1/http_requests?labelSelector=pod%3Dpod-c", 200),
    ("404-unknown-metric", V2 + "/namespaces/ns1/pods/*/no_such_metric", 404),
    ("404-unknown-object", V2 + "/namespaces/ns1/pods/pod-z/http_requests", 404),
    ("404-other-namespace", V2 + "/namespaces/ns3/pods/*/queue_depth", 404),
    ("404-nan-only", V2 + "/namespaces/ns1/pods/pod-a/broken", 404),
    ("404-past-ttl", V2 + "/namespaces/ns1/pods/*/old_gauge", 404),
    ("404-external", EXT + "/namespaces/ns1/no_such_metric", 404),
    ("404-openapi", "/openapi/v2", 404),
    ("400-selector", V2 + "/namespaces/ns1/pods/*/http_requests?labelSelector=" + urllib.parse.quote("app in (web"),
     400),
    ("400-path", V2 + "/namespaces/ns1/pods/http_requests", 400),
    ("400-resource", V2 + "/namespaces/ns1/Pods!/*/http_requests", 400),
    ("discovery-v1beta2", V2, 200),
    ("discovery-v1beta1", V1, 200),
    ("discovery-external", EXT, 200),
    ("apis", "/apis", 200),
    ("api", "/api", 200),
]

TS_RE = re.compile(r'"timestamp":"([0-9TZ:-]+)"')


def normalise(body, newest_ms):
    want = datetime.datetime.fromtimestamp(newest_ms // 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for ts in TS_RE.findall(body):
        assert ts == want, "timestamp %s, expected the newest sample's %s" % (ts, want)
    return TS_RE.sub('"timestamp":"<TS>"', body)


def index_checks(a):
    """Groups of 256 series or more are read through per-thread label indexes:
    object reads and selector equalities must see exactly what a walk would,
    including series added or deleted a moment before the read."""
    now = int(time.time() * 1000) - 1000
    series = [gauge({"__name__": "big", "namespace": "idx", "pod": "p%02d" % p, "tier": "t%d" % (p % 3),
                     "s": str(k)}, p + k * 0.25, now) for p in range(40) for k in range(10)]
    st, _, body = a.post("/api/v1/write", rw.v1(series), rw.headers(1))
    assert st == 204, body
    base = V2 + "/namespaces/idx/pods/"

    def value(path):
        st, _, body = a.get(base + path)
        if st == 404:
            return None
        assert st == 200, (path, st, body)
        return {it["describedObject"]["name"]: it["value"] for it in json.loads(body)["items"]}

    for _ in range(3):  # several reads: built once per HTTP thread, then reused
        assert value("p07/big") == {"p07": "81250m"}, value("p07/big")  # 10 x 7 + 0.25 x 45
        got = value("*/big?labelSelector=tier%3Dt1&metricLabelSelector=" + urllib.parse.quote("s in (1,2)"))
        assert got == {"p%02d" % p: "%dm" % (2000 * p + 750) for p in range(40) if p % 3 == 1}, got
    # A new series of p07 is served at once (the index is rebuilt).
    st, _, _ = a.post("/api/v1/write", rw.v1([gauge({"__name__": "big", "namespace": "idx", "pod": "p07",
                                                     "tier": "t1", "s": "99"}, 1000, now + 1)]), rw.headers(1))
    assert st == 204
    assert value("p07/big") == {"p07": "1081250m"}, value("p07/big")
    # A stale marker deletes one at once; a pod that never existed is a 404.
    st, _, _ = a.post("/api/v1/write", rw.v1([rw.series({"__name__": "big", "namespace": "idx", "pod": "p07",
                                                         "tier": "t1", "s": "99"}, [(now + 2, rw.STALE_NAN)])]),
                      rw.headers(1))
    assert st == 204
    assert value("p07/big") == {"p07": "81250m"}, value("p07/big")
    assert value("nope/big") is None


def readiness_checks():
    """/readyz: 503 until one rate window of data has been received since start, then 200."""
    with harness.Adapter(["--rate-window=3s"]) as a:
        st, _, body = a.get("/readyz")
        assert st == 503 and b"no data" in body, (st, body)
        time.sleep(0.2)
        st, _, body = a.get("/readyz")
        assert st == 503, (st, body)  # time alone does not make it ready
        now = int(time.time() * 1000)
        st, _, _ = a.post("/api/v1/write", rw.v1([gauge({"__name__": "g", "namespace": "n", "pod": "p"}, 1, now)]),
                          rw.headers(1))
        assert st == 204
        sent = time.monotonic()
        st, _, body = a.get("/readyz")
        assert st == 503 and b"waiting for one rate window" in body, (st, body)
        harness.wait_until(lambda: a.get("/readyz")[0] == 200, 10, "/readyz 200")
        assert time.monotonic() - sent >= 2.9, "ready before one rate window of data"


def main():
    readiness_checks()
    failures = []
    with harness.Adapter(["--resource-labels=node=nodes"]) as a:
        # Discovery before any data: one placeholder, never empty, never 503.
        for path in (V2, EXT):
            status, hdr, body = a.get(path)
            doc = json.loads(body)
            assert status == 200 and len(doc["resources"]) == 1, (path, status, body)
            assert doc["resources"][0]["name"].endswith("placeholder"), body
        newest_ms = int(time.time() * 1000) - 1500
        fill(a, newest_ms)
        for name, path, want_status in CASES:
            status, hdr, body = a.get(path)
            text = body.decode("utf-8")
            if status != want_status:
                failures.append("%s: %s answered %d, expected %d: %s" % (name, path, status, want_status, text))
                continue
            if not path.startswith("/openapi"):
                assert hdr.get("content-type") == "application/json", (name, hdr)
            got = normalise(text, newest_ms)
            gold = os.path.join(GOLDEN, name + ".json")
            if UPDATE:
                os.makedirs(GOLDEN, exist_ok=True)
                with open(gold, "w") as f:
                    f.write(got + "\n")
                continue
            with open(gold) as f:
                want = f.read().rstrip("\n")
            if got != want:
                failures.append("%s: %s\n  got:  %s\n  want: %s" % (name, path, got, want))
        index_checks(a)
        # Method: only GET.
        status, _, body = a.post(V2 + "/namespaces/ns1/pods/*/http_requests", b"")
        assert status == 405 and json.loads(body)["reason"] == "MethodNotAllowed", (status, body)
        # /version answers for kubectl.
        status, _, body = a.get("/version")
        assert status == 200 and json.loads(body)["gitVersion"].startswith("v"), body
        m = a.metrics()
        assert m.get("metrics_adapter_api_requests_total", code="400") == 3, m.series(
            "metrics_adapter_api_requests_total")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("ok: %d golden bodies%s" % (len(CASES), " written" if UPDATE else " match"))


if __name__ == "__main__":
    main()
