#!/usr/bin/python3
"""What a scrape of /metrics and a read of /debug/maps cost with SERIES live series.

    MA_BIN=build/bin/metrics-adapter /usr/bin/python3 bench/metrics/scrape_cost.py [SERIES]

Starts the adapter on loopback (harness.py), writes SERIES series (default
100000: 50 metric names x 20 namespaces), then times 50 scrapes in each
format (client-side wall time, one connection per request) and 5 reads of
/debug/maps. Prints bytes on the wire, median and p90.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
import harness  # noqa: E402
import rw  # noqa: E402

SERIES = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
PROM_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
               "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def timed(a, path, headers, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        st, _, body = a.get(path, headers=headers)
        ts.append(time.perf_counter() - t0)
        assert st == 200, st
    ts.sort()
    return len(body), ts[len(ts) // 2], ts[int(len(ts) * 0.9)]


with harness.Adapter(["--memory-limit=0", "--debug-endpoint"]) as a:
    t = int(time.time() * 1000)
    for k in range(0, SERIES, 10000):
        batch = [rw.series({"__name__": "m%d" % (i % 50), "namespace": "ns%d" % (i % 20), "pod": "p%d" % (k + i)},
                           [(t, 1.0)]) for i in range(min(10000, SERIES - k))]
        st, _, body = a.post("/api/v1/write", rw.v1(batch), rw.headers(1))
        assert st == 204, body
    for name, hdr in [("text 0.0.4", {}), ("openmetrics+gzip", {"Accept": PROM_ACCEPT, "Accept-Encoding": "gzip"})]:
        n, med, p90 = timed(a, "/metrics", hdr, 50)
        print("/metrics %-17s %7d bytes  median %.2f ms  p90 %.2f ms" % (name, n, med * 1e3, p90 * 1e3))
    n, med, p90 = timed(a, "/debug/maps?limit=0", {}, 5)
    print("/debug/maps (%d series)    %7d bytes  median %.1f ms" % (SERIES, n, med * 1e3))
