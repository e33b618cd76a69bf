#!/usr/bin/python3
"""GET /metrics on the live binary: both formats, gzip, lint (issue 7, evidence 1).

  - text 0.0.4 (no Accept, or text/plain): `promtool check metrics` passes
    with no lint output at all;
  - OpenMetrics 1.0 with the Accept header Prometheus 2.42 sends: the
    content type, counter families named without _total in HELP/TYPE and
    samples with it, `# EOF` last, every sample in a declared family, and the
    same samples as the text form; promtool cannot read OpenMetrics, so the
    checks are done here;
  - gzip when Accept-Encoding asks (Prometheus always does), identity
    otherwise;
  - the families the issue asks for are present, with values that follow a
    known write (series live, maplib live entries per table kind, inserts),
    and metrics_adapter_metrics_scrapes_total{format} counts each format.
"""

import gzip
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import rw  # noqa: E402

PROM_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
               "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"
OM_CT = "application/openmetrics-text; version=1.0.0; charset=utf-8"
N_SERIES = 37

REQUIRED = [
    "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_cpu_seconds_total",
    "process_open_fds", "process_max_fds", "process_start_time_seconds", "metrics_adapter_build_info",
    "metrics_adapter_map_live_entries", "metrics_adapter_map_pending_entries",
    "metrics_adapter_map_reclaimed_entries_total", "metrics_adapter_map_buckets",
    "metrics_adapter_map_resizes_total", "metrics_adapter_map_inserts_total", "metrics_adapter_map_deletes_total",
    "metrics_adapter_rcu_grace_period_seconds_bucket",
    "metrics_adapter_series_live", "metrics_adapter_groups_live", "metrics_adapter_series_created_total",
    "metrics_adapter_series_deleted_total", "metrics_adapter_series_refused_total",
    "metrics_adapter_remote_write_requests_total", "metrics_adapter_remote_write_received_bytes_total",
    "metrics_adapter_samples_accepted_total", "metrics_adapter_samples_dropped_total",
    "metrics_adapter_http_requests_total", "metrics_adapter_http_request_duration_seconds_bucket",
    "metrics_adapter_metric_reads_total",
    "metrics_adapter_metrics_scrapes_total", "metrics_adapter_memory_valve_state",
    "metrics_adapter_memory_limit_bytes",
]


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode()


def om_check(tc, text):
    """A strict reading of the OpenMetrics text: families, names, # EOF."""
    lines = text.split("\n")
    tc.assertEqual(lines[-1], "", "no newline after # EOF")
    tc.assertEqual(lines[-2], "# EOF")
    families, current = {}, None
    for line in lines[:-2]:
        tc.assertTrue(line, "empty line in OpenMetrics")
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            tc.assertNotIn(name, families, "family %s declared twice" % name)
            tc.assertIn(typ, ("counter", "gauge", "histogram", "summary", "unknown", "info", "stateset",
                              "gaugehistogram"))
            if typ == "counter":
                tc.assertFalse(name.endswith("_total"), "counter family %s keeps _total" % name)
            families[name] = typ
            current = name
            continue
        if line.startswith("# HELP "):
            continue
        tc.assertFalse(line.startswith("#"), "unexpected comment %r" % line)
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        typ = families.get(current)
        allowed = {
            "counter": [current + "_total", current + "_created"],
            "histogram": [current + s for s in ("_bucket", "_sum", "_count", "_created")],
        }.get(typ, [current])
        tc.assertIn(name, allowed, "sample %r outside its family %s (%s)" % (line, current, typ))
    return families


