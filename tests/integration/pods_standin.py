"""A scripted STAND-IN for kube-apiserver's pods LIST and WATCH, on loopback.

This is not a Kubernetes API server (none is packaged on Debian 12, DESIGN 8):
it answers only what the adapter's pod metadata cache asks, the way
kube-apiserver does:

  GET /api/v1/pods?limit=N[&continue=T]        -> a PartialObjectMetadataList page
      (page_size pods per page whatever the limit, a continue token while more
      remain; expire_continue=k answers the next k continued pages 410 Gone)
  GET /api/v1/pods?watch=1&resourceVersion=RV  -> 200 and newline-delimited
      events after RV, then the events the test adds, until drop_watches()
      ends the stream (gone_in_stream=k: the next k watches carry one ERROR
      event with code 410 inside the 200 answer, as for an expired RV)

fail_next=k answers the next k pods requests 500. Every pods request is
recorded (time, path, query, Accept) in standin.requests. Plain HTTP, stdlib
only (run with /usr/bin/python3).
"""

import http.server
import json
import os
import threading
import time
import urllib.parse


class PodsStandin:
    def __init__(self, page_size=2):
        self.page_size = page_size
        self.pods = {}  # (ns, name) -> labels
        self.rv = 100
        self.events = []  # (rv, event dict)
        self.requests = []
        self.fail_next = 0
        self.expire_continue = 0
        self.gone_in_stream = 0
        self.hold_list = threading.Event()
        self.hold_list.set()
        self.cv = threading.Condition()
        self.watch_gen = 0  # drop_watches() bumps it
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _status(self, code, reason):
                self._answer(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "reason": reason, "code": code})

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                with standin.cv:
                    standin.requests.append({"t": time.monotonic(), "path": u.path, "query": q,
                                             "accept": self.headers.get("Accept")})
                    fail = standin.fail_next > 0
                    if fail:
                        standin.fail_next -= 1
                if u.path != "/api/v1/pods":
                    return self._status(404, "NotFound")
                if fail:
                    return self._status(500, "InternalError")
                if q.get("watch") in ("1", "true"):
                    return self._watch(q)
                return self._list(q)

            def _list(self, q):
                standin.hold_list.wait(30)
                with standin.cv:
                    cont = q.get("continue")
                    if cont and standin.expire_continue > 0:
                        standin.expire_continue -= 1
                        expired = True
                    else:
                        expired = False
                    if not expired:
                        if cont:
                            rv, off = (int(x) for x in cont.split("-"))
                            snap = standin._snapshots[rv]
                        else:
                            rv, off = standin.rv, 0
                            snap = sorted(standin.pods.items())
                            standin._snapshots[rv] = snap
                if expired:
                    return self._status(410, "Expired")
                page = snap[off:off + standin.page_size]
                meta = {"resourceVersion": str(rv)}
                if off + standin.page_size < len(snap):
                    meta["continue"] = "%d-%d" % (rv, off + standin.page_size)
                items = [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                          "metadata": {"namespace": ns, "name": name, "labels": labels,
                                       "resourceVersion": str(rv)}}
                         for (ns, name), labels in page]
                self._answer(200, {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                   "metadata": meta, "items": items})

            def _send(self, ev):
                self.wfile.write(json.dumps(ev).encode() + b"\n")
                self.wfile.flush()

            def _watch(self, q):
                since = int(q.get("resourceVersion") or 0)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    with standin.cv:
                        gone = standin.gone_in_stream > 0
                        if gone:
                            standin.gone_in_stream -= 1
                    if gone:
                        self._send({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                                                                "status": "Failure", "reason": "Expired",
                                                                "code": 410}})
                        return
                    with standin.cv:
                        gen = standin.watch_gen
                    while True:
                        with standin.cv:
                            todo = [e for rv, e in standin.events if rv > since]
                            if not todo and standin.watch_gen == gen:
                                standin.cv.wait(0.2)
                                todo = [e for rv, e in standin.events if rv > since]
                            dropped = standin.watch_gen != gen
                        for e in todo:
                            self._send(e)
                            since = int(e["object"]["metadata"]["resourceVersion"])
                        if dropped:
                            return
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._snapshots = {}
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.drop_watches()
        self.server.shutdown()
        self.server.server_close()
        return False

    # -- scripting ---------------------------------------------------------

    def set_pod(self, ns, name, labels):
        """Change the state without an event (what a LIST sees; a watch does not)."""
        with self.cv:
            self.rv += 1
            if labels is None:
                self.pods.pop((ns, name), None)
            else:
                self.pods[(ns, name)] = dict(labels)

    def event(self, kind, ns, name, labels=None):
        """ADDED, MODIFIED or DELETED: the state changes and watches get the event."""
        with self.cv:
            self.rv += 1
            if kind == "DELETED":
                labels = self.pods.pop((ns, name), labels or {})
            else:
                self.pods[(ns, name)] = dict(labels)
            meta = {"namespace": ns, "name": name, "labels": labels, "resourceVersion": str(self.rv)}
            self.events.append((self.rv, {"type": kind, "object": {"kind": "PartialObjectMetadata",
                                                                   "apiVersion": "meta.k8s.io/v1",
                                                                   "metadata": meta}}))
            self.cv.notify_all()
            return self.rv

    def bookmark(self):
        """A BOOKMARK event: only the resourceVersion moves. Returns it."""
        with self.cv:
            self.rv += 1
            self.events.append((self.rv, {"type": "BOOKMARK", "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": str(self.rv)}}}))
            self.cv.notify_all()
            return self.rv

    def drop_watches(self):
        """End every open watch stream (as kube-apiserver does at timeoutSeconds)."""
        with self.cv:
            self.watch_gen += 1
            self.cv.notify_all()

    def lists(self):
        with self.cv:
            return [r for r in self.requests if "watch" not in r["query"]]

    def watches(self):
        with self.cv:
            return [r for r in self.requests if "watch" in r["query"]]

    def write_kubeconfig(self, directory, token="standin-token"):
        path = os.path.join(directory, "kubeconfig-pods")
        with open(path, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: standin\n"
                    "clusters:\n- name: standin\n  cluster:\n    server: %s\n"
                    "users:\n- name: adapter\n  user:\n    token: %s\n"
                    "contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: adapter\n"
                    % (self.url, token))
        return path
