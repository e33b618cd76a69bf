#!/usr/bin/python3
"""HTTPS listeners: serving-certificate reload and remote write over TLS.

Certificates are made with the openssl command at test time (Pki below,
also used by test_auth.py).

1. Reload: the serving certificate lives behind a Kubernetes-Secret-style
   `..data` symlink; swapping the link makes the next handshake present the
   new certificate while a keep-alive connection opened before keeps working;
   a half-written pair (new certificate, old key) is not switched to.
2. Client-CA rotation: replacing --client-ca-file changes which client
   certificates verify, without a restart (SIGHUP checks at once).
3. Remote write on a TLS ingest listener with --ingest-client-ca-file: a
   client certificate from that CA is accepted (204), one from another CA or
   none is 401; the bearer token on a non-loopback plain listener is accepted,
   and nothing or a wrong token is 401.
"""

import hashlib
import http.client
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

import harness
import rw


class Pki:
    """A directory of openssl-made CAs and certificates (ECDSA P-256)."""

    def __init__(self, directory):
        self.dir = directory

    def _run(self, *args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=30)

    def path(self, name):
        return os.path.join(self.dir, name)

    def ca(self, name):
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", self.path(name + ".key"), "-out", self.path(name + ".crt"), "-subj", "/CN=" + name,
                  "-days", "3")
        return self.path(name + ".crt")

    def cert(self, name, ca, cn, orgs=(), days=2, server=False):
        """A certificate signed by CA `ca` (a name given to ca()); returns (cert path, key path)."""
        subj = "/CN=" + cn + "".join("/O=" + o for o in orgs)
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", self.path(name + ".key"), "-out", self.path(name + ".csr"), "-subj", subj)
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            if server:
                f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        self._run("x509", "-req", "-in", self.path(name + ".csr"), "-CA", self.path(ca + ".crt"),
                  "-CAkey", self.path(ca + ".key"), "-CAcreateserial", "-out", self.path(name + ".crt"),
                  "-days", str(days), "-extfile", ext)
        return self.path(name + ".crt"), self.path(name + ".key")


def client_context(cert=None, cafile=None):
    """A TLS client context; verifies the server against cafile when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
        ctx.check_hostname = False
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    return ctx


def https(port, method, path, cert=None, headers=None, body=None, timeout=10):
    """One HTTPS request on a fresh connection: (status, headers, body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=client_context(cert))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def peer_cert_sha256(conn):
    return hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()


def file_sha256_der(pem_path):
    der = ssl.PEM_cert_to_DER_cert(open(pem_path).read())
    return hashlib.sha256(der).hexdigest()


def secure_args(port, certdir):
    return ["--secure-port=%d" % port, "--bind-address=127.0.0.1", "--cert-dir=" + certdir]


class Started:
    """Context manager over an already started harness.Adapter."""

    def __init__(self, a):
        self.a = a

    def __enter__(self):
        return self.a

    def __exit__(self, *exc):
        return self.a.__exit__(*exc)


def start_with_port(args_fn, attempts=5, **kw):
    """Start an adapter on a free port given to args_fn (retrying when another process took it)."""
    for i in range(attempts):
        port = harness.free_port()
        a = harness.Adapter(args_fn(port), **kw)
        try:
            a.start()
            a.secure_port = port
            return Started(a)
        except AssertionError:
            in_use = "in use" in a.log_text()
            a.stop()
            if not in_use or i == attempts - 1:
                raise
    raise AssertionError("no free port")


def test_reload(pki, tmp):
    sec = os.path.join(tmp, "secret")
    for gen in ("gen1", "gen2"):
        os.makedirs(os.path.join(sec, gen))
        c, k = pki.cert("serving-" + gen, "servingca", "metrics-adapter", server=True)
        shutil.copy(c, os.path.join(sec, gen, "tls.crt"))
        shutil.copy(k, os.path.join(sec, gen, "tls.key"))
    os.symlink("gen1", os.path.join(sec, "..data"))
    os.symlink("..data/tls.crt", os.path.join(sec, "tls.crt"))
    os.symlink("..data/tls.key", os.path.join(sec, "tls.key"))
    gen1 = file_sha256_der(os.path.join(sec, "gen1", "tls.crt"))
    gen2 = file_sha256_der(os.path.join(sec, "gen2", "tls.crt"))

    a = start_with_port(lambda p: secure_args(p, os.path.join(tmp, "c1")) + [
        "--tls-cert-file=" + os.path.join(sec, "tls.crt"), "--tls-private-key-file=" + os.path.join(sec, "tls.key"),
        "--tls-reload-interval=100ms", "--authorization-always-allow"])
    with a as a:
        port = a.secure_port
        ctx = client_context(cafile=pki.path("servingca.crt"))
        keep = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        keep.request("GET", "/healthz")
        r = keep.getresponse()
        assert r.status == 200 and r.read() is not None
        assert peer_cert_sha256(keep) == gen1, "first handshake does not present gen1"

        # A half-written pair: the new certificate with the old key. Not switched to.
        os.makedirs(os.path.join(sec, "half"))
        shutil.copy(os.path.join(sec, "gen2", "tls.crt"), os.path.join(sec, "half", "tls.crt"))
        shutil.copy(os.path.join(sec, "gen1", "tls.key"), os.path.join(sec, "half", "tls.key"))
        os.symlink("half", os.path.join(sec, "..data_tmp"))
        os.rename(os.path.join(sec, "..data_tmp"), os.path.join(sec, "..data"))
        a.wait_log(r"serving certificate changed but is not usable yet", timeout=10)
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        c.request("GET", "/healthz")
        assert c.getresponse().status == 200
        assert peer_cert_sha256(c) == gen1, "switched to a pair whose key does not match"
        c.close()

        # The whole pair swapped at once, as a Secret volume does.
        os.symlink("gen2", os.path.join(sec, "..data_tmp"))
        os.rename(os.path.join(sec, "..data_tmp"), os.path.join(sec, "..data"))
        a.wait_log(r"serving certificate reloaded", timeout=10)

        def new_cert_served():
            c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
            try:
                c.request("GET", "/healthz")
                c.getresponse().read()
                return peer_cert_sha256(c) == gen2
            finally:
                c.close()
        harness.wait_until(new_cert_served, 10, "the new certificate on a new handshake")

        # The keep-alive connection from before the reload still works.
        keep.request("GET", "/livez")
        r = keep.getresponse()
        assert r.status == 200, r.status
        r.read()
        assert peer_cert_sha256(keep) == gen1
        keep.close()
        m = a.metrics()
        assert m.get("metrics_adapter_tls_reloads_total", result="reloaded") == 1, m.series(
            "metrics_adapter_tls_reloads_total")
        assert m.get("metrics_adapter_tls_reloads_total", result="kept") >= 1
    print("reload: ok")


