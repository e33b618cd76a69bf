"""A scripted STAND-IN for kube-apiserver, on loopback, for the adapter's Kubernetes client.

This is not a Kubernetes API server: no kube-apiserver is packaged on Debian 12
(DESIGN 8), so tests run this stand-in. It answers only what the adapter asks:

  POST /apis/authorization.k8s.io/v1/subjectaccessreviews   -> standin.sar(spec) decides
  POST /apis/authentication.k8s.io/v1/tokenreviews          -> standin.tokens {token: user dict}
  GET  /api/v1/namespaces/{ns}/configmaps/{name}            -> standin.configmaps {(ns, name): data}

and records every request (method, path, headers, parsed JSON body) in
standin.requests, so tests can assert what the adapter sent and how often.
standin.delay (seconds) holds every answer back, to test the client's timeouts.
Plain HTTP, or HTTPS with tls=(cert, key[, client CA]) (with a client CA the
stand-in requires a client certificate from it); stdlib only (run with
/usr/bin/python3).

    with KubeStandin() as k:
        k.allow = lambda spec: spec["user"] == "alice"
        path = k.write_kubeconfig(dir, token="adapter-sa-token")
"""

import base64
import http.server
import json
import os
import ssl
import threading
import time


class KubeStandin:
    def __init__(self, tls=None):
        self.requests = []
        self.lock = threading.Lock()
        self.allow = lambda spec: False  # SAR decision
        self.tokens = {}  # token -> {"username":..., "groups": [...]}
        self.configmaps = {}  # (ns, name) -> data dict
        self.delay = 0.0
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
                    pass  # the adapter gave up waiting (the timeout tests)

            def _record(self, body):
                with standin.lock:
                    standin.requests.append({"method": self.command, "path": self.path,
                                             "headers": {k.lower(): v for k, v in self.headers.items()},
                                             "body": body})

            def do_GET(self):
                self._record(None)
                if standin.delay:
                    time.sleep(standin.delay)
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "configmaps":
                    data = standin.configmaps.get((parts[3], parts[5]))
                    if data is not None:
                        return self._answer(200, {"kind": "ConfigMap", "apiVersion": "v1",
                                                  "metadata": {"name": parts[5], "namespace": parts[3]},
                                                  "data": data})
                return self._answer(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                          "reason": "NotFound", "code": 404})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"null")
                self._record(body)
                if standin.delay:
                    time.sleep(standin.delay)
                if self.path == "/apis/authorization.k8s.io/v1/subjectaccessreviews":
                    allowed = bool(standin.allow(body["spec"]))
                    st = {"allowed": allowed}
                    if not allowed:
                        st["reason"] = "stand-in says no"
                    return self._answer(201, dict(body, status=st))
                if self.path == "/apis/authentication.k8s.io/v1/tokenreviews":
                    user = standin.tokens.get(body["spec"]["token"])
                    st = {"authenticated": True, "user": user} if user else {"authenticated": False}
                    return self._answer(201, dict(body, status=st))
                return self._answer(404, {"kind": "Status", "code": 404})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            if len(tls) > 2 and tls[2]:
                ctx.load_verify_locations(tls[2])
                ctx.verify_mode = ssl.CERT_REQUIRED
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.url = "https://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        return False

    def calls(self, path):
        """The recorded requests to this path."""
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def sars(self):
        return [r["body"] for r in self.calls("/apis/authorization.k8s.io/v1/subjectaccessreviews")]

    def clear(self):
        with self.lock:
            self.requests.clear()

    def write_kubeconfig(self, directory, token="standin-token", ca=None, insecure=False, client=None,
                         name="kubeconfig"):
        """A kubeconfig for this stand-in. ca: CA file, referenced by a path relative to the
        kubeconfig when it lives in the same directory; client: (cert, key) files, embedded
        as client-certificate-data / client-key-data."""
        cluster = "    server: %s\n" % self.url
        if ca:
            rel = os.path.relpath(ca, directory)
            cluster += "    certificate-authority: %s\n" % rel
        if insecure:
            cluster += "    insecure-skip-tls-verify: true\n"
        user = "    token: %s\n" % token if token else "    {}\n"
        if client:
            b64 = lambda p: base64.b64encode(open(p, "rb").read()).decode()
            user = ("    client-certificate-data: %s\n    client-key-data: %s\n" % (b64(client[0]), b64(client[1]))
                    + ("    token: %s\n" % token if token else ""))
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: standin\n"
                    "clusters:\n- name: standin\n  cluster:\n%s"
                    "users:\n- name: adapter\n  user:\n%s"
                    "contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: adapter\n"
                    % (cluster, user))
        return path
