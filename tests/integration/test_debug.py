#!/usr/bin/python3
"""GET /debug/maps: off by default, loopback only, per-table statistics as JSON.

  - without --debug-endpoint the path is a 404;
  - with it, on a loopback listener: application/json; the series tables
    hold exactly the series written; for every table the chain-length
    histogram accounts for its non-empty buckets and, weighted by length,
    for its live entries (nothing writes during the read); non-empty buckets
    never exceed buckets; ?limit bounds the table list; POST is a 405;
  - with it on a non-loopback listener (0.0.0.0, reached through 127.0.0.1)
    the endpoint is not served and the log says so.
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

NAMESPACES = 5
PODS = 60


class DebugTest(unittest.TestCase):
    def test_off_by_default(self):
        with harness.Adapter() as a:
            self.assertEqual(a.get("/debug/maps")[0], 404)

    def test_maps(self):
        with harness.Adapter(["--debug-endpoint"]) as a:
            t = int(time.time() * 1000)
            series = [rw.series({"__name__": "dbg_metric", "namespace": "ns%d" % n, "pod": "p%d" % i}, [(t, 1.0)])
                      for n in range(NAMESPACES) for i in range(PODS)]
            st, _, body = a.post("/api/v1/write", rw.v1(series), rw.headers(1))
            self.assertEqual(st, 204, body)

            st, hdrs, body = a.get("/debug/maps")
            self.assertEqual(st, 200, body)
            self.assertTrue(hdrs["content-type"].startswith("application/json"), hdrs)
            doc = json.loads(body)
            kinds = {k["table"]: k for k in doc["kinds"]}
            self.assertIn("store_series", kinds)
            self.assertEqual(kinds["store_series"]["live"], NAMESPACES * PODS)
            self.assertGreaterEqual(kinds["store_series"]["maps"], NAMESPACES)
            self.assertEqual(doc["maps_total"], sum(k["maps"] for k in doc["kinds"]))
            self.assertFalse(doc["truncated"])
            self.assertEqual(doc["tables_listed"], len(doc["tables"]))
            for tb in doc["tables"] + doc["kinds"]:
                chains = tb["chains"]
                self.assertEqual(sum(chains.values()), tb["nonempty_buckets"], tb)
                self.assertLessEqual(tb["nonempty_buckets"], tb["buckets"], tb)
                self.assertEqual(tb["pending"], 0, tb)
                if chains["8+"] == 0:
                    weighted = sum(int(k.rstrip("+")) * v for k, v in chains.items())
                    self.assertEqual(weighted, tb["live"], tb)
                if tb["live"]:
                    self.assertGreaterEqual(tb["max_chain"], 1)

            st, _, body = a.get("/debug/maps?limit=1")
            doc = json.loads(body)
            self.assertEqual(len(doc["tables"]), 1)
            self.assertTrue(doc["truncated"])
            self.assertEqual(a.get("/debug/maps?limit=x")[0], 400)
            self.assertEqual(a.request("POST", "/debug/maps", body=b"")[0], 405)

    def test_not_on_non_loopback(self):
        with tempfile.TemporaryDirectory() as tmp:
            tok = os.path.join(tmp, "token")
            with open(tok, "w") as f:
                f.write("s3cret\n")
            port = harness.free_port()
            with harness.Adapter(["--debug-endpoint", "--listen-address=0.0.0.0:%d" % port,
                                  "--ingest-token-file=" + tok]) as a:
                self.assertEqual(a.get("/debug/maps")[0], 404)
                self.assertIn('msg="debug endpoint not served: the listener is not loopback"', a.log_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
