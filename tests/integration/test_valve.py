#!/usr/bin/python3
"""The memory valve end to end (label memory, SERIAL): DESIGN 5.

Limits are set relative to the measured resident memory of the running
process, so the test does not depend on the machine or the build:

  0. a probe instance (valve off) receives the EXISTING series and its RSS is
     read from /proc/PID/statm: BASE;
  1. the instance under test gets --memory-limit=BASE+HARD_ABOVE and a soft
     fraction that puts the soft level at BASE+SOFT_ABOVE; it receives the
     same EXISTING series (204);
  2. soft level: batches of new series until one is answered 400 naming
     --memory-limit; the valve gauge reads 1, series refused for "memory" are
     counted, and the existing series still update (204, and the metrics API
     serves the new value);
  3. hard level: the existing series' sample windows grow (many samples per
     series, no new series) until remote write is answered 503 with
     Retry-After, before the body is read (headers announcing a large body
     get the 503 at once); the gauge reads 2; the metrics API, /healthz and
     /readyz answer as before;
  4. recovery: nothing is written; after --series-ttl the reaper deletes
     everything, the valve trims the heap, resident memory falls below the
     exit levels and the gauge reads 0; a new series is accepted (204).
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import rw  # noqa: E402

MiB = 1 << 20
SOFT_ABOVE = 24 * MiB
HARD_ABOVE = 56 * MiB
EXISTING = 1500          # series written first and kept updating
NEW_BATCH = 2000         # new series per request in the soft phase
SAMPLES_PER_WRITE = 200  # samples per existing series per request in the hard phase
TTL_S = 30
WRITE = "/api/v1/write"
NS = "valve"


def now_ms():
    return int(time.time() * 1000)


def rss_of(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def existing(t0, n_samples, value=None):
    """EXISTING series with samples at t0, t0+1, ... ms."""
    out = []
    for i in range(EXISTING):
        samples = [(t0 + j, float(value if value is not None else j)) for j in range(n_samples)]
        out.append(rw.series({"__name__": "valve_existing", "namespace": NS, "pod": "p%d" % i}, samples))
    return out


def new_series(k, t):
    return [rw.series({"__name__": "valve_new", "namespace": NS, "pod": "n%d-%d" % (k, i)}, [(t, 1.0)])
            for i in range(NEW_BATCH)]


def post(a, series_list):
    return a.post(WRITE, rw.v1(series_list), rw.headers(1), timeout=30)


def value_of(a, pod):
    st, _, body = a.get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/pods/%s/valve_existing" % (NS, pod))
    return st, body.decode()


def answer_without_body(port, timeout=5):
    """Send remote-write headers with Content-Length: 8 MiB and no body; return what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        head = ["POST %s HTTP/1.1" % WRITE, "Host: 127.0.0.1", "Content-Length: %d" % (8 * MiB)]
        head += ["%s: %s" % kv for kv in rw.headers(1).items()]
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)  # socket.timeout here: the server waited for the body
            if not chunk:
                break
            data += chunk
        return data


