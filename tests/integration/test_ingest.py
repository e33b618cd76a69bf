#!/usr/bin/python3
"""Remote-write ingest, black box: the real binary on loopback, hand-built payloads (rw.py).

Status codes and texts, v2 written-count headers, partial success, retries,
limits, stale markers, HA replica labels, metadata, and the bearer token on a
non-loopback listener. Every effect is checked through the adapter's /metrics.
"""

import json
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import rw  # noqa: E402

WRITE = "/api/v1/write"


def now_ms():
    return int(time.time() * 1000)


def pod_series(pod, samples, name="http_requests_total", ns="default", **extra):
    labels = {"__name__": name, "namespace": ns, "pod": pod, "job": "app"}
    labels.update(extra)
    return rw.series(labels, samples)


class Ingest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = harness.Adapter(["--max-body-bytes=64Ki", "--max-series-per-metric=50"]).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.a.stop()
        assert rc == 0, "adapter exited with %d:\n%s" % (rc, cls.a.log_text())

    def post(self, body, version=1, headers=None):
        h = rw.headers(version)
        if headers:
            h.update(headers)
        return self.a.post(WRITE, body, h)

    def m(self):
        return self.a.metrics()

    def test_v1_accepted_and_counted(self):
        before = self.m()
        t = now_ms()
        body = rw.v1([pod_series("v1-a", [(t - 1000, 1.0), (t, 2.0)]), pod_series("v1-b", [(t, 5.0)])])
        status, headers, text = self.post(body)
        self.assertEqual(status, 204, text)
        self.assertEqual(text, b"")
        after = self.m()
        self.assertEqual(after.get("metrics_adapter_series_live") - before.get("metrics_adapter_series_live"), 2)
        self.assertEqual(after.get("metrics_adapter_samples_accepted_total")
                         - before.get("metrics_adapter_samples_accepted_total"), 3)
        self.assertEqual(after.get("metrics_adapter_series_created_total")
                         - before.get("metrics_adapter_series_created_total"), 2)
        self.assertEqual(after.get("metrics_adapter_remote_write_requests_total", code="204")
                         - before.get("metrics_adapter_remote_write_requests_total", code="204"), 1)
        self.assertGreaterEqual(after.get("metrics_adapter_remote_write_received_bytes_total")
                                - before.get("metrics_adapter_remote_write_received_bytes_total"), len(body))
        # v1 answers carry no v2 headers.
        self.assertNotIn("x-prometheus-remote-write-samples-written", headers)

    def test_v2_written_headers(self):
        t = now_ms()
        body = rw.v2([pod_series("v2-a", [(t - 2000, 1.0), (t - 1000, 2.0), (t, 3.0)]),
                      rw.series({"__name__": "queue_depth", "namespace": "default"}, [(t, 7.0)], type="gauge",
                                histograms=0, exemplars=2)])
        before = self.m()
        status, headers, text = self.post(body, version=2)
        self.assertEqual(status, 204, text)
        self.assertEqual(headers.get("x-prometheus-remote-write-samples-written"), "4")
        self.assertEqual(headers.get("x-prometheus-remote-write-histograms-written"), "0")
        self.assertEqual(headers.get("x-prometheus-remote-write-exemplars-written"), "0")
        after = self.m()
        self.assertEqual(after.get("metrics_adapter_samples_accepted_total")
                         - before.get("metrics_adapter_samples_accepted_total"), 4)

        # An error answer to a v2 request carries them too.
        status, headers, text = self.post(b"\xff\xff\xff\xff not snappy", version=2)
        self.assertEqual(status, 400, text)
        self.assertEqual(headers.get("x-prometheus-remote-write-samples-written"), "0")
        self.assertIn("x-prometheus-remote-write-histograms-written", headers)
        self.assertIn("x-prometheus-remote-write-exemplars-written", headers)

        # Partial: one invalid series (unsorted labels); only the valid samples are written.
        bad = rw.series([("__name__", "x"), ("b", "1"), ("a", "2")], [(t, 1.0)], sort=False)
        status, headers, text = self.post(rw.v2([pod_series("v2-b", [(t, 1.0), (t + 1, 2.0)]), bad]), version=2)
        self.assertEqual(status, 400, text)
        self.assertEqual(headers.get("x-prometheus-remote-write-samples-written"), "2")

    def test_v2_body_with_v1_content_type(self):
        t = now_ms()
        body = rw.v2([pod_series("v2-as-v1", [(t, 1.0)])])
        status, _, text = self.post(body, version=1)
        self.assertEqual(status, 400, text)
        self.assertIn(b"no series", text)

    def test_unsupported_media_type(self):
        body = rw.v1([pod_series("ct", [(now_ms(), 1.0)])])
        for ct in ("text/plain", "application/json", "application/x-protobuf;proto=foo.Bar"):
            status, _, text = self.post(body, headers={"Content-Type": ct})
            self.assertEqual(status, 415, "%s: %r" % (ct, text))
        status, _, text = self.a.post(WRITE, body, {})
        self.assertEqual(status, 415, text)

    def test_method_not_allowed(self):
        for method in ("GET", "PUT", "DELETE"):
            status, headers, _ = self.a.request(method, WRITE)
            self.assertEqual(status, 405, method)
            self.assertEqual(headers.get("allow"), "POST")

    def test_body_too_large(self):
        # 64 KiB cap (--max-body-bytes): incompressible labels make a big body.
        t = now_ms()
        big = [pod_series("big-%d-%s" % (i, os.urandom(40).hex()), [(t, 1.0)]) for i in range(1200)]
        body = rw.v1(big)
        self.assertGreater(len(body), 64 * 1024)
        before = self.m()
        status, _, _ = self.post(body)
        self.assertEqual(status, 413)
        self.assertEqual(self.m().get("metrics_adapter_series_live"), before.get("metrics_adapter_series_live"))

    def test_bad_snappy_and_bad_protobuf(self):
        status, _, text = self.post(b"\x00\x01garbage-that-is-not-snappy\xff")
        self.assertEqual(status, 400, text)
        status, _, text = self.post(b"")
        self.assertEqual(status, 400, text)
        # Valid snappy, invalid protobuf.
        import snappy
        status, _, text = self.post(snappy.compress(b"\x0a\xff\xff\xff\xff\x0f"))
        self.assertEqual(status, 400, text)

    def test_invalid_series_skipped_valid_land(self):
        t = now_ms()
        before = self.m()
        good = pod_series("valid-one", [(t, 1.0)])
        no_name = rw.series({"namespace": "default", "pod": "x"}, [(t, 1.0)])
        dup = rw.series([("__name__", "d"), ("a", "1"), ("a", "2")], [(t, 1.0)], sort=False)
        empty_value = rw.series({"__name__": "e", "pod": ""}, [(t, 1.0)])
        bad_name = rw.series({"__name__": "f", "0bad": "x"}, [(t, 1.0)])
        future = pod_series("future", [(t + 3600 * 1000, 1.0)])
        status, _, text = self.post(rw.v1([no_name, good, dup, empty_value, bad_name, future]))
        self.assertEqual(status, 400, text)
        self.assertIn(b"invalid series skipped (5 of 6)", text)
        self.assertIn(b"__name__", text)
        after = self.m()
        self.assertEqual(after.get("metrics_adapter_series_live") - before.get("metrics_adapter_series_live"), 1)
        self.assertEqual(after.get("metrics_adapter_remote_write_series_total", result="invalid")
                         - before.get("metrics_adapter_remote_write_series_total", result="invalid"), 5)
        self.assertEqual(after.get("metrics_adapter_samples_dropped_total", reason="invalid")
                         - before.get("metrics_adapter_samples_dropped_total", reason="invalid"), 5)

    def test_retry_duplicate_and_out_of_order(self):
        t = now_ms()
        body = rw.v1([pod_series("retry", [(t - 1000, 1.0), (t, 2.0)])])
        self.assertEqual(self.post(body)[0], 204)
        before = self.m()
        # Prometheus retries with the byte-identical body: 2xx, nothing stored twice.
        status, _, text = self.post(body)
        self.assertEqual(status, 204, text)
        # Older than the newest held: out of order, dropped, still 2xx.
        status, _, text = self.post(rw.v1([pod_series("retry", [(t - 500, 9.0)])]))
        self.assertEqual(status, 204, text)
        after = self.m()
        self.assertEqual(after.get("metrics_adapter_samples_dropped_total", reason="out_of_order")
                         - before.get("metrics_adapter_samples_dropped_total", reason="out_of_order"), 3)
        self.assertEqual(after.get("metrics_adapter_samples_accepted_total"),
                         before.get("metrics_adapter_samples_accepted_total"))
        self.assertEqual(after.get("metrics_adapter_series_live"), before.get("metrics_adapter_series_live"))

    def test_stale_marker_deletes_then_recreates(self):
        t = now_ms()
        self.assertEqual(self.post(rw.v1([pod_series("stale", [(t - 10, 1.0)])]))[0], 204)
        before = self.m()
        self.assertEqual(self.post(rw.v1([pod_series("stale", [(t, rw.STALE_NAN)])]))[0], 204)
        mid = self.m()
        self.assertEqual(mid.get("metrics_adapter_series_live"), before.get("metrics_adapter_series_live") - 1)
        self.assertEqual(mid.get("metrics_adapter_series_deleted_total", cause="stale")
                         - before.get("metrics_adapter_series_deleted_total", cause="stale"), 1)
        self.assertEqual(self.post(rw.v1([pod_series("stale", [(t + 10, 3.0)])]))[0], 204)
        self.assertEqual(self.m().get("metrics_adapter_series_live"), before.get("metrics_adapter_series_live"))

    def test_ha_replica_label_dropped(self):
        t = now_ms()
        before = self.m()
        a = pod_series("ha", [(t, 1.0)], prometheus_replica="prom-0")
        b = pod_series("ha", [(t, 1.0)], prometheus_replica="prom-1")
        self.assertEqual(self.post(rw.v1([a]))[0], 204)
        self.assertEqual(self.post(rw.v1([b]))[0], 204)
        after = self.m()
        self.assertEqual(after.get("metrics_adapter_series_live") - before.get("metrics_adapter_series_live"), 1)
        self.assertEqual(after.get("metrics_adapter_samples_dropped_total", reason="out_of_order")
                         - before.get("metrics_adapter_samples_dropped_total", reason="out_of_order"), 1)

    def test_metadata_only(self):
        before = self.m()
        body = rw.v1([], metadata=[("md_only_total", "counter", "Requests.", ""),
                                   ("md_only_celsius", "gauge", "", "celsius")])
        status, _, text = self.post(body)
        self.assertEqual(status, 204, text)
        # Types are remembered apart: no metric entry without a series (the
        # reaper may remove entries other tests emptied meanwhile, never add).
        self.assertLessEqual(self.m().get("metrics_adapter_metric_names_live"),
                             before.get("metrics_adapter_metric_names_live"))

    def test_metadata_for_many_families_stays_bounded(self):
        """Prometheus sends metadata for every family it scrapes: 10,000 families
        and no samples create no metric entries, and the table of types is capped
        (8,192 names); a type told first still applies when the series come."""
        before = self.m()
        fams = [("md_jobs_done", "counter", "", "")] + [("md_fam_%05d" % i, "counter", "", "")
                                                       for i in range(10000)]
        for i in range(0, len(fams), 1000):
            status, _, text = self.post(rw.v1([], metadata=fams[i:i + 1000]))
            self.assertEqual(status, 204, text)
        after = self.m()
        self.assertLessEqual(after.get("metrics_adapter_metric_names_live"),
                             before.get("metrics_adapter_metric_names_live"))
        self.assertLessEqual(after.get("metrics_adapter_map_live_entries")
                             - before.get("metrics_adapter_map_live_entries"), 8192)
        # A counter without _total, typed by the metadata above: the default rule serves its rate.
        t = now_ms()
        series = pod_series("md-0", [(t - 60000, 0.0), (t - 30000, 30.0), (t, 60.0)], name="md_jobs_done")
        status, _, text = self.post(rw.v1([series]))
        self.assertEqual(status, 204, text)
        st, _, body = self.a.get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/md-0/md_jobs_done")
        self.assertEqual(st, 200, body)
        v = json.loads(body)["items"][0]["value"]
        v = float(v[:-1]) / 1000 if v.endswith("m") else float(v)
        # rate() clamps the extrapolation at the counter's zero (the first
        # sample is 0), so the value is 60/120 s = 0.5 plus the few ms between
        # the write and the read: exactly 0.5 when both fall in the same ms.
        self.assertTrue(0.45 < v < 2, v)  # a gauge would read 60

    def test_per_metric_limit_refuses_new_series_only(self):
        t = now_ms()
        name = "limited_total"
        first = [pod_series("lim-%d" % i, [(t, 1.0)], name=name) for i in range(50)]
        self.assertEqual(self.post(rw.v1(first))[0], 204)
        before = self.m()
        more = [pod_series("lim-new-%d" % i, [(t, 1.0)], name=name) for i in range(3)]
        update = pod_series("lim-0", [(t + 1000, 2.0)], name=name)
        status, _, text = self.post(rw.v1(more + [update]))
        self.assertEqual(status, 400, text)
        self.assertIn(b"--max-series-per-metric", text)
        self.assertIn(b"3 new series refused", text)
        after = self.m()
        self.assertEqual(after.get("metrics_adapter_series_refused_total", reason="max_series_per_metric")
                         - before.get("metrics_adapter_series_refused_total", reason="max_series_per_metric"), 3)
        # The existing series kept updating.
        self.assertEqual(after.get("metrics_adapter_samples_accepted_total")
                         - before.get("metrics_adapter_samples_accepted_total"), 1)


