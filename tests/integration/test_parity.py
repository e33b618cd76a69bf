"""Parity with Prometheus 2.42, exact part (issue 4, evidence 4a).

The same sample sets go by remote write to the adapter and to a real Prometheus
2.42 receiver (--web.enable-remote-write-receiver); the adapter's pods-* answer
for metric x (served by the default rule sum(rate(x_total[2m])) by (pod)) is
compared with Prometheus's own sum(rate(x_total{namespace="par"}[2m])) by (pod)
evaluated at the adapter request's time.

The request's exact arrival is only known to within the bracket [before, after]
measured around it, so the sample sets are built so that rate() is the same for
every evaluation time in that bracket: irregular intervals (5-15 s), the newest
sample 1-3 s before the request and the oldest sample inside the window close
to its start, so that no sample crosses a window edge and neither edge gap
crosses Prometheus's 1.1-average-interval extrapolation threshold while the
request runs. Prometheus is queried at both ends of the bracket and must agree
with itself there, which checks that assumption.

Values are large (rates of 2,000-50,000 per second) so that the adapter's
quantity, rounded away from zero to a milli, is within 5e-7 relative of the
double it computed; the parser is kubernetes.utils.parse_quantity. Tolerances:
1e-6 relative for steadily increasing counters, 1e-3 for pods whose series
include a counter reset. Several series per pod are summed. No stale markers
(the adapter drops stale series at once, a documented difference).
"""

import json
import random
import sys
import time

from kubernetes.utils import parse_quantity

import harness
import prom
import rw

NS = "par"
WINDOW_MS = 120_000


def make_series(rng, newest_ms, reset):
    """One counter's samples: irregular steps, oldest just inside the window after the request."""
    rate = rng.uniform(2000, 50000)
    # The newest sample 1-3 s before the request; walk back until just past
    # the window's start (which moves forward by the request's duration).
    t = newest_ms - rng.randint(0, 2000)
    times = [t]
    while True:
        step = rng.randint(5000, 15000)
        if times[-1] - step < newest_ms - WINDOW_MS + 6000:
            break
        times.append(times[-1] - step)
    times.reverse()
    # Start 2-3 s after the window's start, so that the edge gap stays well
    # under 1.1 x the average interval whatever the exact evaluation time.
    start = newest_ms - WINDOW_MS + 2000 + rng.randint(0, 1000)
    times.insert(0, start)
    v = rng.uniform(1e6, 5e6)
    pts = []
    for i, ts in enumerate(times):
        if i:
            v += rate * (ts - times[i - 1]) / 1000.0 * rng.uniform(0.9, 1.1)
        if reset and i == len(times) // 2:
            v = rate * rng.uniform(1, 3)  # the process restarted: a counter reset
        pts.append((ts, v))
    return pts


def main():
    if not prom.available():
        print("SKIP: prometheus not installed")
        return
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 4242)
    cfg = prom.config()
    with harness.Adapter([]) as a, prom.Prometheus(cfg, args=["--web.enable-remote-write-receiver"]) as p:
        failures = []
        for rnd in range(3):
            newest_ms = int(time.time() * 1000) - 1000
            metric = "par%d_requests" % rnd
            series, reset_pods = [], set()
            for pod in range(12):
                for k in range(rng.randint(1, 4)):
                    reset = pod % 4 == 3 and k == 0
                    if reset:
                        reset_pods.add("pod-%d" % pod)
                    labels = {"__name__": metric + "_total", "namespace": NS, "pod": "pod-%d" % pod,
                              "instance": "i%d" % k}
                    series.append(rw.series(labels, make_series(rng, newest_ms, reset)))
            body = rw.v1(series)
            for port in (a.port, p.port):
                st, _, text = harness.http_post(port, "/api/v1/write", body, rw.headers(1))
                assert st in (200, 204), (port, st, text)
            before = time.time()
            st, _, text = a.get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/pods/*/%s" % (NS, metric))
            after = time.time()
            assert st == 200, (st, text)
            got = {it["describedObject"]["name"]: float(parse_quantity(it["value"]))
                   for it in json.loads(text)["items"]}
            q = 'sum(rate(%s_total{namespace="%s"}[2m])) by (pod)' % (metric, NS)
            lo = {m["pod"]: v for m, v in p.query(q, at=before)}
            hi = {m["pod"]: v for m, v in p.query(q, at=after)}
            assert set(lo) == set(hi) == set(got), (sorted(lo), sorted(hi), sorted(got))
            for pod, want in sorted(lo.items()):
                tol = 1e-3 if pod in reset_pods else 1e-6
                assert abs(hi[pod] - want) <= 1e-9 * abs(want), \
                    "Prometheus moved inside the bracket for %s: %r vs %r (test set-up)" % (pod, want, hi[pod])
                rel = abs(got[pod] - want) / abs(want)
                line = "round %d %s: adapter %.6f prometheus %.6f rel %.2e (tol %g)" % (
                    rnd, pod, got[pod], want, rel, tol)
                print(line)
                if rel > tol:
                    failures.append(line)
        if failures:
            print("FAILED:\n" + "\n".join(failures))
            sys.exit(1)
    print("ok: adapter and Prometheus agree")


if __name__ == "__main__":
    main()
