#!/usr/bin/python3
"""Graceful shutdown and warm restart with --snapshot-file (issue 9, evidence 3).

- SIGTERM: the listening socket closes at once, a request already begun
  finishes (its series is in the snapshot), the snapshot is written.
- Restart: values are served at once and /readyz is ready: gauges equal to
  before (same body: value and newest-sample timestamp), rates within 1 %
  (their window moves with the clock).
- kill -9: nothing written; the next start loads the older snapshot (a
  leftover temporary file from a crash mid-write is ignored), or starts empty
  with no snapshot at all.
- Corrupt snapshots (flipped bytes in header and payload, truncations, a
  foreign version, an empty file, one older than --series-ttl): each is
  ignored with a log line naming why, and the adapter starts empty.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import rw  # noqa: E402

V2 = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/app/pods/"
GAUGES = [V2 + "g1/mem_bytes", V2 + "g2/mem_bytes", V2 + "*/mem_bytes"]
RATE = V2 + "c1/requests"
HEADER = 40


def now_ms():
    return int(time.time() * 1000)


def payload(t):
    """Two gauges and a counter growing 2/s over the last 150 s, a sample every 5 s.

    The data covers more than the 2 m window, so Prometheus's extrapolation
    reaches both window edges (each gap is under 1.1 sample intervals) and the
    rate is the slope until 5.5 s after the last sample."""
    series = [
        rw.series({"__name__": "mem_bytes", "namespace": "app", "pod": "g1"}, [(t - 2000, 100.0), (t - 1000, 1536.0)]),
        rw.series({"__name__": "mem_bytes", "namespace": "app", "pod": "g2"}, [(t - 1000, 0.25)]),
        rw.series({"__name__": "requests_total", "namespace": "app", "pod": "c1"},
                  [(t - 150000 + 5000 * i, 10.0 * i) for i in range(31)]),
    ]
    return rw.v1(series, metadata=[("mem_bytes", "gauge", "", ""), ("requests_total", "counter", "", "")])


def rate_value(a):
    st, _, body = a.get(RATE)
    assert st == 200, (st, body)
    v = json.loads(body)["items"][0]["value"]
    return float(v[:-1]) / 1000 if v.endswith("m") else float(v)


def args(snap, *extra):
    return ["--snapshot-file=" + snap, "--rate-window=2m", "--series-ttl=5m", "--shutdown-timeout=5s"] + list(extra)


def assert_empty_start(a, why):
    for p in GAUGES:
        st, _, body = a.get(p)
        assert st == 404, "%s: %s served after %s: %r" % (p, st, why, body)
    st, _, body = a.get("/readyz")
    assert st == 503, "ready with nothing loaded (%s): %r" % (why, body)


def test_sigterm_restart(d):
    snap = os.path.join(d, "snapshot")
    a = harness.Adapter(args(snap)).start()
    assert "no snapshot to load" in a.log_text()
    st, _, text = a.post("/api/v1/write", payload(now_ms()), rw.headers(1))
    assert st == 204, (st, text)
    before = {p: a.get(p) for p in GAUGES}
    for p, (st, _, body) in before.items():
        assert st == 200, (p, st, body)
    rate_before = rate_value(a)
    assert abs(rate_before - 2.0) < 0.01, rate_before

    # A request in flight when SIGTERM arrives: headers and half the body sent.
    late_t = now_ms()
    body = rw.v1([rw.series({"__name__": "mem_bytes", "namespace": "app", "pod": "late"}, [(late_t, 42.0)])])
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    s.sendall(("POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Encoding: snappy\r\n"
               "Content-Length: %d\r\n\r\n" % (rw.CT_V1, len(body))).encode() + body[:len(body) // 2])
    # The partial request is in the server's hands (the /metrics read itself counts as one).
    harness.wait_until(lambda: a.metrics().get("metrics_adapter_http_requests_in_flight", listener="ingest") == 2,
                       5, "the partial request in flight")
    a.signal(signal.SIGTERM)
    a.wait_log(r'msg="shutting down"', 5)

    def refused():
        try:
            socket.create_connection(("127.0.0.1", a.port), timeout=1).close()
            return False
        except OSError:
            return True
    harness.wait_until(refused, 5, "the listening socket to close")
    s.sendall(body[len(body) // 2:])
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = s.recv(4096)
        if not chunk:
            break
        resp += chunk
    s.close()
    assert resp.startswith(b"HTTP/1.1 204"), resp[:200]
    rc = a.stop(timeout=15)
    assert rc == 0, a.log_text()
    m = re.search(r'msg="snapshot written" .*series=(\d+)', a.log_text())
    assert m, a.log_text()
    assert int(m.group(1)) == 4, m.group(0)
    assert not os.path.exists(snap + ".tmp")
    with open(snap, "rb") as f:
        head = f.read(HEADER)
    assert head[:8] == b"MAsnap\r\n" and struct.unpack("<I", head[8:12])[0] == 1, head

    # Restart: served at once, before any new sample.
    b = harness.Adapter(args(snap)).start()
    try:
        assert 'msg="snapshot loaded"' in b.log_text(), b.log_text()
        st, _, text = b.get("/readyz")
        assert st == 200, "not ready after loading a snapshot: %r" % text
        for p, (st0, _, body0) in before.items():
            if p.endswith("*/mem_bytes"):
                continue  # the late pod is there now too
            st, _, body = b.get(p)
            assert (st, body) == (st0, body0), "%s: %s %r != %r" % (p, st, body, body0)
        st, _, body = b.get(V2 + "late/mem_bytes")
        assert st == 200 and b'"value":"42"' in body, (st, body)
        rate_after = rate_value(b)
        assert abs(rate_after - rate_before) <= 0.01 * rate_before, (rate_before, rate_after)
        # Types came back too: the counter is served as a rate under its short name.
        m = b.metrics()
        assert m.get("metrics_adapter_series_live") == 4, m.get("metrics_adapter_series_live")
        # New samples still land on the loaded series.
        t = now_ms()
        st, _, text = b.post("/api/v1/write", rw.v1([rw.series(
            {"__name__": "mem_bytes", "namespace": "app", "pod": "g2"}, [(t, 3.0)])]), rw.headers(1))
        assert st == 204, text
        st, _, body = b.get(V2 + "g2/mem_bytes")
        assert b'"value":"3"' in body, body

        # kill -9: nothing is written; the next start has the snapshot of the last clean stop.
        st, _, text = b.post("/api/v1/write", rw.v1([rw.series(
            {"__name__": "mem_bytes", "namespace": "app", "pod": "after-kill"}, [(now_ms(), 5.0)])]), rw.headers(1))
        assert st == 204, text
        mtime = os.stat(snap).st_mtime_ns
    finally:
        b.stop(signal.SIGKILL)
        shutil.rmtree(b.dir, ignore_errors=True)
    assert os.stat(snap).st_mtime_ns == mtime
    # A crash in the middle of a write leaves a temporary file behind: never read.
    with open(snap + ".tmp", "wb") as f:
        f.write(b"MAsnap\r\n garbage")
    c = harness.Adapter(args(snap)).start()
    assert 'msg="snapshot loaded"' in c.log_text(), c.log_text()
    assert c.get("/readyz")[0] == 200
    assert c.get(V2 + "after-kill/mem_bytes")[0] == 404
    st, _, body = c.get(V2 + "g2/mem_bytes")
    assert st == 200 and b'"value":"250m"' in body, body  # the older snapshot's value
    assert c.stop() == 0
    print("ok: SIGTERM drains and snapshots, restart serves at once (rate %.4f -> %.4f), kill -9 keeps the older"
          % (rate_before, rate_after))
    return snap


def test_no_snapshot(d):
    snap = os.path.join(d, "none", "snapshot")
    os.mkdir(os.path.dirname(snap))
    a = harness.Adapter(args(snap)).start()
    assert "no snapshot to load" in a.log_text()
    assert_empty_start(a, "no snapshot")
    a.stop(signal.SIGKILL)
    shutil.rmtree(a.dir, ignore_errors=True)
    print("ok: no snapshot, empty start")


def crc_fix(head):
    head = bytearray(head)
    head[36:40] = struct.pack("<I", zlib.crc32(bytes(head[:36])) & 0xFFFFFFFF)
    return bytes(head)


def variants(good):
    head, body = good[:HEADER], good[HEADER:]
    flip = lambda b, i: b[:i] + bytes([b[i] ^ 0x55]) + b[i + 1:]  # noqa: E731
    old_head = bytearray(head)
    old_head[24:32] = struct.pack("<q", now_ms() - 3600 * 1000)
    v2_head = bytearray(head)
    v2_head[8:12] = struct.pack("<I", 2)
    long_head = bytearray(head)
    long_head[16:24] = struct.pack("<Q", len(body) + 1000)
    evil_len = bytearray(head)
    evil_len[16:24] = struct.pack("<Q", (1 << 64) - 1)
    bad_pb = b"\x0a\xff\xff\xff\xff\x0f" + body[6:]  # a length far past the end, with a valid CRC
    bad_pb_head = bytearray(head)
    bad_pb_head[32:36] = struct.pack("<I", zlib.crc32(bad_pb) & 0xFFFFFFFF)
    return [
        ("payload byte flipped", flip(good, HEADER + len(body) // 2), "payload checksum mismatch"),
        ("header byte flipped", flip(good, 20), "header checksum mismatch"),
        ("magic flipped", flip(good, 0), "bad magic"),
        ("truncated payload", good[:HEADER + len(body) // 2], "payload length"),
        ("truncated header", good[:20], "truncated header"),
        ("ten bytes", good[:10], "truncated header"),
        ("empty file", b"", "bad magic"),
        ("trailing bytes", good + b"\x00" * 7, "payload length"),
        ("foreign version", crc_fix(v2_head) + body, "format version 2"),
        ("payload length past the end", crc_fix(long_head) + body, "payload length"),
        ("payload length 2^64-1", crc_fix(evil_len) + body, "payload length"),
        ("older than the TTL", crc_fix(old_head) + body, "older than --series-ttl"),
        ("protobuf length past the end", crc_fix(bad_pb_head) + bad_pb, "payload does not decode"),
        ("random bytes", os.urandom(4096), "bad magic"),
    ]


def test_corrupt(d, good_path):
    with open(good_path, "rb") as f:
        good = f.read()
    bad = os.path.join(d, "bad")
    os.mkdir(bad)
    snap = os.path.join(bad, "snapshot")
    for name, data, reason in variants(good):
        with open(snap, "wb") as f:
            f.write(data)
        a = harness.Adapter(args(snap)).start()
        try:
            log = a.log_text()
            assert 'msg="snapshot ignored"' in log and reason in log, "%s: %s" % (name, log)
            assert_empty_start(a, name)
        finally:
            rc = a.stop()
        assert rc == 0, (name, rc)
        # The bad file is replaced on the clean stop by a valid (empty) snapshot.
        with open(snap, "rb") as f:
            assert f.read(8) == b"MAsnap\r\n", name
    # A directory where the file should be: logged, the start goes on.
    os.unlink(snap)
    os.mkdir(snap)
    a = harness.Adapter(args(snap)).start()
    assert 'msg="snapshot ignored"' in a.log_text()
    assert_empty_start(a, "a directory")
    a.stop()  # the write fails (rename over a directory): logged, exit status unchanged
    assert 'msg="cannot write the snapshot"' in a.log_text(), a.log_text()
    print("ok: %d corrupt snapshots ignored with a reason" % len(variants(good)))


def main():
    d = tempfile.mkdtemp(prefix="ma-restart-")
    good = test_sigterm_restart(d)
    test_no_snapshot(d)
    test_corrupt(d, good)
    shutil.rmtree(d)


if __name__ == "__main__":
    main()
