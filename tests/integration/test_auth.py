#!/usr/bin/python3
"""Authentication and authorization on the HTTPS listener, against a kube-apiserver STAND-IN.

The Kubernetes API here is kube_standin.KubeStandin, a scripted stand-in on
loopback (no kube-apiserver is packaged on Debian 12); it answers
SubjectAccessReviews, TokenReviews and the ConfigMap read, and records them.
Certificates are made with openssl at test time (test_tls.Pki).

Checks:
- the front proxy (certificate from the request-header CA, allowed CN) names
  the user with X-Remote-User / X-Remote-Group / X-Remote-Extra-*;
- the same headers from a --client-ca-file certificate (user = CN), from no
  certificate (anonymous) or from a foreign-CA certificate are not trusted;
  a front-proxy certificate with a CN not allowed, a foreign-CA or an expired
  certificate, and a bad bearer token get 401 (as kube-apiserver answers:
  a credential that fails to verify is an error, not anonymity);
- 401 and 403 bodies are metav1.Status JSON;
- SubjectAccessReview: allow, deny, the attributes sent for a pods-* read,
  an object read, a namespace read, an external read and /metrics; allow
  and deny are cached (the second identical request does not reach the
  stand-in); system:masters and /healthz need no review;
- TokenReview for a bearer token; the kubeconfig's own token on every call;
- timeouts: a stand-in that answers too late gives 500 in bounded time,
  and the failure is not cached;
- --anonymous-auth=false; CA flags left empty are read from the
  extension-apiserver-authentication ConfigMap;
- the Kubernetes API over HTTPS (kubeconfig CA, embedded client certificate,
  insecure-skip-tls-verify; an untrusted API certificate gives no decision).
"""

import json
import os
import shutil
import sys
import tempfile
import time

import harness
from kube_standin import KubeStandin
from test_tls import Pki, https, start_with_port

PODS = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests"
OBJ = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-1/http_requests"
NSOBJ = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/metrics/queue_depth"
EXT = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_length"
SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
TR_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def check_status(body, code, reason):
    doc = json.loads(body)
    assert doc["kind"] == "Status" and doc["apiVersion"] == "v1", doc
    assert doc["status"] == "Failure" and doc["code"] == code and doc["reason"] == reason, doc
    assert doc["metadata"] == {}, doc
    return doc


def main():
    tmp = tempfile.mkdtemp(prefix="ma-auth-")
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


