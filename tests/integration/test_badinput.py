#!/usr/bin/python3
"""Bad input over HTTP against the real binary (DESIGN 5 and 6).

Every case sends something broken or hostile, asserts the status and body the
contract gives, and then checks that the series stored before it are served
exactly as before (the same metrics-API body, byte for byte: a gauge's value
and its newest-sample timestamp do not move unless a sample for it lands).
"""

import json
import os
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import rw  # noqa: E402
import snappy  # noqa: E402

WRITE = "/api/v1/write"
BODY_CAP = 64 * 1024
NS = "bi"
API = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/pods" % NS
HTTP_TIMEOUT_S = 2


def now_ms():
    return int(time.time() * 1000)


def gauge(pod, samples, name="bi_gauge", ns=NS, sort=True, extra=None):
    labels = [("__name__", name), ("namespace", ns), ("pod", pod)]
    if extra:
        labels += extra
    return rw.series(labels, samples, sort=sort)


def recv_all(sock, deadline):
    """Read until the peer closes or the deadline passes; (bytes, closed)."""
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = harness.Adapter(["--max-body-bytes=64Ki", "--max-decoded-bytes=1Mi",
                                 "--http-timeout=%ds" % HTTP_TIMEOUT_S, "--max-label-value-length=4096",
                                 "--series-ttl=10m", "--rate-window=2m"]).start()
        t = now_ms()
        cls.t0 = t
        body = rw.v1([gauge("keep-a", [(t - 2000, 3.0), (t - 1000, 7.5)], name="bi_kept"),
                      gauge("keep-b", [(t - 1000, 2.0)], name="bi_kept")],
                     metadata=[("bi_kept", "gauge", "", "")])
        status, _, text = cls.a.post(WRITE, body, rw.headers(1))
        assert status == 204, (status, text)
        cls.baseline = {}
        for path in cls.kept_paths():
            status, _, text = cls.a.get(path)
            assert status == 200, (path, status, text)
            cls.baseline[path] = text

    @classmethod
    def kept_paths(cls):
        return [API + "/keep-a/bi_kept", API + "/keep-b/bi_kept", API + "/*/bi_kept",
                "/apis/custom.metrics.k8s.io/v1beta1/namespaces/%s/pods/keep-a/bi_kept" % NS,
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/%s/bi_kept" % NS]

    @classmethod
    def tearDownClass(cls):
        rc = cls.a.stop()
        assert rc == 0, "adapter exited with %d:\n%s" % (rc, cls.a.log_text())

    def tearDown(self):
        self.assert_kept()

    # -- helpers -----------------------------------------------------------

    def assert_kept(self):
        """The series stored before the bad request are served unchanged."""
        for path, want in self.baseline.items():
            status, _, text = self.a.get(path)
            self.assertEqual(status, 200, "%s after the bad request: %r" % (path, text))
            self.assertEqual(text, want, "%s changed after the bad request" % path)

    def post(self, body, version=1, headers=None):
        h = rw.headers(version)
        if headers:
            h.update(headers)
        return self.a.post(WRITE, body, h)

    def value(self, pod, metric="bi_gauge"):
        status, _, text = self.a.get("%s/%s/%s" % (API, pod, metric))
        if status != 200:
            return status, None
        doc = json.loads(text)
        self.assertEqual(len(doc["items"]), 1, text)
        return status, doc["items"][0]["value"]

    def assert_status_json(self, status, text, code, reason):
        self.assertEqual(status, code, text)
        doc = json.loads(text)
        self.assertEqual(doc["kind"], "Status", text)
        self.assertEqual(doc["apiVersion"], "v1", text)
        self.assertEqual(doc["status"], "Failure", text)
        self.assertEqual(doc["reason"], reason, text)
        self.assertEqual(doc["code"], code, text)
        self.assertTrue(doc["message"], text)

    # -- snappy --------------------------------------------------------------

    def test_truncated_snappy(self):
        full = rw.v1([gauge("trunc", [(now_ms(), 1.0)] * 1)] + [gauge("trunc%d" % i, [(now_ms(), 1.0)])
                                                                  for i in range(20)])
        for cut in (1, len(full) // 2, len(full) - 1):
            status, _, text = self.post(full[:cut])
            self.assertEqual(status, 400, "cut at %d: %r" % (cut, text))
            self.assertTrue(text.strip(), "a 400 names what was wrong")
        self.assertEqual(self.value("trunc")[0], 404)

    def test_snappy_bomb(self):
        # A dozen bytes claiming 1 GiB, 4 GiB-1 and 2^63 uncompressed: refused before allocating.
        for claimed in (1 << 30, (1 << 32) - 1, 1 << 63):
            body = rw.varint(claimed) + b"\x00" * 8
            status, _, text = self.post(body)
            self.assertEqual(status, 400, "claimed %d: %r" % (claimed, text))
            self.assertTrue(text.strip())
        # Just over the decoded cap (1 MiB), a real compressible body: still 400, never 413 or 5xx.
        raw = rw.v1_raw([gauge("bomb", [(now_ms(), 1.0)], extra=[("zz", "x" * 4000)])]) + b"\x00" * (1 << 20)
        body = snappy.compress(raw)
        self.assertLess(len(body), BODY_CAP)
        status, _, text = self.post(body)
        self.assertEqual(status, 400, text)
        self.assertEqual(self.value("bomb")[0], 404)
        m = self.a.metrics()
        self.assertLess(m.get("process_resident_memory_bytes", 0), 512 << 20)

    def test_wrong_content_types(self):
        body = rw.v1([gauge("ctype", [(now_ms(), 1.0)])])
        for ct in ("text/plain", "application/json", "application/x-protobuf;proto=foo.Bar",
                   "application/x-www-form-urlencoded", ""):
            h = rw.headers(1)
            h["Content-Type"] = ct
            status, _, text = self.a.post(WRITE, body, h)
            self.assertEqual(status, 415, "%r: %r" % (ct, text))
        h = rw.headers(1)
        del h["Content-Type"]
        status, _, text = self.a.post(WRITE, body, h)
        self.assertEqual(status, 415, text)
        self.assertEqual(self.value("ctype")[0], 404)

    # -- labels --------------------------------------------------------------

    def label_case(self, bad_labels, reason):
        t = now_ms()
        bad = rw.Series(bad_labels, [(t, 1.0)])
        good = gauge("good-" + reason.replace(" ", "-"), [(t, 4.0)])
        status, _, text = self.post(rw.v1([bad, good]))
        self.assertEqual(status, 400, text)
        self.assertIn(reason, text.decode(), text)
        self.assertIn("invalid series skipped (1 of 2)", text.decode())
        # The valid series in the same request landed.
        self.assertEqual(self.value("good-" + reason.replace(" ", "-")), (200, "4"))

    def test_unsorted_labels(self):
        self.label_case([("__name__", "bi_gauge"), ("pod", "unsorted"), ("namespace", NS)],
                        "labels not sorted by name")
        self.assertEqual(self.value("unsorted")[0], 404)

    def test_duplicate_labels(self):
        self.label_case([("__name__", "bi_gauge"), ("namespace", NS), ("pod", "dup"), ("pod", "dup2")],
                        "duplicate label name")
        self.assertEqual(self.value("dup")[0], 404)

    def test_empty_label_value(self):
        self.label_case([("__name__", "bi_gauge"), ("job", ""), ("namespace", NS), ("pod", "emptyv")],
                        "empty label value")
        self.assertEqual(self.value("emptyv")[0], 404)

    def test_empty_label_name(self):
        self.label_case([("", "x"), ("__name__", "bi_gauge"), ("namespace", NS), ("pod", "emptyn")],
                        "empty label name")
        self.assertEqual(self.value("emptyn")[0], 404)

    def test_missing_name(self):
        self.label_case([("namespace", NS), ("pod", "noname")], "series without __name__ label")

    def test_huge_label_value(self):
        self.label_case([("__name__", "bi_gauge"), ("namespace", NS), ("pod", "huge"), ("zz", "v" * 5000)],
                        "label value too long")
        self.assertEqual(self.value("huge")[0], 404)
        # At the cap it is fine.
        t = now_ms()
        status, _, text = self.post(rw.v1([gauge("at-cap", [(t, 9.0)], extra=[("zz", "v" * 4096)])]))
        self.assertEqual(status, 204, text)
        self.assertEqual(self.value("at-cap"), (200, "9"))

    # -- values --------------------------------------------------------------

    def test_nan_and_inf_values(self):
        t = now_ms()
        for pod, v in (("nan", float("nan")), ("inf", float("inf")), ("ninf", float("-inf"))):
            status, _, text = self.post(rw.v1([gauge(pod, [(t, v)])]))
            self.assertEqual(status, 204, text)
            # Not finite: the item is left out, and a read left with no item is a 404 (DESIGN 6).
            status, _, text = self.a.get("%s/%s/bi_gauge" % (API, pod))
            self.assert_status_json(status, text, 404, "NotFound")
            self.assertNotIn(b"NaN", text)
            self.assertNotIn(b"Inf", text)
        # The wildcard read leaves them out of the list (a 404 if nothing else is left).
        status, _, text = self.a.get(API + "/*/bi_gauge")
        self.assertIn(status, (200, 404), text)
        if status == 200:
            names = {i["describedObject"]["name"] for i in json.loads(text)["items"]}
            self.assertFalse({"nan", "inf", "ninf"} & names, names)
        self.assertNotIn(b"NaN", text)
        self.assertNotIn(b"Inf", text)

    def test_stale_marker(self):
        t = now_ms()
        self.assertEqual(self.post(rw.v1([gauge("stale", [(t - 10, 5.0)])]))[0], 204)
        self.assertEqual(self.value("stale"), (200, "5"))
        self.assertEqual(self.post(rw.v1([gauge("stale", [(t, rw.STALE_NAN)])]))[0], 204)
        status, _, text = self.a.get(API + "/stale/bi_gauge")
        self.assert_status_json(status, text, 404, "NotFound")

    # -- timestamps ----------------------------------------------------------

    def test_out_of_order_and_duplicate_timestamps(self):
        t = now_ms()
        self.assertEqual(self.post(rw.v1([gauge("ooo", [(t, 10.0)])]))[0], 204)
        for samples in ([(t, 11.0)], [(t - 5000, 12.0)], [(t - 1, 13.0), (t, 14.0)]):
            status, _, text = self.post(rw.v1([gauge("ooo", samples)]))
            self.assertEqual(status, 204, "%r: %r" % (samples, text))
            self.assertEqual(self.value("ooo"), (200, "10"), samples)
        # Out of order inside one request: the newest sample held wins.
        status, _, text = self.post(rw.v1([gauge("ooo2", [(t, 20.0), (t - 100, 21.0)])]))
        self.assertEqual(status, 204, text)
        self.assertEqual(self.value("ooo2"), (200, "20"))

    def test_far_future_timestamp(self):
        t = now_ms()
        status, _, text = self.post(rw.v1([gauge("future", [(t + 3600 * 1000, 1.0)]),
                                           gauge("present", [(t, 2.0)])]))
        self.assertEqual(status, 400, text)
        self.assertIn("sample timestamp too far in the future", text.decode())
        self.assertEqual(self.value("future")[0], 404)
        self.assertEqual(self.value("present"), (200, "2"))
        # A far-future sample on a series held must not move it either.
        status, _, text = self.post(rw.v1([gauge("keep-a", [(2 ** 62, 99.0)], name="bi_kept")]))
        self.assertEqual(status, 400, text)

    # -- body size -----------------------------------------------------------

    def test_content_length_over_cap(self):
        body = b"\x00" * (BODY_CAP + 1)
        status, _, text = self.post(body)
        self.assertEqual(status, 413, text)
        # Announced but not sent: refused on the first callback, without waiting for the body.
        with socket.create_connection(("127.0.0.1", self.a.port), timeout=5) as s:
            s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Encoding: snappy\r\n"
                       "Content-Length: %d\r\n\r\n" % (WRITE, rw.CT_V1, 1 << 30)).encode())
            data, _ = recv_all(s, time.monotonic() + HTTP_TIMEOUT_S + 3)
            self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:200])

    def test_chunked_over_cap(self):
        with socket.create_connection(("127.0.0.1", self.a.port), timeout=5) as s:
            s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Encoding: snappy\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n" % (WRITE, rw.CT_V1)).encode())
            chunk = b"\x00" * 16384
            sent = 0
            try:
                while sent <= BODY_CAP + len(chunk):
                    s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += len(chunk)
                s.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer and close before the rest is sent
            data, _ = recv_all(s, time.monotonic() + HTTP_TIMEOUT_S + 3)
            self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:200])

    # -- slow clients ----------------------------------------------------------

    def test_slowloris(self):
        socks = []
        try:
            for _ in range(8):
                s = socket.create_connection(("127.0.0.1", self.a.port), timeout=5)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            started = time.monotonic()
            stop = threading.Event()

            def dribble():
                while not stop.is_set():
                    for s in socks:
                        try:
                            s.sendall(b"X-a: b\r\n")
                        except OSError:
                            pass
                    stop.wait(0.5)

            th = threading.Thread(target=dribble, daemon=True)
            th.start()
            # Other clients are served meanwhile, promptly.
            for _ in range(20):
                t = time.monotonic()
                status, _, text = self.a.get(API + "/keep-a/bi_kept", timeout=2)
                self.assertEqual(status, 200, text)
                self.assertLess(time.monotonic() - t, 1.0)
            stop.set()
            th.join(5)
            # Dribbling stopped: each connection is closed after --http-timeout of silence.
            for s in socks:
                data, closed = recv_all(s, started + 4 * HTTP_TIMEOUT_S + 5)
                self.assertTrue(closed, "slow connection still open after %.1fs" % (time.monotonic() - started))
        finally:
            for s in socks:
                s.close()

    def test_idle_connection_closed(self):
        with socket.create_connection(("127.0.0.1", self.a.port), timeout=5) as s:
            t = time.monotonic()
            s.sendall(b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            data, closed = recv_all(s, t + HTTP_TIMEOUT_S + 5)
            self.assertTrue(closed, "a body that never completes must not hold the connection")
            self.assertGreaterEqual(time.monotonic() - t, HTTP_TIMEOUT_S - 1.0)

    # -- serving side ----------------------------------------------------------

    def test_malformed_selectors(self):
        for sel in ("a%20in%20(", "a%20notin", "==b", "a%3D%3D%3Db", "(", "a%20in%20(b", "!", "a%2C%2Cb"):
            for q in ("labelSelector", "metricLabelSelector"):
                status, _, text = self.a.get("%s/*/bi_gauge?%s=%s" % (API, q, sel))
                self.assert_status_json(status, text, 400, "BadRequest")
        status, _, text = self.a.get("/apis/external.metrics.k8s.io/v1beta1/namespaces/%s/bi_gauge"
                                     "?labelSelector=a%%20in%%20(" % NS)
        self.assert_status_json(status, text, 400, "BadRequest")

    def test_malformed_paths(self):
        for path in ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/pods/keep-a" % NS,
                     "/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/pods/keep-a/bi_kept/extra" % NS,
                     "/apis/custom.metrics.k8s.io/v1beta2/namespaces//pods/keep-a/bi_gauge",
                     "/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/pods//bi_gauge" % NS):
            status, _, text = self.a.get(path)
            self.assert_status_json(status, text, 400, "BadRequest")
        # Not the API version served.
        status, _, text = self.a.get("/apis/custom.metrics.k8s.io/v9/namespaces/%s/pods/keep-a/bi_gauge" % NS)
        self.assertEqual(status, 404, text)
        # Raw bytes that are not a path at all.
        for raw in (b"GET %zz HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /apis/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"\x16\x03\x01\x00\x05hello\r\n\r\n", b"GET " + b"/a" * 20000 + b" HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", self.a.port), timeout=5) as s:
                try:
                    s.sendall(raw)
                except OSError:
                    pass
                data, _ = recv_all(s, time.monotonic() + HTTP_TIMEOUT_S + 3)
                if data:
                    code = int(data.split(b" ", 2)[1])
                    self.assertTrue(400 <= code < 500, data[:200])

    def test_unknown_metric(self):
        for path in (API + "/keep-a/no_such_metric", API + "/*/no_such_metric",
                     "/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/metrics/no_such_metric" % NS,
                     "/apis/custom.metrics.k8s.io/v1beta2/namespaces/other/pods/keep-a/bi_gauge",
                     API + "/no-such-pod/bi_gauge",
                     "/apis/external.metrics.k8s.io/v1beta1/namespaces/%s/no_such_metric" % NS):
            status, _, text = self.a.get(path)
            self.assert_status_json(status, text, 404, "NotFound")

    def test_no_5xx_and_alive(self):
        # After everything above (run order is alphabetical; this one is last), the server is alive,
        # and no request was answered with a 5xx.
        m = self.a.metrics()
        fivexx = sum(v for labels, v in m.series("metrics_adapter_remote_write_requests_total")
                     if labels.get("code", "").startswith("5"))
        self.assertEqual(fivexx, 0)
        self.assertIsNone(self.a.proc.poll())


if __name__ == "__main__":
    unittest.main(verbosity=2)
