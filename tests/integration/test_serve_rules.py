"""A prometheus-adapter-style --config loaded into the running binary (issue 4, evidence 3).

Several rules, both metricsQuery forms (`agg(...) by (<<.GroupBy>>)` and
`agg by (<<.GroupBy>>) (...)`), extra matchers beside <<.LabelMatchers>>, a
group-qualified resource, a renamed counter, and an external rule grouped by a
literal label. Checks discovery and values over HTTP, that a series no rule
serves is not served (nor kept: it is dropped at ingest and counted), that a config outside the subset stops start-up with a
message naming the rule, and that SIGHUP reloads the rules (a broken file keeps
the old ones).
"""

import json
import os
import signal
import tempfile
import time

import harness
import rw
from test_serve import counter, gauge

CONFIG = r'''
rules:
- seriesQuery: '{__name__=~"^container_.*_seconds_total$",container!="POD",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^container_(.*)_seconds_total$"
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[2m])) by (<<.GroupBy>>)
- seriesQuery: '{__name__="memory_bytes",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  metricsQuery: max by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})
- seriesQuery: '{__name__="replicas_ready",namespace!="",deployment!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      deployment: {group: "apps", resource: "deployment"}
  metricsQuery: avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
externalRules:
- seriesQuery: '{__name__="queue_consumer_lag",name!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (name)
  resources:
    overrides: { namespace: {resource: "namespace"} }
'''

BAD = r'''
rules:
- seriesQuery: '{__name__="latency_bucket",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  metricsQuery: histogram_quantile(0.9, sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (le, <<.GroupBy>>))
'''

V2 = "/apis/custom.metrics.k8s.io/v1beta2"
EXT = "/apis/external.metrics.k8s.io/v1beta1"


def get(a, path):
    st, _, body = a.get(path)
    return st, json.loads(body)


def values(doc):
    return {it["describedObject"]["name"]: it["value"] for it in doc["items"]}


def main():
    d = tempfile.mkdtemp(prefix="ma-rules-")
    cfg = os.path.join(d, "config.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)

    # Outside the subset: exit 2, the message names the rule.
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write(BAD)
    code, out, err = harness.run(["--listen-address=127.0.0.1:0", "--config=" + bad])
    assert code == 2, (code, out, err)
    assert "rules[0]" in out + err, out + err

    with harness.Adapter(["--config=" + cfg]) as a:
        now = int(time.time() * 1000) - 1500
        series = [
            counter({"__name__": "container_cpu_usage_seconds_total", "namespace": "ns", "pod": "p1",
                     "container": "app"}, 0.25, now),
            counter({"__name__": "container_cpu_usage_seconds_total", "namespace": "ns", "pod": "p1",
                     "container": "POD"}, 100, now),
            counter({"__name__": "container_cpu_usage_seconds_total", "namespace": "ns", "pod": "p2",
                     "container": "app"}, 0.5, now),
            gauge({"__name__": "memory_bytes", "namespace": "ns", "pod": "p1", "container": "a"}, 1000, now),
            gauge({"__name__": "memory_bytes", "namespace": "ns", "pod": "p1", "container": "b"}, 3000, now),
            gauge({"__name__": "replicas_ready", "namespace": "ns", "deployment": "web", "pod": "x"}, 2, now),
            gauge({"__name__": "replicas_ready", "namespace": "ns", "deployment": "web", "pod": "y"}, 4, now),
            gauge({"__name__": "queue_consumer_lag", "namespace": "ns", "name": "q1"}, 5, now),
            gauge({"__name__": "queue_consumer_lag", "namespace": "ns", "name": "q2"}, 7, now),
            gauge({"__name__": "queue_consumer_lag", "namespace": "other", "name": "q1"}, 100, now),
            gauge({"__name__": "unrelated", "namespace": "ns", "pod": "p1"}, 1, now),
        ]
        st, _, body = a.post("/api/v1/write", rw.v1(series), rw.headers(1))
        assert st == 204, body
        # With a config, series no rule can use are dropped at ingest and counted (still 204):
        # `unrelated`, and the container="POD" series that rule 0's seriesQuery excludes.
        m = a.metrics()
        assert m.get("metrics_adapter_remote_write_series_total", result="dropped_no_rule") == 2, \
            m.series("metrics_adapter_remote_write_series_total")
        assert m.sum("metrics_adapter_series_live") == len(series) - 2, m.series("metrics_adapter_series_live")

        # Discovery: what the rules serve from the data present, nothing else.
        st, doc = get(a, V2)
        names = {r["name"]: r["namespaced"] for r in doc["resources"]}
        want = {"pods/cpu_usage": True, "namespaces/cpu_usage": False, "pods/memory_bytes": True,
                "namespaces/memory_bytes": False, "deployments.apps/replicas_ready": True,
                "namespaces/replicas_ready": False}
        assert names == want, names
        st, doc = get(a, EXT)
        assert [r["name"] for r in doc["resources"]] == ["queue_consumer_lag"], doc

        # Values. The counter: rate of the app containers only (container!="POD").
        st, doc = get(a, V2 + "/namespaces/ns/pods/*/cpu_usage")
        assert st == 200 and values(doc) == {"p1": "250m", "p2": "500m"}, doc
        assert doc["items"][0]["windowSeconds"] == 120, doc
        # max by (...) (...) form.
        st, doc = get(a, V2 + "/namespaces/ns/pods/p1/memory_bytes")
        assert st == 200 and values(doc) == {"p1": "3k"}, doc
        # A group-qualified resource: avg per deployment, described as apps/v1 Deployment.
        st, doc = get(a, V2 + "/namespaces/ns/deployments.apps/web/replicas_ready")
        assert st == 200 and values(doc) == {"web": "3"}, doc
        obj = doc["items"][0]["describedObject"]
        assert obj == {"kind": "Deployment", "namespace": "ns", "name": "web", "apiVersion": "apps/v1"}, obj
        # The namespace's own metric through the same rule.
        st, doc = get(a, V2 + "/namespaces/ns/metrics/memory_bytes")
        assert st == 200 and values(doc) == {"ns": "3k"}, doc
        # External, grouped by a literal label: one item per name, in the namespace only.
        st, doc = get(a, EXT + "/namespaces/ns/queue_consumer_lag")
        assert st == 200, doc
        got = [(it["metricLabels"], it["value"]) for it in doc["items"]]
        assert got == [({"name": "q1"}, "5"), ({"name": "q2"}, "7")], got
        st, doc = get(a, EXT + "/namespaces/ns/queue_consumer_lag?labelSelector=name%3Dq2")
        assert [it["value"] for it in doc["items"]] == ["7"], doc
        # Not served by any rule.
        st, doc = get(a, V2 + "/namespaces/ns/pods/*/unrelated")
        assert st == 404 and doc["reason"] == "NotFound", doc

        # SIGHUP: a broken file keeps the rules in use; a good one replaces them.
        with open(cfg, "w") as f:
            f.write(BAD)
        a.signal(signal.SIGHUP)
        a.wait_log(r'reload failed')
        st, doc = get(a, V2 + "/namespaces/ns/pods/p1/memory_bytes")
        assert st == 200, doc
        with open(cfg, "w") as f:
            f.write(CONFIG.replace("max by", "min by"))
        a.signal(signal.SIGHUP)
        harness.wait_until(lambda: values(get(a, V2 + "/namespaces/ns/pods/p1/memory_bytes")[1]) == {"p1": "1k"},
                           10, "the reloaded rules")
    print("ok: config rules, discovery, values, reload")


if __name__ == "__main__":
    main()