class ValveTest(unittest.TestCase):
    def test_soft_hard_recover(self):
        common = ["--secure-port=0", "--series-ttl=%ds" % TTL_S, "--reap-interval=1s", "--rate-window=10m",
                  "--max-series=0"]
        t0 = now_ms() - 5000

        # 0. Baseline: the same process shape holding the existing series.
        with harness.Adapter(common + ["--memory-limit=0"]) as probe:
            st, _, body = post(probe, existing(t0, 1))
            self.assertEqual(st, 204, body)
            time.sleep(0.3)  # let the first allocations settle (a measurement, not a wait for a condition)
            base = rss_of(probe.proc.pid)
        limit = base + HARD_ABOVE
        frac = (base + SOFT_ABOVE) / limit
        print("base RSS %.1f MiB, soft %.1f MiB, limit %.1f MiB (fraction %.3f)"
              % (base / MiB, (base + SOFT_ABOVE) / MiB, limit / MiB, frac))

        with harness.Adapter(common + ["--memory-limit=%d" % limit, "--memory-soft-fraction=%.6f" % frac]) as a:
            m = a.metrics()
            self.assertEqual(m.get("metrics_adapter_memory_limit_bytes"), limit)
            self.assertEqual(m.get("metrics_adapter_memory_valve_state"), 0)
            st, _, body = post(a, existing(t0, 1))
            self.assertEqual(st, 204, body)
            t = t0 + 1

            # 2. Soft level.
            k, refused_body = 0, None
            deadline = time.monotonic() + 90
            while refused_body is None:
                self.assertLess(time.monotonic(), deadline, "the soft level never engaged (RSS %d)"
                                % rss_of(a.proc.pid))
                st, _, body = post(a, new_series(k, now_ms()))
                k += 1
                if st == 400:
                    refused_body = body.decode()
                else:
                    self.assertEqual(st, 204, body)
            self.assertIn("--memory-limit", refused_body)
            rss_soft = rss_of(a.proc.pid)
            print("soft level after %d new-series batches, RSS %.1f MiB" % (k, rss_soft / MiB))
            m = a.metrics()
            self.assertEqual(m.get("metrics_adapter_memory_valve_state"), 1)
            self.assertGreater(m.get("metrics_adapter_series_refused_total", reason="memory"), 0)
            self.assertEqual(m.get("metrics_adapter_memory_valve_transitions_total", state="soft"), 1)
            self.assertIn('msg="memory valve engaged" state=soft', a.log_text())
            refused = m.get("metrics_adapter_series_refused_total", reason="memory")
            # Existing series keep updating; new ones are refused and counted.
            st, _, body = post(a, existing(t, 1, value=42))
            self.assertEqual(st, 204, body)
            t += 1
            st, text = value_of(a, "p7")
            self.assertEqual(st, 200, text)
            self.assertIn('"value":"42"', text)
            st, _, body = post(a, new_series(k, now_ms()))
            self.assertEqual(st, 400, body)
            self.assertGreaterEqual(a.metrics().get("metrics_adapter_series_refused_total", reason="memory"),
                                    refused + NEW_BATCH)
            ready_before = a.get("/readyz")[0]

            # 3. Hard level: grow the existing series' windows. The valve leaves
            # the hard level as soon as resident memory is 5 % of the limit below
            # it (DESIGN 5), and entering it runs the reaper and a malloc_trim
            # that can give back the request buffers at once, so the hard level
            # may last only a few hundred milliseconds here: each check that
            # needs it drives the process back to it first and retries a few
            # times if the valve released in between.
            def drive_to_hard():
                nonlocal t
                deadline = time.monotonic() + 90
                while True:
                    self.assertLess(time.monotonic(), deadline, "the hard level never engaged (RSS %d)"
                                    % rss_of(a.proc.pid))
                    st, hdrs, body = post(a, existing(t, SAMPLES_PER_WRITE))
                    if st == 503:
                        return hdrs, body.decode()
                    self.assertIn(st, (204, 400), body)
                    t += SAMPLES_PER_WRITE

            def while_hard(check, what):
                for _ in range(20):
                    drive_to_hard()
                    if check():
                        return
                self.fail("%s: never observed while the valve was at the hard level" % what)

            hdrs, text = drive_to_hard()
            print("hard level at RSS %.1f MiB" % (rss_of(a.proc.pid) / MiB))
            self.assertIn("retry-after", hdrs)
            self.assertGreater(int(hdrs["retry-after"]), 0)
            self.assertIn("memory limit", text)
            m = a.metrics()
            self.assertIn(m.get("metrics_adapter_memory_valve_state"), (1, 2))
            self.assertGreaterEqual(m.get("metrics_adapter_memory_valve_transitions_total", state="hard"), 1)
            self.assertGreaterEqual(m.get("metrics_adapter_memory_valve_refused_requests_total"), 1)
            self.assertIn('msg="memory valve engaged" state=hard', a.log_text())
            while_hard(lambda: a.metrics().get("metrics_adapter_memory_valve_state") == 2, "state gauge 2")
            # Reads are unaffected.
            st, text = value_of(a, "p7")
            self.assertEqual(st, 200, text)
            self.assertEqual(a.get("/healthz")[0], 200)
            self.assertEqual(a.get("/readyz")[0], ready_before)

            # Every remote write is refused before decoding, even a garbage body.
            def garbage_refused():
                st, hdrs, _ = a.post(WRITE, b"not snappy", rw.headers(1))
                if st != 503:
                    self.assertEqual(st, 400)  # released meanwhile: decoded and refused as bad snappy
                    return False
                self.assertIn("retry-after", hdrs)
                return True
            while_hard(garbage_refused, "503 for a garbage body")
            # ... and before its body is read: headers announcing 8 MiB, no body sent, an answer at once.
            def refused_before_body():
                try:
                    return answer_without_body(a.port, timeout=2).startswith(b"HTTP/1.1 503")
                except socket.timeout:
                    return False  # released meanwhile: the server waited for the body
            while_hard(refused_before_body, "503 before the body is read")

            # 4. Recovery once the series expire.
            def opened():
                return a.metrics().get("metrics_adapter_memory_valve_state") == 0
            harness.wait_until(opened, TTL_S + 60, "the valve to open again (RSS %d)" % rss_of(a.proc.pid),
                               interval=0.5)
            m = a.metrics()
            print("open again at RSS %.1f MiB, series live %d" % (rss_of(a.proc.pid) / MiB,
                                                                  m.get("metrics_adapter_series_live")))
            self.assertIn('msg="memory valve released" state=open', a.log_text())
            self.assertEqual(m.get("metrics_adapter_memory_valve_transitions_total", state="open"), 1)
            st, _, body = post(a, new_series(10 ** 6, now_ms())[:10])
            self.assertEqual(st, 204, body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
