#!/usr/bin/python3
"""Series churn over HTTP with no reads: memory follows the live set (label memory, SERIAL).

A steady live set of LIVE series (pod-like label sets, 6 labels). Every
request creates BATCH new series and stale-marks the BATCH oldest ones, so
series are created and deleted continuously while nothing reads them (only
/metrics is scraped, every CHECK_EVERY requests). After a warm-up the test
records the adapter's RSS, churns for CHURN_SECONDS more and asserts:

  - series_live equals LIVE after every checked request (each request's
    effect is complete when it is answered);
  - maplib's pending reclaim (metrics_adapter_map_pending_entries: unlinked,
    waiting for a grace period) stays under PENDING_BOUND throughout;
  - RSS at the end is within RSS_TOLERANCE (relative) + RSS_SLACK of RSS
    after warm-up: deleted series are reclaimed and their memory reused;
  - finally, stale-marking everything leaves no series, and a reaper pass
    (--reap-interval=1s) removes the emptied groups.

Knobs (environment): MA_CHURN_SECONDS (default 20), MA_CHURN_LIVE (10000).
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import rw  # noqa: E402

CHURN_SECONDS = float(os.environ.get("MA_CHURN_SECONDS", "20"))
WARMUP_SECONDS = 5.0
LIVE = int(os.environ.get("MA_CHURN_LIVE", "10000"))
BATCH = 500
CHECK_EVERY = 5
PENDING_BOUND = 20 * BATCH  # a grace period takes milliseconds; 20 requests' worth is generous
RSS_TOLERANCE = 0.10
RSS_SLACK = 2 << 20
NAMESPACES = 8
WRITE = "/api/v1/write"


def labels(i):
    ns = "churn-ns-%d" % (i % NAMESPACES)
    return [("__name__", "container_cpu_usage_seconds_total"), ("container", "app"),
            ("instance", "10.%d.%d.%d:10250" % (i >> 16 & 255, i >> 8 & 255, i & 255)),
            ("job", "kubelet"), ("namespace", ns), ("pod", "app-%08x-%05d" % (i * 2654435761 & 0xFFFFFFFF, i))]


def body(new_ids, stale_ids, ts):
    series = [rw.Series(labels(i), [(ts, float(i))]) for i in new_ids]
    series += [rw.Series(labels(i), [(ts, rw.STALE_NAN)]) for i in stale_ids]
    return rw.v1(series)


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


class Churn(unittest.TestCase):
    def test_churn_without_reads(self):
        with harness.Adapter(["--reap-interval=1s"]) as a:
            headers = rw.headers(1)
            ts0 = int(time.time() * 1000)
            req = 0

            def post(b):
                status, _, text = a.post(WRITE, b, headers)
                self.assertEqual(status, 204, text)

            # The live set, in batches.
            for start in range(0, LIVE, BATCH):
                req += 1
                post(body(range(start, start + BATCH), [], ts0 + req))
            self.assertEqual(a.metrics().get("metrics_adapter_series_live"), LIVE)

            oldest, nxt = 0, LIVE
            max_pending, checks = 0, 0
            rss_warm = None
            t_start = time.monotonic()
            t_warm = t_start + WARMUP_SECONDS
            t_end = t_warm + CHURN_SECONDS
            while True:
                now = time.monotonic()
                if rss_warm is None and now >= t_warm:
                    rss_warm = rss_bytes(a.proc.pid)
                if now >= t_end:
                    break
                req += 1
                post(body(range(nxt, nxt + BATCH), range(oldest, oldest + BATCH), ts0 + req))
                nxt += BATCH
                oldest += BATCH
                if req % CHECK_EVERY == 0:
                    m = a.metrics()
                    checks += 1
                    self.assertEqual(m.get("metrics_adapter_series_live"), LIVE)
                    pending = m.get("metrics_adapter_map_pending_entries")
                    max_pending = max(max_pending, pending)
                    self.assertLess(pending, PENDING_BOUND)
            rss_end = rss_bytes(a.proc.pid)
            m = a.metrics()
            churned = nxt - LIVE
            print("\nchurn: %d series created and %d deleted in %.1f s (%d checks), live %d, "
                  "max pending %d, RSS after warm-up %.1f MiB, at end %.1f MiB (%+.1f%%)"
                  % (churned, churned, time.monotonic() - t_start, checks, LIVE, max_pending,
                     rss_warm / 2**20, rss_end / 2**20, 100.0 * (rss_end - rss_warm) / rss_warm), file=sys.stderr)
            self.assertGreater(churned, 5 * LIVE // 2, "too little churn to mean anything")
            self.assertEqual(m.get("metrics_adapter_series_deleted_total", cause="stale"), churned)
            self.assertLessEqual(rss_end, rss_warm * (1 + RSS_TOLERANCE) + RSS_SLACK)

            # Stale-mark everything: no series left; the reaper then removes the empty groups.
            req += 1
            for start in range(oldest, nxt, BATCH):
                post(body([], range(start, min(start + BATCH, nxt)), ts0 + req))
            m = a.metrics()
            self.assertEqual(m.get("metrics_adapter_series_live"), 0)
            harness.wait_until(lambda: a.metrics().get("metrics_adapter_groups_live") == 0, 10,
                               "the reaper to remove the emptied groups")
            harness.wait_until(lambda: a.metrics().get("metrics_adapter_map_pending_entries") == 0, 10,
                               "pending reclaim to drain")


if __name__ == "__main__":
    unittest.main(verbosity=2)
