#!/usr/bin/python3
"""End to end with a real Prometheus 2.42: remote write in, stale markers out.

A tiny scrape target (an HTTP server in this process, on a free loopback
port) serves a few series. Prometheus scrapes it every second and
remote-writes to the adapter. The test waits (with a deadline) until the
target's series are in the adapter's store, then stops the target: the next
failed scrape makes Prometheus send stale markers for every series of that
target, and the adapter must delete them at once (series_live falls by the
target's series, series_deleted_total{cause="stale"} rises by as many).

The series Prometheus adds itself for each target (up, scrape_duration_seconds,
scrape_samples_scraped, scrape_samples_post_metric_relabeling,
scrape_series_added) keep being written while the target is down, so they are
the baseline that remains.
"""

import http.server
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prom  # noqa: E402

TARGET_SERIES = [
    ('stale_e2e_requests_total{pod="a"}', 10),
    ('stale_e2e_requests_total{pod="b"}', 20),
    ('stale_e2e_queue_depth{queue="q"}', 3),
    ('stale_e2e_temperature_celsius', 21.5),
]
PER_TARGET_SERIES = 5  # up, scrape_duration_seconds, scrape_samples_scraped, ..._post_metric_relabeling, ..._series_added
DEADLINE = 60


class Target:
    """A scrape target serving TARGET_SERIES in the text format, counters increasing per scrape."""

    def __init__(self):
        self.scrapes = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.scrapes += 1
                lines = ["# TYPE stale_e2e_requests_total counter", "# TYPE stale_e2e_queue_depth gauge"]
                for name, v in TARGET_SERIES:
                    lines.append("%s %g" % (name, v + outer.scrapes))
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@unittest.skipUnless(prom.available(), "prometheus not installed")
class StaleMarkers(unittest.TestCase):
    def test_stopped_target_is_removed_by_stale_markers(self):
        target = Target()
        self.addCleanup(lambda: target.server.socket.fileno() != -1 and target.stop())
        with harness.Adapter() as a:
            cfg = prom.config(scrape=[("stale-target", ["127.0.0.1:%d" % target.port])],
                              remote_write=["http://127.0.0.1:%d/api/v1/write" % a.port])
            with prom.Prometheus(cfg) as p:
                expected = len(TARGET_SERIES) + PER_TARGET_SERIES

                def all_in():
                    m = a.metrics()
                    return m if m.get("metrics_adapter_series_live") == expected else None
                m = harness.wait_until(all_in, DEADLINE, "the target's %d series in the store" % expected,
                                       interval=0.25)
                self.assertEqual(m.get("metrics_adapter_series_deleted_total", cause="stale"), 0)
                self.assertGreater(m.get("metrics_adapter_samples_accepted_total"), 0)
                # Metadata arrived or will: the store knows the metric names.
                self.assertGreaterEqual(m.get("metrics_adapter_metric_names_live"), 3)
                # Prometheus agrees the target is up.
                self.assertEqual(p.query_scalar('up{job="stale-target"}'), 1.0)

                target.stop()

                def removed():
                    m = a.metrics()
                    return m if m.get("metrics_adapter_series_live") == PER_TARGET_SERIES else None
                m = harness.wait_until(removed, DEADLINE, "stale markers to remove the target's series",
                                       interval=0.25)
                self.assertEqual(m.get("metrics_adapter_series_deleted_total", cause="stale"), len(TARGET_SERIES))
                self.assertEqual(m.get("metrics_adapter_series_deleted_total", cause="ttl"), 0)
                self.assertEqual(p.query_scalar('up{job="stale-target"}'), 0.0)
                # The remote-write requests were all accepted.
                self.assertEqual(m.get("metrics_adapter_remote_write_requests_total", code="400"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
