#!/usr/bin/python3
"""SIGHUP reloads the rules under concurrent reads (issue 9, evidence 4).

Two configs alternate: A serves `work_items` as max() and `queue_depth` under
its own name; B serves `work_items` as min() and renames `queue_depth` to
`backlog`. Reader threads read the values and discovery in a loop while the
process is sent SIGHUP several times: no read may fail, and every body is one
of the two rule sets' answers, never a mix or an error. Then a broken config
is rejected with a log line and the last good rules keep serving.
"""

import json
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import rw  # noqa: E402

V2 = "/apis/custom.metrics.k8s.io/v1beta2"
ITEMS = V2 + "/namespaces/ns/pods/p1/work_items"

RULES = r'''
rules:
- seriesQuery: '{__name__="work_items",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  metricsQuery: %(agg)s by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})
- seriesQuery: '{__name__="queue_depth",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^queue_depth$"
    as: "%(qname)s"
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
'''
A = RULES % {"agg": "max", "qname": "queue_depth"}
B = RULES % {"agg": "min", "qname": "backlog"}
BROKEN = [
    "rules: [ {seriesQuery: \n",  # not YAML
    # outside the subset
    A.replace("max by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})",
              "histogram_quantile(0.9, sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (le, <<.GroupBy>>))"),
    A.replace("metricsQuery: sum(", "metricsQuery: stddev("),  # unknown aggregation
]
# What each rule set answers: work_items value, the queue metric's name.
EXPECT = {"A": ("20", "queue_depth"), "B": ("10", "backlog")}


def value(a, path):
    st, _, body = a.get(path, timeout=5)
    if st != 200:
        return st, body
    doc = json.loads(body)
    return st, doc["items"][0]["value"] if len(doc["items"]) == 1 else body


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    d = tempfile.mkdtemp(prefix="ma-reload-")
    cfg = os.path.join(d, "config.yaml")
    write(cfg, A)
    with harness.Adapter(["--config=" + cfg, "--http-threads=2"]) as a:
        t = int(time.time() * 1000)
        body = rw.v1([rw.series({"__name__": "work_items", "namespace": "ns", "pod": "p1", "shard": "a"},
                                [(t, 10.0)]),
                      rw.series({"__name__": "work_items", "namespace": "ns", "pod": "p1", "shard": "b"},
                                [(t, 20.0)]),
                      rw.series({"__name__": "queue_depth", "namespace": "ns", "pod": "p1"}, [(t, 7.0)])],
                     metadata=[("work_items", "gauge", "", ""), ("queue_depth", "gauge", "", "")])
        st, _, text = a.post("/api/v1/write", body, rw.headers(1))
        assert st == 204, (st, text)
        assert value(a, ITEMS) == (200, "20"), value(a, ITEMS)
        assert value(a, V2 + "/namespaces/ns/pods/p1/queue_depth") == (200, "7")

        stop = threading.Event()
        failures, counts = [], {"reads": 0, "A": 0, "B": 0}
        lock = threading.Lock()

        def reader():
            while not stop.is_set():
                try:
                    st, v = value(a, ITEMS)
                    st2, _, disc = a.get(V2, timeout=5)
                except OSError as e:
                    with lock:
                        failures.append("connection: %s" % e)
                    continue
                names = {r["name"] for r in json.loads(disc)["resources"]} if st2 == 200 else set()
                with lock:
                    counts["reads"] += 1
                    if st != 200 or v not in ("10", "20"):
                        failures.append("work_items read: %s %r" % (st, v))
                    if st2 != 200 or not ({"pods/queue_depth", "pods/backlog"} & names):
                        failures.append("discovery: %s %r" % (st2, sorted(names)))
                    if v == "20":
                        counts["A"] += 1
                    elif v == "10":
                        counts["B"] += 1

        threads = [threading.Thread(target=reader, daemon=True) for _ in range(3)]
        for th in threads:
            th.start()
        loads = 1
        current = "A"
        for i in range(8):
            current = "B" if current == "A" else "A"
            write(cfg, B if current == "B" else A)
            a.signal(signal.SIGHUP)
            loads += 1
            harness.wait_until(lambda: len(a.log_text().split('msg="rules loaded"')) - 1 >= loads, 10,
                               "reload %d" % loads)
            want_v, qname = EXPECT[current]
            assert value(a, ITEMS) == (200, want_v), (current, value(a, ITEMS))
            assert value(a, V2 + "/namespaces/ns/pods/p1/" + qname) == (200, "7"), current
            other = EXPECT["B" if current == "A" else "A"][1]
            st, _ = value(a, V2 + "/namespaces/ns/pods/p1/" + other)
            assert st == 404, "%s still served after switching to %s" % (other, current)
            time.sleep(0.2)  # let the readers see this rule set for a while

        # Broken configs: rejected with a log line, the rules in use keep serving.
        good_v, good_q = EXPECT[current]
        for n, text in enumerate(BROKEN, 1):
            write(cfg, text)
            a.signal(signal.SIGHUP)
            harness.wait_until(lambda: a.log_text().count('msg="reload failed') >= n, 10, "reload failure %d" % n)
            assert 'msg="cannot load the rules"' in a.log_text()
            assert value(a, ITEMS) == (200, good_v)
            assert value(a, V2 + "/namespaces/ns/pods/p1/" + good_q) == (200, "7")
        # The config file gone altogether: the same.
        os.unlink(cfg)
        a.signal(signal.SIGHUP)
        harness.wait_until(lambda: a.log_text().count('msg="reload failed') >= len(BROKEN) + 1, 10,
                           "reload failure (no file)")
        assert value(a, ITEMS) == (200, good_v)
        time.sleep(0.3)

        stop.set()
        for th in threads:
            th.join(10)
        assert not failures, "%d failed reads of %d, first: %s" % (len(failures), counts["reads"], failures[:5])
        assert counts["A"] > 0 and counts["B"] > 0, counts
        assert a.proc.poll() is None
    os.rmdir(d)
    print("ok: %d reads during %d reloads and %d rejected configs, none failed (A %d, B %d)"
          % (counts["reads"], loads - 1, len(BROKEN) + 1, counts["A"], counts["B"]))


if __name__ == "__main__":
    main()