class MetricsTest(unittest.TestCase):
    def test_formats(self):
        with harness.Adapter(["--secure-port=0", "--memory-limit=2Gi"]) as a:
            t = int(time.time() * 1000)
            series = [rw.series({"__name__": "it_metric", "namespace": "ns", "pod": "p%d" % i}, [(t, 1.0)])
                      for i in range(N_SERIES)]
            st, _, body = a.post("/api/v1/write", rw.v1(series), rw.headers(1))
            self.assertEqual(st, 204, body)

            # HPA reads, counted by API version and outcome; and the HTTP layer's view by handler.
            st, _, body = a.get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/p0/it_metric")
            self.assertEqual(st, 200, body)
            st, _, body = a.get("/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/pods/p0/no_such_metric")
            self.assertEqual(st, 404, body)
            st, _, body = a.get("/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/it_metric")
            self.assertEqual(st, 200, body)

            # Text 0.0.4, identity.
            st, hdrs, body = a.get("/metrics")
            self.assertEqual(st, 200)
            self.assertEqual(hdrs["content-type"], TEXT_CT)
            self.assertNotIn("content-encoding", hdrs)
            text = body.decode()
            rc, out = promtool_check(text)
            self.assertEqual((rc, out), (0, ""), "promtool check metrics:\n" + out)
            m = harness.parse_metrics(text)
            for name in REQUIRED:
                self.assertTrue(any(k[0] == name for k in m.samples), "%s missing" % name)
            self.assertEqual(m.get("metrics_adapter_series_live"), N_SERIES)
            self.assertGreaterEqual(m.get("metrics_adapter_map_live_entries"), N_SERIES)
            self.assertEqual(m.get("metrics_adapter_memory_limit_bytes"), 2 << 30)
            self.assertEqual(m.get("metrics_adapter_memory_valve_state"), 0)
            reads = "metrics_adapter_metric_reads_total"
            self.assertEqual(m.get(reads, api="custom.metrics.k8s.io/v1beta2", outcome="ok"), 1)
            self.assertEqual(m.get(reads, api="custom.metrics.k8s.io/v1beta1", outcome="not_found"), 1)
            self.assertEqual(m.get(reads, api="external.metrics.k8s.io/v1beta1", outcome="ok"), 1)
            self.assertEqual(m.get(reads, api="custom.metrics.k8s.io/v1beta1", outcome="ok"), 0)
            http = "metrics_adapter_http_requests_total"
            self.assertEqual(m.get(http, listener="ingest", handler="/api/v1/write", code="204"), 1)
            self.assertEqual(m.get("metrics_adapter_http_request_duration_seconds_count", listener="ingest",
                                   handler="/api/v1/write"), 1)
            self.assertGreater(m.get("process_resident_memory_bytes"), 1 << 20)
            # Per table kind: the series tables hold exactly the series written.
            self.assertEqual(m.get("metrics_adapter_map_table_live_entries", table="store_series"), N_SERIES)
            self.assertGreaterEqual(m.get("metrics_adapter_map_table_inserts_total", table="store_series"), N_SERIES)

            # Text, gzip.
            st, hdrs, body = a.get("/metrics", headers={"Accept-Encoding": "gzip"})
            self.assertEqual(st, 200)
            self.assertEqual(hdrs.get("content-encoding"), "gzip")
            rc, out = promtool_check(gzip.decompress(body).decode())
            self.assertEqual((rc, out), (0, ""), out)

            # OpenMetrics as Prometheus asks for it.
            st, hdrs, body = a.get("/metrics", headers={"Accept": PROM_ACCEPT, "Accept-Encoding": "gzip"})
            self.assertEqual(st, 200)
            self.assertEqual(hdrs["content-type"], OM_CT)
            self.assertEqual(hdrs.get("content-encoding"), "gzip")
            om = gzip.decompress(body).decode()
            families = om_check(self, om)
            self.assertEqual(families.get("metrics_adapter_remote_write_requests"), "counter")
            self.assertEqual(families.get("process_cpu_seconds"), "counter")
            self.assertEqual(families.get("metrics_adapter_rcu_grace_period_seconds"), "histogram")
            self.assertIn('metrics_adapter_remote_write_requests_total{code="204"} 1\n', om)
            # The same samples as the text form, apart from values that move between scrapes.
            moving = re.compile(r"^(process_|metrics_adapter_(http_requests|metrics_scrapes|rcu_grace|"
                                r"memory_valve_resident|remote_write_received|map_|series_table))")
            sample_names = lambda s: {ln.split(" ")[0] for ln in s.split("\n")
                                      if ln and not ln.startswith("#") and not moving.match(ln)}
            st, _, body = a.get("/metrics")
            self.assertEqual(sample_names(om), sample_names(body.decode()))

            m = a.metrics()
            self.assertEqual(m.get("metrics_adapter_metrics_scrapes_total", format="openmetrics"), 1)
            self.assertEqual(m.get("metrics_adapter_metrics_scrapes_total", format="text"), 4)
            self.assertEqual(m.get("metrics_adapter_metrics_scrapes_gzip_total"), 2)

            # Other methods.
            st, hdrs, _ = a.request("POST", "/metrics", body=b"")
            self.assertEqual(st, 405)


if __name__ == "__main__":
    unittest.main(verbosity=2)