class GlobalLimit(unittest.TestCase):
    def test_max_series(self):
        with harness.Adapter(["--max-series=2"]) as a:
            t = now_ms()
            body = rw.v1([pod_series("g-%d" % i, [(t, 1.0)]) for i in range(3)])
            status, _, text = a.post(WRITE, body, rw.headers(1))
            self.assertEqual(status, 400, text)
            self.assertIn(b"--max-series", text)
            m = a.metrics()
            self.assertEqual(m.get("metrics_adapter_series_live"), 2)
            self.assertEqual(m.get("metrics_adapter_series_refused_total", reason="max_series"), 1)


RULE_5M = """rules:
- seriesQuery: '{__name__=~"^http_requests_total$",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name:
    matches: ^(.*)_total$
    as: ""
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)
"""


class RuleWindow(unittest.TestCase):
    def test_store_keeps_the_longest_rule_window(self):
        fd, path = tempfile.mkstemp(prefix="ma-rules-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(RULE_5M)
        self.addCleanup(os.unlink, path)
        with harness.Adapter(["--config=" + path]) as a:
            self.assertEqual(a.metrics().get("metrics_adapter_store_rate_window_seconds"), 300)
            # Series no rule can use are dropped (204) and counted; the others are stored.
            t = now_ms()
            body = rw.v1([pod_series("w", [(t, 1.0)]), pod_series("w", [(t, 1.0)], name="other_total")])
            status, _, text = a.post(WRITE, body, rw.headers(1))
            self.assertEqual(status, 204, text)
            m = a.metrics()
            self.assertEqual(m.get("metrics_adapter_series_live"), 1)
            self.assertEqual(m.get("metrics_adapter_series_refused_total", reason="no_rule"), 1)
        with harness.Adapter() as a:
            self.assertEqual(a.metrics().get("metrics_adapter_store_rate_window_seconds"), 120)


class Token(unittest.TestCase):
    def setUp(self):
        fd, self.token_file = tempfile.mkstemp(prefix="ma-token-")
        with os.fdopen(fd, "w") as f:
            f.write("s3cret-token\n")
        self.addCleanup(os.unlink, self.token_file)

    def test_non_loopback_requires_bearer_token(self):
        args = ["--listen-address=0.0.0.0:0", "--ingest-token-file=" + self.token_file]
        with harness.Adapter(args) as a:
            body = rw.v1([pod_series("tok", [(now_ms(), 1.0)])])
            status, headers, _ = a.post(WRITE, body, rw.headers(1))
            self.assertEqual(status, 401)
            self.assertEqual(headers.get("www-authenticate"), "Bearer")
            self.assertEqual(a.post(WRITE, body, rw.headers(1, token="wrong"))[0], 401)
            self.assertEqual(a.post(WRITE, body, rw.headers(1, token="s3cret-token-longer"))[0], 401)
            self.assertEqual(a.post(WRITE, body, rw.headers(1, token="s3cret-toke"))[0], 401)
            self.assertEqual(a.post(WRITE, body, rw.headers(1, token="s3cret-token"))[0], 204)
            m = a.metrics()
            self.assertEqual(m.get("metrics_adapter_series_live"), 1)
            self.assertEqual(m.get("metrics_adapter_remote_write_requests_total", code="401"), 4)

    def test_loopback_needs_no_token(self):
        with harness.Adapter(["--ingest-token-file=" + self.token_file]) as a:
            body = rw.v1([pod_series("tok", [(now_ms(), 1.0)])])
            self.assertEqual(a.post(WRITE, body, rw.headers(1))[0], 204)

    def test_non_loopback_without_token_is_a_startup_error(self):
        code, out, err = harness.run(["--listen-address=0.0.0.0:0"])
        self.assertEqual(code, 2, err)
        self.assertIn("--ingest-token-file", err)

    def test_empty_token_file_is_a_startup_error(self):
        with open(self.token_file, "w"):
            pass
        code, out, err = harness.run(["--listen-address=0.0.0.0:0", "--ingest-token-file=" + self.token_file])
        self.assertNotEqual(code, 0, err)
        self.assertIn("--ingest-token-file", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
