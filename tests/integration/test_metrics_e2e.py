#!/usr/bin/python3
"""A real Prometheus 2.42 scrapes the adapter every second (issue 7, evidence 2).

The adapter first receives a known number of series by remote write. Then,
through Prometheus's query API only:

  - up == 1 for the job, and the scrape negotiated OpenMetrics (Prometheus
    asks for it first): metrics_adapter_metrics_scrapes_total{format=
    "openmetrics"} increases from one query to the next while the text count
    stays 0;
  - process_resident_memory_bytes is there and agrees with /proc/PID/statm
    within a factor of two;
  - maplib's live-entry gauge for the series tables equals the number of
    series written, and so does metrics_adapter_series_live;
  - counters arrive under their _total names (remote-write requests);
  - the alert rules of deploy/monitoring load into this Prometheus and
    none fires on a healthy adapter.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prom  # noqa: E402
import rw  # noqa: E402

N_SERIES = 123
JOB = "metrics-adapter"
ALERTS = os.path.join(harness.ROOT, "deploy", "monitoring", "alerts.yaml")


def rss_of(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@unittest.skipUnless(prom.available(), "prometheus not installed")
class ScrapeE2ETest(unittest.TestCase):
    def test_prometheus_scrapes(self):
        with harness.Adapter() as a:
            t = int(time.time() * 1000)
            series = [rw.series({"__name__": "e2e_gauge", "namespace": "ns", "pod": "p%d" % i}, [(t, float(i))])
                      for i in range(N_SERIES)]
            st, _, body = a.post("/api/v1/write", rw.v1(series), rw.headers(1))
            self.assertEqual(st, 204, body)

            cfg = prom.config(scrape=[(JOB, ["127.0.0.1:%d" % a.port])])
            cfg += "rule_files:\n  - %s\n" % ALERTS
            with prom.Prometheus(cfg) as p:
                p.wait_for('up{job="%s"} == 1' % JOB, timeout=60)
                sel = '{job="%s"}' % JOB

                # The OpenMetrics scrape counter increases, scrape after scrape.
                om = 'metrics_adapter_metrics_scrapes_total{job="%s",format="openmetrics"}' % JOB
                first = harness.wait_until(lambda: p.query_scalar(om), 30, om)
                later = harness.wait_until(lambda: (p.query_scalar(om) or 0) >= first + 3 and p.query_scalar(om),
                                           30, "%s to pass %d" % (om, first + 3), interval=0.5)
                self.assertGreaterEqual(later, first + 3)
                self.assertEqual(p.query_scalar('metrics_adapter_metrics_scrapes_total{job="%s",format="text"}'
                                                % JOB), 0)

                rss = p.query_scalar("process_resident_memory_bytes" + sel)
                now_rss = rss_of(a.proc.pid)
                self.assertIsNotNone(rss)
                self.assertGreater(rss, now_rss / 2)
                self.assertLess(rss, now_rss * 2)
                for name in ("process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds",
                             "metrics_adapter_build_info"):
                    self.assertIsNotNone(p.query_scalar(name + sel), name)

                live = p.query_scalar('metrics_adapter_map_table_live_entries{job="%s",table="store_series"}'
                                      % JOB)
                self.assertEqual(live, N_SERIES)
                self.assertEqual(p.query_scalar("metrics_adapter_series_live" + sel), N_SERIES)
                self.assertEqual(p.query_scalar('metrics_adapter_remote_write_requests_total{job="%s",code="204"}'
                                                % JOB), 1)
                self.assertIsNotNone(p.query_scalar("metrics_adapter_memory_valve_state" + sel))
                # The grace-period histogram reads as one.
                q = p.query_scalar('sum(metrics_adapter_rcu_grace_period_seconds_count{job="%s"})' % JOB)
                self.assertGreater(q, 0)

                # The alert rules load and none fires.
                groups = p.api("/api/v1/rules")["groups"]
                rules = [r for g in groups for r in g["rules"]]
                self.assertGreaterEqual(len(rules), 10)
                self.assertTrue(all(r.get("health") in ("ok", "unknown") for r in rules),
                                [(r["name"], r.get("health"), r.get("lastError")) for r in rules])
                firing = [r["name"] for r in rules if r.get("state") == "firing"]
                self.assertEqual(firing, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