def run(tmp):
    pki = Pki(tmp)
    pki.ca("fpca")
    pki.ca("clientca")
    pki.ca("foreignca")
    proxy = pki.cert("proxy", "fpca", "front-proxy-client")
    intruder = pki.cert("intruder", "fpca", "not-the-proxy")
    bob = pki.cert("bob", "clientca", "bob", orgs=("team-a",))
    root = pki.cert("root", "clientca", "root", orgs=("system:masters",))
    expired = pki.cert("expired", "clientca", "old", days=-1)
    foreign = pki.cert("foreign", "foreignca", "front-proxy-client")
    ident = {"X-Remote-User": "alice", "X-Remote-Group": "devs",
             "X-Remote-Extra-Scopes": "view", "X-Remote-Extra-Acme.com%2Fproject": "p1"}

    with KubeStandin() as k:
        k.allow = lambda spec: spec.get("user") in ("alice", "bob", "carol")
        k.tokens["good-token"] = {"username": "carol", "uid": "c-1", "groups": ["ops"],
                                  "extra": {"team": ["x"]}}
        kubeconfig = k.write_kubeconfig(tmp, token="adapter-sa-token")
        common = ["--bind-address=127.0.0.1", "--kubeconfig=" + kubeconfig,
                  "--requestheader-client-ca-file=" + pki.path("fpca.crt"),
                  "--requestheader-allowed-names=front-proxy-client",
                  "--client-ca-file=" + pki.path("clientca.crt"), "--kube-api-timeout=400ms"]

        started = start_with_port(lambda p: ["--secure-port=%d" % p, "--cert-dir=" + os.path.join(tmp, "c1")]
                                  + common)
        with started as a:
            port = a.secure_port

            def get(path, cert=None, headers=None):
                return https(port, "GET", path, cert=cert, headers=headers)

            # 1. The front proxy names the user; groups and extras from its headers.
            k.clear()
            st, _, body = get(PODS, cert=proxy, headers=ident)
            assert st == 404, (st, body)  # authorized; no data yet
            sars = k.sars()
            assert len(sars) == 1, sars
            spec = sars[0]["spec"]
            assert sars[0]["kind"] == "SubjectAccessReview" and sars[0]["apiVersion"] == "authorization.k8s.io/v1"
            assert spec["user"] == "alice", spec
            assert spec["groups"] == ["devs", "system:authenticated"], spec
            assert spec["extra"] == {"scopes": ["view"], "acme.com/project": ["p1"]}, spec
            assert spec["resourceAttributes"] == {
                "namespace": "shop", "verb": "get", "group": "custom.metrics.k8s.io", "version": "v1beta2",
                "resource": "pods", "subresource": "http_requests", "name": "*"}, spec
            calls = k.calls(SAR_PATH)
            assert calls[0]["headers"]["authorization"] == "Bearer adapter-sa-token", calls[0]["headers"]
            print("front proxy: ok")

            # Cache: the identical request again does not reach the stand-in.
            st, _, _ = get(PODS, cert=proxy, headers=ident)
            assert st == 404 and len(k.sars()) == 1, (st, len(k.sars()))
            print("allow cached: ok")

            # 2. The same headers from a --client-ca-file certificate: user = CN, groups = O.
            k.clear()
            st, _, body = get(OBJ, cert=bob, headers=ident)
            assert st == 404, (st, body)
            spec = k.sars()[0]["spec"]
            assert spec["user"] == "bob" and spec["groups"] == ["team-a", "system:authenticated"], spec
            assert "extra" not in spec, spec
            assert spec["resourceAttributes"]["name"] == "web-1", spec
            assert spec["resourceAttributes"]["subresource"] == "http_requests", spec
            print("client certificate ignores identity headers: ok")

            # 3. No certificate: anonymous, headers ignored; the stand-in denies: 403, cached.
            k.clear()
            st, _, body = get(PODS, headers=ident)
            assert st == 403, (st, body)
            doc = check_status(body, 403, "Forbidden")
            assert "system:anonymous" in doc["message"], doc
            spec = k.sars()[0]["spec"]
            assert spec["user"] == "system:anonymous" and spec["groups"] == ["system:unauthenticated"], spec
            st, _, _ = get(PODS, headers=ident)
            assert st == 403 and len(k.sars()) == 1, "deny not cached"
            print("anonymous, 403 Status, deny cached: ok")

            # 4. Certificates that fail to verify, and a CN not allowed: 401 Status.
            for name, cert in (("foreign CA", foreign), ("expired", expired), ("CN not allowed", intruder)):
                k.clear()
                st, _, body = get(PODS, cert=cert, headers=ident)
                assert st == 401, (name, st, body)
                check_status(body, 401, "Unauthorized")
                assert not k.sars(), name
            print("foreign, expired, wrong CN: 401: ok")

            # 5. system:masters needs no review; health skips authorization.
            k.clear()
            st, _, _ = get(NSOBJ, cert=root)
            assert st == 404 and not k.sars(), st
            st, _, _ = get("/healthz")
            assert st == 200 and not k.sars()
            st, _, _ = get("/readyz")
            assert st in (200, 503) and not k.sars()
            print("masters and health: ok")

            # 6. Attributes for a namespace read, an external read and /metrics.
            k.clear()
            get(NSOBJ, cert=bob)
            get(EXT, cert=bob)
            st, _, body = get("/metrics", cert=bob)
            assert st == 200 and b"metrics_adapter_" in body, st
            specs = [s["spec"] for s in k.sars()]
            assert specs[0]["resourceAttributes"] == {
                "namespace": "shop", "verb": "get", "group": "custom.metrics.k8s.io", "version": "v1beta1",
                "resource": "metrics", "name": "queue_depth"}, specs[0]
            assert specs[1]["resourceAttributes"] == {
                "namespace": "shop", "verb": "list", "group": "external.metrics.k8s.io", "version": "v1beta1",
                "resource": "queue_length"}, specs[1]
            assert specs[2]["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}, specs[2]
            print("attributes: ok")

            # 7. Bearer tokens through TokenReview (cached), a bad one is 401.
            k.clear()
            st, _, _ = get(EXT, headers={"Authorization": "Bearer good-token"})
            assert st == 404, st
            tr = k.calls(TR_PATH)
            assert len(tr) == 1 and tr[0]["body"]["spec"]["token"] == "good-token", tr
            spec = k.sars()[0]["spec"]
            assert spec["user"] == "carol" and spec["uid"] == "c-1", spec
            assert spec["groups"] == ["ops", "system:authenticated"] and spec["extra"] == {"team": ["x"]}, spec
            get(EXT, headers={"Authorization": "Bearer good-token"})
            assert len(k.calls(TR_PATH)) == 1, "token review not cached"
            st, _, body = get(EXT, headers={"Authorization": "Bearer bad-token"})
            assert st == 401, st
            check_status(body, 401, "Unauthorized")
            print("token review: ok")

            # 8. Timeouts: the stand-in answers too late; bounded 500, not cached.
            k.clear()
            k.delay = 2.0
            t0 = time.monotonic()
            st, _, body = get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/slow/pods/*/m", cert=bob)
            took = time.monotonic() - t0
            k.delay = 0
            assert st == 500, (st, body)
            check_status(body, 500, "InternalError")
            assert took < 1.9, "took %.2fs with a 400ms timeout and one retry" % took
            n = len(k.sars())
            st, _, _ = get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/slow/pods/*/m", cert=bob)
            assert st == 404 and len(k.sars()) == n + 1, (st, n, len(k.sars()))
            print("timeout: 500 in %.2fs, not cached: ok" % took)

            # The counters on /metrics (plain loopback listener) agree with what happened above.
            m = a.metrics()
            assert m.get("metrics_adapter_authentication_total", method="failed") == 4, m.series(
                "metrics_adapter_authentication_total")
            for method in ("requestheader", "x509", "token", "anonymous"):
                assert m.get("metrics_adapter_authentication_total", method=method) >= 1, method
            for dec, src in (("allow", "review"), ("allow", "cache"), ("deny", "review"), ("deny", "cache"),
                             ("error", "review")):
                assert m.get("metrics_adapter_authorization_total", decision=dec, source=src) >= 1, (dec, src)
            print("counters: ok")

        # 9. --anonymous-auth=false: no credentials is 401.
        started = start_with_port(lambda p: ["--secure-port=%d" % p, "--cert-dir=" + os.path.join(tmp, "c2"),
                                             "--anonymous-auth=false"] + common)
        with started as a:
            st, _, body = https(a.secure_port, "GET", PODS)
            assert st == 401, st
            check_status(body, 401, "Unauthorized")
            st, _, _ = https(a.secure_port, "GET", PODS, cert=bob)
            assert st == 404, st
        print("anonymous-auth=false: ok")

        # 10. CA flags left empty: from kube-system/extension-apiserver-authentication.
        k.configmaps[("kube-system", "extension-apiserver-authentication")] = {
            "client-ca-file": open(pki.path("clientca.crt")).read(),
            "requestheader-client-ca-file": open(pki.path("fpca.crt")).read(),
            "requestheader-allowed-names": '["front-proxy-client"]',
            "requestheader-username-headers": '["X-Remote-User"]',
            "requestheader-group-headers": '["X-Remote-Group"]',
            "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
        }
        started = start_with_port(lambda p: ["--secure-port=%d" % p, "--cert-dir=" + os.path.join(tmp, "c3"),
                                             "--bind-address=127.0.0.1", "--kubeconfig=" + kubeconfig])
        with started as a:
            k.clear()
            st, _, _ = https(a.secure_port, "GET", PODS, cert=proxy, headers=ident)
            assert st == 404, st
            assert k.sars()[0]["spec"]["user"] == "alice"
            st, _, _ = https(a.secure_port, "GET", PODS, cert=intruder, headers=ident)
            assert st == 401, st
            k.clear()
            st, _, _ = https(a.secure_port, "GET", OBJ, cert=bob)
            assert st == 404 and k.sars()[0]["spec"]["user"] == "bob", st
        print("ConfigMap defaults: ok")

    # 11. The Kubernetes API over HTTPS: CA from the kubeconfig (a relative path), a client
    # certificate embedded as *-data (the stand-in requires it); then insecure-skip-tls-verify.
    pki.ca("apica")
    api_cert = pki.cert("api", "apica", "kube-apiserver", server=True)
    adapter_client = pki.cert("adapter-client", "clientca", "metrics-adapter")
    with KubeStandin(tls=(api_cert[0], api_cert[1], pki.path("clientca.crt"))) as k:
        k.allow = lambda spec: spec.get("user") == "bob"
        for kc in (k.write_kubeconfig(tmp, token=None, ca=pki.path("apica.crt"), client=adapter_client,
                                      name="kc-tls"),
                   k.write_kubeconfig(tmp, token=None, insecure=True, client=adapter_client, name="kc-insecure")):
            started = start_with_port(lambda p: ["--secure-port=%d" % p, "--cert-dir=" + os.path.join(tmp, "c4"),
                                                 "--bind-address=127.0.0.1", "--kubeconfig=" + kc,
                                                 "--client-ca-file=" + pki.path("clientca.crt")])
            with started as a:
                k.clear()
                st, _, _ = https(a.secure_port, "GET", OBJ, cert=bob)
                assert st == 404, st
                assert k.sars()[0]["spec"]["user"] == "bob"
        # A kubeconfig without the CA: the stand-in's certificate is not trusted, no decision: 500.
        kc = k.write_kubeconfig(tmp, token=None, client=adapter_client, name="kc-noca")
        started = start_with_port(lambda p: ["--secure-port=%d" % p, "--cert-dir=" + os.path.join(tmp, "c5"),
                                             "--bind-address=127.0.0.1", "--kubeconfig=" + kc,
                                             "--client-ca-file=" + pki.path("clientca.crt")])
        with started as a:
            k.clear()
            st, _, body = https(a.secure_port, "GET", OBJ, cert=bob)
            assert st == 500 and not k.sars(), (st, body)
    print("Kubernetes API over TLS (CA, client certificate, insecure-skip-tls-verify): ok")


if __name__ == "__main__":
    sys.exit(main())
