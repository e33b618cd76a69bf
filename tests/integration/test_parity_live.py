"""Parity with Prometheus 2.42, live part, with real clients (issue 4, evidence 4b).

A tiny HTTP target (this script) serves counters and gauges carrying namespace
and pod labels; a real Prometheus 2.42 scrapes it every second and
remote-writes to the adapter. Once a full 2 m rate window of data has been
received, kubectl (--server=http://127.0.0.1:PORT, no cluster) reads pods-*,
an object and an external metric with `get --raw`, and each value must agree
with Prometheus's own query within 2 % (remote write delivers a second or two
after Prometheus sees a sample: that lag is why the tolerance is not exact;
the exact comparison is test_parity.py). `kubectl api-resources` must list the
external metrics (it hides every name with a '/', so custom metrics are
checked through the raw discovery document). Takes about 2.5 minutes (the window has to fill).
"""

import http.server
import json
import os
import shutil
import subprocess
import threading
import time

from kubernetes.utils import parse_quantity

import harness
import prom

NS = "live"
PODS = 4
T0 = time.time()


def exposition():
    now = time.time() - T0
    lines = ["# TYPE live_requests_total counter"]
    for p in range(PODS):
        rate = 10.0 * (p + 1)
        lines.append('live_requests_total{namespace="%s",pod="pod-%d"} %.6f' % (NS, p, 1000 + rate * now))
    lines.append("# TYPE live_queue gauge")
    for p in range(PODS):
        lines.append('live_queue{namespace="%s",pod="pod-%d"} %d' % (NS, p, 5 * (p + 1)))
    lines.append("# TYPE live_backlog gauge")
    lines.append('live_backlog{queue="jobs"} 42')
    return ("\n".join(lines) + "\n").encode()


class Target(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = exposition()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def kubectl(*args):
    env = dict(os.environ, KUBECONFIG=os.devnull)
    p = subprocess.run(["kubectl"] + list(args), capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def close(a, b, tol=0.02):
    return abs(a - b) <= tol * max(abs(a), abs(b))


def main():
    if not prom.available() or not shutil.which("kubectl"):
        print("SKIP: prometheus or kubectl not installed")
        return
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    target = "127.0.0.1:%d" % srv.server_address[1]
    try:
        with harness.Adapter([]) as a:
            server = "--server=http://127.0.0.1:%d" % a.port
            cfg = prom.config(scrape=[("live", [target])],
                              remote_write=["http://127.0.0.1:%d/api/v1/write" % a.port])
            with prom.Prometheus(cfg) as p:
                p.wait_for('live_queue{pod="pod-0"}', timeout=60)
                first = time.time()
                # Discovery through kubectl while the data arrives. `kubectl api-resources`
                # leaves out names with a '/' (it takes them for subresources), which is every
                # custom metric ("pods/live_requests"), whoever serves them; it lists the external
                # metrics (with the defaults, every metric). The custom list is read raw.
                harness.wait_until(lambda: "live_requests" in kubectl("api-resources", server), 60,
                                   "kubectl api-resources listing live_requests")
                res = kubectl("api-resources", server)
                for want in ("live_requests", "live_queue", "live_backlog"):
                    assert want in res and "external.metrics.k8s.io/v1beta1" in res, (want, res)
                disc = json.loads(kubectl("get", "--raw", "/apis/custom.metrics.k8s.io/v1beta2", server))
                names = {r["name"] for r in disc["resources"]}
                assert {"pods/live_requests", "pods/live_queue", "namespaces/live_requests"} <= names, names
                # A full rate window of data in both.
                time.sleep(max(0.0, first + 125 - time.time()))

                path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/pods/*/live_requests" % NS
                doc = json.loads(kubectl("get", "--raw", path, server))
                t = time.time()
                got = {it["describedObject"]["name"]: float(parse_quantity(it["value"])) for it in doc["items"]}
                want = {m["pod"]: v for m, v in
                        p.query('sum(rate(live_requests_total{namespace="%s"}[2m])) by (pod)' % NS, at=t)}
                assert set(got) == set(want) == {"pod-%d" % i for i in range(PODS)}, (got, want)
                for pod in sorted(want):
                    print("pods-* %s: adapter %.4f prometheus %.4f" % (pod, got[pod], want[pod]))
                    assert close(got[pod], want[pod]), (pod, got[pod], want[pod])

                path = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/%s/pods/pod-2/live_queue" % NS
                doc = json.loads(kubectl("get", "--raw", path, server))
                assert len(doc["items"]) == 1, doc
                v = float(parse_quantity(doc["items"][0]["value"]))
                w = p.query_scalar('sum(live_queue{namespace="%s",pod="pod-2"})' % NS)
                print("object pod-2 live_queue: adapter %g prometheus %g" % (v, w))
                assert close(v, w), (v, w)

                path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/%s/live_backlog" % NS
                doc = json.loads(kubectl("get", "--raw", path, server))
                v = float(parse_quantity(doc["items"][0]["value"]))
                w = p.query_scalar("sum(live_backlog)")
                print("external live_backlog: adapter %g prometheus %g" % (v, w))
                assert close(v, w), (v, w)
    finally:
        srv.shutdown()
    print("ok: kubectl reads agree with Prometheus within 2%")


if __name__ == "__main__":
    main()
