"""The pod metadata cache against a scripted stand-in kube-apiserver (pods_standin.py).

The stand-in is not a Kubernetes API server; it scripts what kube-apiserver
does for a metadata-only pods LIST and WATCH. Through the real binary:

1. backoff: the first pods requests answer 500; the retries come at growing
   intervals (jittered: each wait is in [d/2, d], d = 100 ms doubling);
2. /readyz is 503 "pod metadata cache not synced" while the LIST is held;
3. paginated LIST (page size 2, 5 pods: 3 pages) with the metadata-only
   Accept, limit=500; an expired continue token (410 on the LIST) restarts
   the LIST from the first page;
4. pods/*/queue_depth?labelSelector=app=web returns exactly the pods whose
   POD labels (only the stand-in has them) match; the series carry namespace
   and pod labels and a misleading app label of their own; without a
   labelSelector, exactly the pods the API has;
5. watch events ADDED, MODIFIED (a pod relabelled into and out of app=web),
   DELETED change the answer at once;
6. a BOOKMARK moves the resourceVersion: after a dropped watch the adapter
   resumes from the bookmark's resourceVersion, with no LIST;
7. an ERROR event with code 410 inside a 200 watch answer relists: a pod the
   stand-in deleted without an event is gone after the relist;
8. the cache's metrics; --pod-labels-source=series ignores the cache.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

import harness
import rw
from pods_standin import PodsStandin

V2 = "/apis/custom.metrics.k8s.io/v1beta2"
LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
WATCH_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


def post_series(a, pods):
    now = int(time.time() * 1000)
    series = [rw.series({"__name__": "queue_depth", "namespace": ns, "pod": pod, "app": "web"}, [(now, 1.0)])
              for ns, pod in pods]
    st, _, body = a.post("/api/v1/write", rw.v1(series), rw.headers(1))
    assert st == 204, (st, body)


def selected(a, ns="shop", sel="app=web"):
    st, _, body = a.get(V2 + "/namespaces/%s/pods/*/queue_depth?labelSelector=%s" % (ns, urllib.parse.quote(sel)))
    if st == 404:
        return set()
    assert st == 200, (st, body)
    return {i["describedObject"]["name"] for i in json.loads(body)["items"]}


def wait_selected(a, want, what):
    harness.wait_until(lambda: selected(a) == want, 10, what)


def main():
    tmp = tempfile.mkdtemp(prefix="ma-podcache-")
    with PodsStandin(page_size=2) as k:
        for name, app in (("web-1", "web"), ("web-2", "web"), ("batch-1", "batch"), ("db-1", "db")):
            k.set_pod("shop", name, {"app": app, "tier": "t"})
        k.set_pod("other", "web-9", {"app": "web"})
        k.fail_next = 4
        k.expire_continue = 1
        k.hold_list.clear()
        kc = k.write_kubeconfig(tmp)
        with harness.Adapter(["--kubeconfig=" + kc, "--rate-window=1s", "--pod-labels-source=auto"]) as a:
            # 1. Backoff: four 500s, then the held LIST.
            harness.wait_until(lambda: len(k.requests) >= 5, 15, "five pods requests")
            st, _, body = a.get("/readyz")
            assert st == 503 and b"pod metadata cache not synced" in body, (st, body)
            times = [r["t"] for r in k.requests[:5]]
            gaps = [times[i + 1] - times[i] for i in range(4)]
            for i, g in enumerate(gaps):
                nominal = 0.1 * (2 ** i)
                assert nominal / 2 - 0.01 <= g <= nominal + 2.0, ("backoff gaps", gaps)  # upper: slack for a loaded machine
            assert sum(gaps) >= 0.75 - 0.04, gaps
            print("backoff: gaps %s: ok" % ["%.3f" % g for g in gaps])
            k.hold_list.set()

            # 2-3. Paginated LIST with the 410 restart.
            harness.wait_until(lambda: k.watches(), 10, "the first watch")
            lists = [r for r in k.lists()]
            ok_lists = lists[4:]
            shape = [("continue" in r["query"]) for r in ok_lists]
            # page 1, page 2 -> 410, then from scratch: pages 1, 2, 3
            assert shape == [False, True, False, True, True], (shape, [r["query"] for r in ok_lists])
            for r in lists:
                assert r["accept"] == LIST_ACCEPT and r["query"]["limit"] == "500", r
            w = k.watches()[0]
            assert w["accept"] == WATCH_ACCEPT, w
            assert w["query"]["allowWatchBookmarks"] == "true", w
            assert w["query"]["resourceVersion"] == str(k.rv), (w, k.rv)
            print("paginated LIST, continue-token 410 restart, watch from the list's RV: ok")

            post_series(a, [("shop", "web-1"), ("shop", "web-2"), ("shop", "batch-1"), ("shop", "db-1"),
                            ("shop", "ghost-1")])
            harness.wait_until(lambda: a.get("/readyz")[0] == 200, 10, "/readyz 200")
            # 4. Pod labels decide, not the series' (every series says app=web).
            assert selected(a) == {"web-1", "web-2"}, selected(a)
            assert selected(a, sel="app=batch") == {"batch-1"}, selected(a, sel="app=batch")
            assert selected(a, sel="tier=t,app!=web") == {"batch-1", "db-1"}
            # Without a labelSelector: every pod the API has (ghost-1 has series only),
            # as prometheus-adapter lists the pods first; a read by name is not filtered.
            st, _, body = a.get(V2 + "/namespaces/shop/pods/*/queue_depth")
            names = {i["describedObject"]["name"] for i in json.loads(body)["items"]}
            assert st == 200 and names == {"web-1", "web-2", "batch-1", "db-1"}, (st, names)
            st, _, body = a.get(V2 + "/namespaces/shop/pods/ghost-1/queue_depth")
            assert st == 200 and [i["describedObject"]["name"] for i in json.loads(body)["items"]] == ["ghost-1"]
            print("labelSelector through the cache, pods/* without one: ok")

            # 5. Watch events.
            k.event("MODIFIED", "shop", "batch-1", {"app": "web", "tier": "t"})
            wait_selected(a, {"web-1", "web-2", "batch-1"}, "batch-1 relabelled into app=web")
            k.event("MODIFIED", "shop", "web-2", {"app": "api"})
            wait_selected(a, {"web-1", "batch-1"}, "web-2 relabelled out of app=web")
            k.event("DELETED", "shop", "web-1")
            wait_selected(a, {"batch-1"}, "web-1 deleted")
            k.event("ADDED", "shop", "ghost-1", {"app": "web"})
            wait_selected(a, {"batch-1", "ghost-1"}, "ghost-1 added")
            print("ADDED, MODIFIED (relabel), DELETED: ok")

            # 6. Bookmark, drop, resume from the bookmark's RV without a LIST.
            nlists = len(k.lists())
            nwatches = len(k.watches())
            bm = k.bookmark()
            # The stand-in sends every queued event before it ends a dropped stream,
            # so the bookmark is the stream's last line.
            k.drop_watches()
            harness.wait_until(lambda: len(k.watches()) > nwatches, 10, "the resumed watch")
            rw_ = k.watches()[nwatches]
            assert rw_["query"]["resourceVersion"] == str(bm), (rw_["query"], bm)
            assert len(k.lists()) == nlists, "a dropped watch must not relist"
            k.event("MODIFIED", "shop", "db-1", {"app": "web"})
            wait_selected(a, {"batch-1", "ghost-1", "db-1"}, "an event on the resumed watch")
            print("bookmark, drop and resume from RV %d: ok" % bm)

            # 7. ERROR 410 in the stream: relist; a pod deleted without an event goes.
            k.set_pod("shop", "ghost-1", None)
            k.gone_in_stream = 1
            nlists = len(k.lists())
            k.drop_watches()
            # 4 pods now (page size 2): two pages, from the first.
            harness.wait_until(lambda: len(k.lists()) >= nlists + 2, 10, "the relist after ERROR 410")
            assert [("continue" in r["query"]) for r in k.lists()[nlists:]] == [False, True]
            wait_selected(a, {"batch-1", "db-1"}, "ghost-1 gone after the relist")
            print("in-stream ERROR 410 relist: ok")

            # 8. Metrics.
            m = a.metrics()
            assert m.get("metrics_adapter_pod_cache_pods") == 4, m.get("metrics_adapter_pod_cache_pods")
            assert m.get("metrics_adapter_pod_cache_relists_total") >= 2
            assert m.get("metrics_adapter_pod_cache_errors_total") >= 4
            assert m.get("metrics_adapter_pod_cache_lists_total") >= 8
            assert m.get("metrics_adapter_pod_cache_watches_total") >= 3
            print("metrics: ok")

        # --pod-labels-source=series: the series' app=web serves, no pods request.
        n = len(k.requests)
        with harness.Adapter(["--kubeconfig=" + kc, "--pod-labels-source=series"]) as a:
            post_series(a, [("shop", "web-1"), ("shop", "batch-1")])
            assert selected(a) == {"web-1", "batch-1"}, selected(a)
        assert len(k.requests) == n, "series mode asked the API"
        print("--pod-labels-source=series: ok")

        # A LIST the API server does not answer does not hold up a SIGTERM.
        k.hold_list.clear()
        n = len(k.requests)
        a = harness.Adapter(["--kubeconfig=" + kc, "--pod-labels-source=auto", "--kube-api-timeout=60s"]).start()
        harness.wait_until(lambda: len(k.requests) > n, 10, "the held LIST")
        t0 = time.monotonic()
        assert a.stop(timeout=10) == 0
        took = time.monotonic() - t0
        assert took < 5, "SIGTERM during a held LIST took %.1fs" % took
        assert "pod LIST failed" not in a.log_text(), a.log_text()
        k.hold_list.set()
        print("SIGTERM during a held LIST: stopped in %.1fs: ok" % took)
    p = subprocess.run([harness.adapter_bin(), "--pod-labels-source=nope"], capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL, cwd=tmp)
    assert p.returncode == 2 and b"pod-labels-source" in p.stderr, (p.returncode, p.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    print("test_podcache: ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
