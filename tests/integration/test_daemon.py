#!/usr/bin/python3
"""The daemon's skeleton, black box: flags, exit codes, health, /metrics, signals."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FLAGS = [
    "--listen-address", "--ingest-token-file", "--max-body-bytes", "--max-decoded-bytes",
    "--max-labels-per-series", "--max-label-name-length", "--max-label-value-length",
    "--max-series-per-request", "--max-series", "--max-series-per-metric", "--series-ttl",
    "--max-future", "--drop-labels", "--rate-window", "--reap-interval", "--http-threads",
    "--max-connections", "--http-timeout", "--log-level", "--help", "--version",
]

LOG_LINE = re.compile(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(debug|info|warn|error) msg="[^"]*"( |$)')


class CommandLine(unittest.TestCase):
    def test_help_lists_every_flag(self):
        code, out, err = harness.run(["--help"])
        self.assertEqual(code, 0, err)
        for flag in FLAGS:
            self.assertRegex(out, r"(?m)^\s+%s\b" % re.escape(flag))
        self.assertIn('(default "127.0.0.1:8080")', out)

    def test_version(self):
        code, out, err = harness.run(["--version"])
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"^metrics-adapter \d+\.\d+\.\d+")

    def test_bad_flags_exit_2_naming_the_flag(self):
        cases = [
            (["--bogus"], "--bogus"),
            (["--max-series=lots"], "--max-series"),
            (["--series-ttl", "5"], "--series-ttl"),
            (["--max-body-bytes=1Q"], "--max-body-bytes"),
            (["--log-level=loud"], "--log-level"),
            (["--listen-address=nonsense"], "--listen-address"),
            (["--max-series"], "--max-series"),
            (["stray"], "stray"),
        ]
        for args, name in cases:
            code, out, err = harness.run(args)
            self.assertEqual(code, 2, "%s: exit %d, stderr %r" % (args, code, err))
            self.assertIn(name, err, args)


class Serving(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = harness.Adapter(["--log-level=debug", "--http-threads=2"]).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.a.stop()
        assert code == 0, "exit %d:\n%s" % (code, cls.a.log_text())

    def test_health(self):
        for path in ("/healthz", "/livez"):
            status, headers, body = self.a.get(path)
            self.assertEqual((status, body), (200, b"ok"), path)
        status, headers, _ = self.a.request("POST", "/healthz", body=b"")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow"), "GET, HEAD")

    def test_unknown_path_404(self):
        for path in ("/nope", "/metrics/x", "/"):
            status, _, _ = self.a.get(path)
            self.assertEqual(status, 404, path)

    def test_metrics(self):
        status, headers, body = self.a.get("/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        m = harness.parse_metrics(body.decode())
        self.assertGreater(m.get("process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(m.get("process_open_fds"), 2)
        self.assertGreaterEqual(m.get("process_cpu_seconds_total"), 0)
        self.assertLess(abs(m.get("process_start_time_seconds") - time.time()), 3600)
        self.assertEqual(m.types["process_cpu_seconds_total"], "counter")
        build = m.series("metrics_adapter_build_info")
        self.assertEqual(len(build), 1)
        self.assertEqual(build[0][1], 1)
        self.assertRegex(build[0][0]["version"], r"^\d+\.\d+\.\d+")
        for name in ("metrics_adapter_map_live_entries", "metrics_adapter_map_pending_entries",
                     "metrics_adapter_map_reclaimed_entries_total", "metrics_adapter_map_buckets",
                     "metrics_adapter_map_resizes_total"):
            self.assertIsNotNone(m.get(name), name)
        self.assertEqual(m.get("metrics_adapter_map_pending_entries"), 0)
        # Requests are counted by listener and code; the 404s of other tests
        # may or may not have run yet, the /metrics scrapes before this one
        # are at least zero.
        self.assertGreaterEqual(m.sum("metrics_adapter_http_requests_total", listener="ingest"), 1)

    def test_metrics_pass_promtool(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed")
        _, _, body = self.a.get("/metrics")
        p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
        # promtool exits 0 when clean, 3 on lint warnings only (naming advice), 1 on parse errors.
        self.assertIn(p.returncode, (0, 3), p.stdout + p.stderr)
        self.assertNotIn(b"error", p.stderr.lower(), p.stderr)

    def test_log_lines_are_structured(self):
        text = self.a.log_text()
        self.assertRegex(text, r'msg="listening" listener=ingest addr=127\.0\.0\.1:%d loopback=true' % self.a.port)
        for line in text.splitlines():
            self.assertRegex(line, LOG_LINE)

    def test_access_log_at_debug(self):
        self.a.get("/livez")
        self.a.wait_log(r'msg="request" listener=ingest method=GET path=/livez status=200 bytes=2 duration_us=\d+')

    def test_sighup_reloads_and_keeps_serving(self):
        self.a.signal(signal.SIGHUP)
        self.a.wait_log(r'msg="reload requested"')
        self.assertEqual(self.a.get("/healthz")[0], 200)


class Lifecycle(unittest.TestCase):
    def test_sigterm_exits_0_promptly(self):
        a = harness.Adapter().start()
        # An idle keep-alive connection must not hold up the shutdown.
        idle = socket.create_connection(("127.0.0.1", a.port))
        try:
            t0 = time.monotonic()
            self.assertEqual(a.stop(signal.SIGTERM, timeout=5), 0)
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            idle.close()
        self.assertRegex(a.log_text(), r'msg="shutting down" signal=SIGTERM')
        self.assertRegex(a.log_text(), r'msg="stopped"')

    def test_sigint_exits_0(self):
        a = harness.Adapter().start()
        self.assertEqual(a.stop(signal.SIGINT, timeout=5), 0)
        self.assertRegex(a.log_text(), r'signal=SIGINT')

    @unittest.skipIf(os.environ.get("MA_SANITIZED"), "sanitizer builds leave fatal signals to the sanitizer's report")
    def test_fatal_signal_reports_a_backtrace(self):
        # The report is all `kubectl logs --previous` shows of a crash.
        a = harness.Adapter().start()
        self.assertEqual(a.stop(signal.SIGSEGV, timeout=5), -signal.SIGSEGV)
        log = a.log_text()
        self.assertRegex(log, r'(?m)^level=error msg="fatal signal" signal=SEGV backtrace follows$')
        self.assertRegex(log, r'(?m)^\S*metrics-adapter\(\+0x[0-9a-f]+\)\[0x[0-9a-f]+\]$')
        shutil.rmtree(a.dir, ignore_errors=True)  # kept for a nonzero exit; this one was expected

    def test_port_in_use_fails_start(self):
        with harness.Adapter() as first:
            code, out, err = harness.run(["--listen-address=127.0.0.1:%d" % first.port])
            self.assertEqual(code, 1, err)
            self.assertRegex(err, r'level=error msg="cannot listen".*error="Address already in use"')

    def test_wildcard_address_is_not_loopback(self):
        # A non-loopback listener needs the remote-write bearer token.
        fd, token = tempfile.mkstemp(prefix="ma-token-")
        with os.fdopen(fd, "w") as f:
            f.write("t0ken\n")
        self.addCleanup(os.unlink, token)
        with harness.Adapter(["--listen-address=0.0.0.0:0", "--ingest-token-file=" + token]) as a:
            a.wait_log(r'addr=0\.0\.0\.0:\d+ loopback=false')
            self.assertEqual(a.get("/healthz")[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
