#!/usr/bin/python3
"""Mixed load (issue 9, evidence 5): ingest at a high rate, HPA-style reads, churn, at once.

- ingest: bench/ingest's loadgen (one keep-alive connection, 2,000 series per
  request, a new timestamp each, as fast as the server takes them) when
  $LOADGEN names the binary, else Python senders; plus a Python sender that
  keeps 50 HPA-target pods fresh (a gauge and a counter) every 0.5 s;
- churn: every 0.5 s, 200 new pods and stale markers for the previous 200;
- reads: wrk against the custom-metrics API (wildcard and single-pod reads of
  the HPA targets, and a wildcard over a loadgen namespace), latency recorded.

Asserts: zero 5xx from the adapter outside the memory valve (a 503 from the
valve's hard level is allowed and reported), every read answered 200, no
crash (the process is alive and exits 0 on SIGTERM), and RSS bounded: under
what the live series may hold with full sample rings, and, in runs of 40 s or
more, flat in the last third (live series are constant under churn). Prints
the read p50/p99 and the ingest rate.

    test_mixed_load.py [--duration S]     (15 s in the default suite, 60 s in the soak suite)

Numbers taken on a loaded shared machine are noisy; the assertions are not
about speed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import rw  # noqa: E402

V2 = "/apis/custom.metrics.k8s.io/v1beta2"
HPA_PODS = 50
CHURN = 200

WRK_LUA = r'''
paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%%d connect=%%d read=%%d write=%%d status=%%d timeout=%%d " ..
    "p50_us=%%d p99_us=%%d max_us=%%d\n", summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
'''


def now_ms():
    return int(time.time() * 1000)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=15)
    opt = ap.parse_args()
    dur = opt.duration
    loadgen = os.environ.get("LOADGEN")
    if loadgen and not os.access(loadgen, os.X_OK):
        loadgen = None
    tmp = tempfile.mkdtemp(prefix="ma-mixed-")

    with harness.Adapter(["--max-series=400000", "--http-threads=2"]) as a:
        stop = threading.Event()
        errors = []
        codes = {}
        lock = threading.Lock()

        def post(body):
            try:
                st, _, text = a.post("/api/v1/write", body, rw.headers(1), timeout=10)
            except OSError as e:
                with lock:
                    errors.append("ingest connection: %s" % e)
                return
            with lock:
                codes[st] = codes.get(st, 0) + 1
                if st != 204 and st != 503:
                    errors.append("ingest %d: %r" % (st, text[:200]))

        def hpa_and_churn():
            rnd, prev = 0, []
            while not stop.is_set():
                t = now_ms()
                series = []
                for i in range(HPA_PODS):
                    base = {"namespace": "hpa", "pod": "web-%d" % i}
                    series.append(rw.series(dict(base, __name__="load"), [(t, float(i % 7) + 0.5)]))
                    series.append(rw.series(dict(base, __name__="hits_total"), [(t, float(t // 100))]))
                cur = ["churn-%d-%d" % (rnd, i) for i in range(CHURN)]
                for p in cur:
                    series.append(rw.series({"__name__": "load", "namespace": "churn", "pod": p}, [(t, 1.0)]))
                for p in prev:
                    series.append(rw.series({"__name__": "load", "namespace": "churn", "pod": p},
                                            [(t, rw.STALE_NAN)]))
                post(rw.v1(series, metadata=[("hits_total", "counter", "", ""), ("load", "gauge", "", "")]))
                prev, rnd = cur, rnd + 1
                stop.wait(0.5)

        def python_ingest():
            k = 0
            while not stop.is_set():
                t = now_ms()
                post(rw.v1([rw.series({"__name__": "bulk", "namespace": "team-%d" % (i % 16), "pod": "p%d" % i},
                                      [(t, float(k))]) for i in range(2000)]))
                k += 1

        # Fresh data for the reads before they start.
        th = [threading.Thread(target=hpa_and_churn, daemon=True)]
        th[0].start()
        harness.wait_until(lambda: a.get(V2 + "/namespaces/hpa/pods/*/load")[0] == 200, 10, "HPA targets")
        # A rate needs two samples in its window.
        harness.wait_until(lambda: a.get(V2 + "/namespaces/hpa/pods/*/hits")[0] == 200, 10, "HPA target rates")

        lg = None
        if loadgen:
            lg = subprocess.Popen([loadgen, "--url", "http://127.0.0.1:%d/api/v1/write" % a.port,
                                   "--connections", "1", "--duration", str(dur), "--series", "2000"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            bulk = V2 + "/namespaces/team-0/pods/*/container_memory_working_set_bytes"
        else:
            th.append(threading.Thread(target=python_ingest, daemon=True))
            th[-1].start()
            bulk = V2 + "/namespaces/team-0/pods/*/bulk"
        harness.wait_until(lambda: a.get(bulk)[0] == 200, 10, "the bulk ingest's first series")

        paths = [V2 + "/namespaces/hpa/pods/*/load", V2 + "/namespaces/hpa/pods/*/hits",
                 V2 + "/namespaces/hpa/pods/web-7/load", "/apis/custom.metrics.k8s.io/v1beta1/namespaces/hpa/pods/*/hits",
                 bulk]
        lua = os.path.join(tmp, "paths.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA % ", ".join('"%s"' % p for p in paths))
        wrk = subprocess.Popen(["wrk", "-t1", "-c8", "-d%ds" % int(dur), "--timeout", "5s", "-s", lua,
                                "http://127.0.0.1:%d" % a.port], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        rss = []
        start = time.monotonic()
        while time.monotonic() - start < dur:
            assert a.proc.poll() is None, "adapter died under load:\n" + a.log_text()[-3000:]
            rss.append((time.monotonic() - start, rss_kib(a.proc.pid)))
            time.sleep(0.5)
        out, _ = wrk.communicate(timeout=dur + 30)
        out = out.decode()
        lg_out = ""
        if lg:
            lg_out = lg.communicate(timeout=30)[0].decode()
        stop.set()
        for t in th:
            t.join(10)

        m = a.metrics()
        assert a.proc.poll() is None, "adapter died under load"
        res = re.search(r"RESULT (.*)", out)
        assert res, "wrk gave no result:\n" + out
        r = {k: int(v) for k, v in (kv.split("=") for kv in res.group(1).split())}
        fivexx = {}
        for labels, v in m.series("metrics_adapter_http_requests_total"):
            c = labels.get("code", "")
            if c.startswith("5") and v:
                fivexx["%s %s %s" % (labels.get("listener"), labels.get("handler"), c)] = v
        not_ok = {"%s %s %s" % (lb.get("listener"), lb.get("handler"), lb.get("code")): v
                  for lb, v in m.series("metrics_adapter_http_requests_total")
                  if lb.get("code", "2").startswith(("4", "5")) and v}
        valve = {k: v for k, v in fivexx.items() if k.endswith(" 503") and "write" in k}
        other = {k: v for k, v in fivexx.items() if k not in valve}
        base = rss[0][1]
        peak = max(v for _, v in rss)
        live = m.get("metrics_adapter_series_live")
        # What the store may legitimately hold: every live series with a full sample ring
        # (STORE_MAX_SAMPLES 4096 x 16 bytes; the loadgen's series get hundreds of samples
        # a second and reach the cap), twice over for allocator slack, plus 64 MiB.
        bound = base + live * 4096 * 16 * 2 // 1024 + 64 * 1024
        third = [max((v for t, v in rss if k * dur / 3 <= t < (k + 1) * dur / 3), default=0) for k in range(3)]
        ingest_rate = re.search(r"samples_per_s=(\S+)", lg_out)

        print("reads: %d in %.0f s (%.0f/s), p50 %.2f ms, p99 %.2f ms, max %.2f ms"
              % (r["requests"], dur, r["requests"] / dur, r["p50_us"] / 1000, r["p99_us"] / 1000,
                 r["max_us"] / 1000))
        print("ingest: %s; python sender answers %s; valve 503s %s" % (
            ("loadgen samples_per_s=%s" % ingest_rate.group(1)) if ingest_rate else "python sender",
            codes, sum(valve.values())))
        print("rss: %d KiB at start, peak %d KiB (bound %d), peak per third of the run %s KiB; "
              "live series %s, created %s" % (base, peak, bound, third, live,
                                              m.sum("metrics_adapter_series_created_total")))

        assert not other, "5xx outside the memory valve: %s" % other
        assert not errors, "ingest errors: %s" % errors[:5]
        assert r["requests"] > 0, out
        for k in ("connect", "read", "write", "status", "timeout"):
            assert r[k] == 0, "wrk %s errors: %d (answers not 2xx: %s)\n%s" % (k, r[k], not_ok, out)
        if lg:
            assert re.search(r"\berrors=0\b", lg_out), "loadgen: " + lg_out
        assert peak <= bound, "RSS %d KiB over the bound %d KiB" % (peak, bound)
        if dur >= 40:
            # Long enough for the sample rings to fill (about 15 s): memory must plateau.
            assert third[2] <= third[1] * 1.15 + 16 * 1024, "RSS still growing: %s KiB" % third
        rc = a.stop(timeout=20)
        assert rc == 0, "exit %d" % rc
    shutil.rmtree(tmp)
    print("ok: mixed load for %.0f s" % dur)


if __name__ == "__main__":
    main()