def test_client_ca_rotation(pki, tmp):
    """--client-ca-file is the adapter's own trust list: replacing the file takes effect without a restart.
    The poll interval is long here: SIGHUP makes the watcher look at once."""
    pki.ca("oldca")
    pki.ca("newca")
    old_user = pki.cert("old-user", "oldca", "olduser")
    new_user = pki.cert("new-user", "newca", "newuser")
    cafile = os.path.join(tmp, "client-ca.crt")
    shutil.copy(pki.path("oldca.crt"), cafile)
    path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/p/m"
    started = start_with_port(lambda p: secure_args(p, os.path.join(tmp, "c-rot")) + [
        "--client-ca-file=" + cafile, "--tls-reload-interval=1h", "--authorization-always-allow"])
    with started as a:
        assert https(a.secure_port, "GET", path, cert=old_user)[0] == 404
        assert https(a.secure_port, "GET", path, cert=new_user)[0] == 401
        shutil.copy(pki.path("newca.crt"), cafile + ".tmp")
        os.rename(cafile + ".tmp", cafile)
        a.signal(signal.SIGHUP)
        a.wait_log(r"client CA reloaded", timeout=10)
        assert https(a.secure_port, "GET", path, cert=new_user)[0] == 404
        assert https(a.secure_port, "GET", path, cert=old_user)[0] == 401
    print("client CA rotation: ok")


def test_ingest_tls(pki, tmp):
    cert = pki.cert("ingest-serving", "servingca", "ingest", server=True)
    ca = pki.ca("ingestca")
    good = pki.cert("prometheus", "ingestca", "prometheus")
    pki.ca("otherca")
    bad = pki.cert("stranger", "otherca", "prometheus")
    token = os.path.join(tmp, "token")
    with open(token, "w") as f:
        f.write("s3cret\n")
    body = rw.v1([rw.series({"__name__": "up", "job": "a"}, [(int(time.time() * 1000), 1.0)])])
    hdr = rw.headers(1)

    # TLS on a non-loopback listener (bound to 0.0.0.0, reached through 127.0.0.1).
    started = start_with_port(lambda p: ["--listen-address=0.0.0.0:%d" % p, "--ingest-tls-cert-file=" + cert[0],
                                         "--ingest-tls-private-key-file=" + cert[1],
                                         "--ingest-client-ca-file=" + ca], wait_healthy=False)
    with started as a:
        st, _, _ = https(a.port, "POST", "/api/v1/write", cert=good, headers=hdr, body=body)
        assert st == 204, st
        st, _, b = https(a.port, "POST", "/api/v1/write", cert=bad, headers=hdr, body=body)
        assert st == 401, (st, b)
        st, _, b = https(a.port, "POST", "/api/v1/write", headers=hdr, body=body)
        assert st == 401, (st, b)
        st, _, _ = https(a.port, "GET", "/healthz")
        assert st == 200
    print("ingest over TLS with a client certificate: ok")

    # Plain HTTP on a non-loopback address: the bearer token.
    a = harness.Adapter(["--listen-address=0.0.0.0:0", "--ingest-token-file=" + token])
    with a:
        st, _, _ = a.post("/api/v1/write", body, headers=dict(hdr, Authorization="Bearer s3cret"))
        assert st == 204, st
        st, _, _ = a.post("/api/v1/write", body, headers=hdr)
        assert st == 401, st
        st, _, _ = a.post("/api/v1/write", body, headers=dict(hdr, Authorization="Bearer nope"))
        assert st == 401, st
    print("ingest with the bearer token on a non-loopback listener: ok")


def main():
    tmp = tempfile.mkdtemp(prefix="ma-tls-")
    try:
        pki = Pki(tmp)
        pki.ca("servingca")
        test_reload(pki, tmp)
        test_client_ca_rotation(pki, tmp)
        test_ingest_tls(pki, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
