#!/usr/bin/python3
"""Renders deploy/'s kustomizations with `kubectl kustomize` (offline) and
checks the objects against the facts the adapter and the cluster rely on.

    test_kustomize.py manifests   APIServices, RBAC, StatefulSet, Services,
                                  PDB, NetworkPolicy, Secret, the remote-write
                                  snippet and example HPA against the rules;
                                  every field name against python3-kubernetes'
                                  models
    test_kustomize.py flags       every flag the manifests pass to the adapter
                                  is one its --help lists ($MA_BIN); once all
                                  are, the adapter starts with those args
                                  (paths and ports made local, openssl for a
                                  test certificate)

Debian's /usr/bin/python3 with python3-yaml and python3-kubernetes; kubectl
1.32 and promtool on PATH.
"""

import base64
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# MA_DEPLOY_DIR: check another copy of deploy/ (used to try the checks on broken manifests).
DEPLOY = os.environ.get("MA_DEPLOY_DIR") or os.path.join(ROOT, "deploy")
KUSTOMIZATIONS = ["base", "overlays/with-external", "overlays/with-cert-manager"]

NS = "metrics-adapter"
HEADLESS = "metrics-adapter"
API_SERVICE = "metrics-adapter-api"
SA = "metrics-adapter"

failures = []


def check(cond, what):
    """Record a failed expectation (the run goes on, so one run shows them all)."""
    if not cond:
        failures.append(what)
        print("FAIL: " + what)
    return cond


def eq(got, want, what):
    return check(got == want, "%s: got %r, want %r" % (what, got, want))


def render(k):
    r = subprocess.run(["kubectl", "kustomize", os.path.join(DEPLOY, k)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit("FAIL: kubectl kustomize deploy/%s: %s" % (k, r.stderr.strip()))
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def find(objs, kind, name=None, namespace=None):
    return [o for o in objs if o["kind"] == kind
            and (name is None or o["metadata"]["name"] == name)
            and (namespace is None or o["metadata"].get("namespace") == namespace)]


def one(objs, kind, name, namespace=None, where=""):
    got = find(objs, kind, name, namespace)
    check(len(got) == 1, "%s: want exactly one %s %s/%s, got %d" % (where, kind, namespace, name, len(got)))
    return got[0] if got else None


def container(objs):
    sts = find(objs, "StatefulSet", "metrics-adapter", NS)
    return sts[0]["spec"]["template"]["spec"]["containers"][0] if sts else None


def flag_values(c):
    """--name=value args as a dict (a bare --name maps to True)."""
    out = {}
    for a in c.get("args", []):
        name, eqs, val = a[2:].partition("=")
        out[name] = val if eqs else True
    return out


def parse_size(s):
    """Kubernetes quantities and the adapter's sizes as used here: 800Mi, 1Gi, 512M."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?", s)
    assert m, "cannot parse size %r" % s
    mult = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[m.group(2)]
    return int(m.group(1)) * mult


def mount_for(c, path):
    """The volumeMount whose mountPath is a prefix directory of path."""
    best = None
    for vm in c.get("volumeMounts", []):
        mp = vm["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"]):
                best = vm
    return best


# ---------------------------------------------------------------------------

def check_apiservices(objs, k):
    want = {"v1beta2.custom.metrics.k8s.io": ("custom.metrics.k8s.io", "v1beta2", 200),
            "v1beta1.custom.metrics.k8s.io": ("custom.metrics.k8s.io", "v1beta1", 100)}
    if k in ("overlays/with-external", "overlays/with-cert-manager"):
        want["v1beta1.external.metrics.k8s.io"] = ("external.metrics.k8s.io", "v1beta1", 100)
    got = {o["metadata"]["name"]: o for o in find(objs, "APIService")}
    eq(sorted(got), sorted(want), "%s: APIService names" % k)
    certs = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in find(objs, "Certificate")}
    for name, (group, version, prio) in want.items():
        o = got.get(name)
        if not o:
            continue
        s = o["spec"]
        eq(o["apiVersion"], "apiregistration.k8s.io/v1", "%s: %s apiVersion" % (k, name))
        eq(s.get("group"), group, "%s: %s group" % (k, name))
        eq(s.get("version"), version, "%s: %s version" % (k, name))
        eq(s.get("versionPriority"), prio, "%s: %s versionPriority" % (k, name))
        eq(s.get("groupPriorityMinimum"), 100, "%s: %s groupPriorityMinimum" % (k, name))
        eq(s.get("service"), {"name": API_SERVICE, "namespace": NS, "port": 443}, "%s: %s service" % (k, name))
        if k == "overlays/with-cert-manager":
            check(not s.get("insecureSkipTLSVerify"), "%s: %s still skips TLS verification" % (k, name))
            ann = o["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from", "")
            check(tuple(ann.split("/", 1)) in certs,
                  "%s: %s inject-ca-from %r names no Certificate in the output" % (k, name, ann))
        else:
            eq(s.get("insecureSkipTLSVerify"), True, "%s: %s insecureSkipTLSVerify" % (k, name))
            check("caBundle" not in s, "%s: %s has both caBundle and insecureSkipTLSVerify" % (k, name))


def binding_subjects(b):
    return {(s["kind"], s.get("namespace"), s["name"]) for s in b.get("subjects", [])}


def role_grants(role, group, resource, verb):
    for r in role.get("rules", []):
        if (group in r.get("apiGroups", []) and (resource in r.get("resources", []) or "*" in r.get("resources", []))
                and (verb in r.get("verbs", []) or "*" in r.get("verbs", []))):
            return True
    return False


def check_rbac(objs, k):
    me = ("ServiceAccount", NS, SA)
    one(objs, "ServiceAccount", SA, NS, k)
    crbs = find(objs, "ClusterRoleBinding")
    roles = {o["metadata"]["name"]: o for o in find(objs, "ClusterRole")}

    deleg = [b for b in crbs if b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                  "name": "system:auth-delegator"}]
    check(any(me in binding_subjects(b) for b in deleg), "%s: no ClusterRoleBinding of %s to system:auth-delegator" % (k, SA))

    rbs = [b for b in find(objs, "RoleBinding", namespace="kube-system")
           if b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                               "name": "extension-apiserver-authentication-reader"}]
    check(any(me in binding_subjects(b) for b in rbs),
          "%s: no RoleBinding in kube-system of %s to extension-apiserver-authentication-reader" % (k, SA))

    def bound_roles(subject):
        return [roles[b["roleRef"]["name"]] for b in crbs
                if subject in binding_subjects(b) and b["roleRef"]["kind"] == "ClusterRole" and b["roleRef"]["name"] in roles]

    mine = bound_roles(me)
    for res in ("pods", "namespaces", "nodes"):
        for verb in ("get", "list", "watch"):
            check(any(role_grants(r, "", res, verb) for r in mine), "%s: %s may not %s %s" % (k, SA, verb, res))

    hpa = bound_roles(("ServiceAccount", "kube-system", "horizontal-pod-autoscaler"))
    for group in ("custom.metrics.k8s.io", "external.metrics.k8s.io"):
        for verb in ("get", "list"):
            check(any(role_grants(r, group, "pods", verb) for r in hpa),
                  "%s: kube-system:horizontal-pod-autoscaler may not %s %s" % (k, verb, group))


def check_statefulset(objs, k):
    sts = one(objs, "StatefulSet", "metrics-adapter", NS, k)
    if not sts:
        return
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    flags = flag_values(c)
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}

    eq(spec.get("podManagementPolicy"), "Parallel", "%s: StatefulSet podManagementPolicy" % k)
    eq(spec.get("serviceName"), HEADLESS, "%s: StatefulSet serviceName" % k)
    eq(spec.get("replicas"), 2, "%s: StatefulSet replicas" % k)
    labels = spec["template"]["metadata"]["labels"]
    check(all(labels.get(a) == b for a, b in spec["selector"]["matchLabels"].items()),
          "%s: StatefulSet selector does not match its pod labels" % k)
    eq(pod.get("serviceAccountName"), SA, "%s: pod serviceAccountName" % k)

    # Ports and listeners agree.
    eq(str(ports.get("https")), flags.get("secure-port"), "%s: container port https vs --secure-port" % k)
    eq(str(ports.get("ingest")), str(flags.get("listen-address", "")).rpartition(":")[2],
       "%s: container port ingest vs --listen-address" % k)
    check(not str(flags.get("listen-address", "127.0.0.1")).startswith("127."),
          "%s: --listen-address is loopback, Prometheus cannot reach it" % k)

    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        g = c.get(probe, {}).get("httpGet", {})
        eq(g.get("path"), path, "%s: %s path" % (k, probe))
        eq(g.get("scheme"), "HTTPS", "%s: %s scheme" % (k, probe))
        eq(g.get("port"), "https", "%s: %s port" % (k, probe))

    # Hardening.
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    eq(psc.get("runAsNonRoot"), True, "%s: runAsNonRoot" % k)
    check(isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0, "%s: no fixed non-root runAsUser" % k)
    eq(psc.get("seccompProfile"), {"type": "RuntimeDefault"}, "%s: seccompProfile" % k)
    eq(csc.get("readOnlyRootFilesystem"), True, "%s: readOnlyRootFilesystem" % k)
    eq(csc.get("allowPrivilegeEscalation"), False, "%s: allowPrivilegeEscalation" % k)
    eq(csc.get("capabilities", {}).get("drop"), ["ALL"], "%s: capabilities drop" % k)

    # Anti-affinity on the node name.
    aa = pod.get("affinity", {}).get("podAntiAffinity", {})
    terms = [t["podAffinityTerm"] for t in aa.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
    terms += aa.get("requiredDuringSchedulingIgnoredDuringExecution", [])
    check(any(t.get("topologyKey") == "kubernetes.io/hostname"
              and t.get("labelSelector", {}).get("matchLabels") == spec["selector"]["matchLabels"] for t in terms),
          "%s: no pod anti-affinity on kubernetes.io/hostname for the adapter's pods" % k)

    # Memory: requests, a limit, and the valve below it.
    res = c.get("resources", {})
    check("cpu" in res.get("requests", {}) and "memory" in res.get("requests", {}), "%s: resource requests" % k)
    lim = res.get("limits", {}).get("memory")
    ml = flags.get("memory-limit")
    if check(lim and ml, "%s: memory limit %r and --memory-limit %r both set" % (k, lim, ml)):
        check(parse_size(ml) < parse_size(lim), "%s: --memory-limit %s not below the container limit %s" % (k, ml, lim))

    # preStop delay shorter than the grace period.
    cmd = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if check(len(cmd) == 2 and cmd[0].endswith("sleep"), "%s: preStop is not a sleep: %r" % (k, cmd)):
        check(pod.get("terminationGracePeriodSeconds", 30) > int(cmd[1]),
              "%s: terminationGracePeriodSeconds %s not above the preStop sleep %s"
              % (k, pod.get("terminationGracePeriodSeconds"), cmd[1]))

    # Files the flags name live on the right volumes.
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}

    def volume_of(path, what):
        vm = mount_for(c, path)
        check(vm is not None, "%s: %s %s is on no mounted volume" % (k, what, path))
        return vm

    vm = volume_of(flags.get("cert-dir", ""), "--cert-dir")
    if vm:
        check("emptyDir" in vols.get(vm["name"], {}), "%s: --cert-dir is not on an emptyDir" % k)
        check(not vm.get("readOnly"), "%s: --cert-dir is mounted read-only" % k)
    vm = volume_of(flags.get("snapshot-file", ""), "--snapshot-file")
    if vm:
        check(vm["name"] in claims, "%s: --snapshot-file is not on a volumeClaimTemplate" % k)
    secrets = {s["metadata"]["name"]: s for s in find(objs, "Secret", namespace=NS)}
    vm = volume_of(flags.get("ingest-token-file", ""), "--ingest-token-file")
    if vm:
        sec = vols.get(vm["name"], {}).get("secret", {}).get("secretName")
        key = os.path.relpath(flags["ingest-token-file"], vm["mountPath"])
        if check(sec in secrets, "%s: the ingest token Secret %r is not in the output" % (k, sec)):
            data = secrets[sec].get("data", {})
            check(key in data, "%s: Secret %s has no key %r" % (k, sec, key))
            tok = base64.b64decode(data.get(key, "")).decode()
            check(tok.startswith("REPLACE-ME"), "%s: the committed ingest token is not the placeholder" % k)
    cms = {o["metadata"]["name"]: o for o in find(objs, "ConfigMap", namespace=NS)}
    if "config" in flags:
        vm = volume_of(flags["config"], "--config")
        if vm:
            cm = vols.get(vm["name"], {}).get("configMap", {}).get("name")
            key = os.path.relpath(flags["config"], vm["mountPath"])
            check(cm in cms and key in cms[cm].get("data", {}), "%s: --config %s is not in ConfigMap %r" % (k, flags["config"], cm))
    for tf in ("tls-cert-file", "tls-private-key-file"):
        if tf in flags:
            vm = volume_of(flags[tf], "--" + tf)
            if vm:
                sec = vols.get(vm["name"], {}).get("secret", {}).get("secretName")
                issued = {o["spec"]["secretName"] for o in find(objs, "Certificate", namespace=NS)}
                check(sec in secrets or sec in issued, "%s: --%s comes from Secret %r, which nothing creates" % (k, tf, sec))
    return sts


def check_services(objs, k, sts):
    pod_labels = sts["spec"]["template"]["metadata"]["labels"] if sts else {}
    h = one(objs, "Service", HEADLESS, NS, k)
    if h:
        eq(h["spec"].get("clusterIP"), "None", "%s: headless Service clusterIP" % k)
        eq(h["spec"].get("publishNotReadyAddresses"), True, "%s: headless Service publishNotReadyAddresses" % k)
        eq([p["port"] for p in h["spec"]["ports"]], [8080], "%s: headless Service ports" % k)
        eq(h["spec"]["ports"][0].get("targetPort"), "ingest", "%s: headless Service targetPort" % k)
        check(all(pod_labels.get(a) == b for a, b in h["spec"]["selector"].items()), "%s: headless selector" % k)
    a = one(objs, "Service", API_SERVICE, NS, k)
    if a:
        check(a["spec"].get("clusterIP") != "None", "%s: %s must not be headless" % (k, API_SERVICE))
        eq([(p["port"], p.get("targetPort")) for p in a["spec"]["ports"]], [(443, "https")], "%s: %s ports" % (k, API_SERVICE))
        check(all(pod_labels.get(x) == y for x, y in a["spec"]["selector"].items()), "%s: %s selector" % (k, API_SERVICE))
    pdb = one(objs, "PodDisruptionBudget", "metrics-adapter", NS, k)
    if pdb:
        eq(pdb["spec"].get("maxUnavailable"), 1, "%s: PDB maxUnavailable" % k)
        eq(pdb["spec"].get("selector", {}).get("matchLabels"), sts["spec"]["selector"]["matchLabels"] if sts else None,
           "%s: PDB selector" % k)
    one(objs, "Namespace", NS, None, k)


def check_networkpolicy(objs, k):
    np = one(objs, "NetworkPolicy", "metrics-adapter", NS, k)
    if not np:
        return
    rules = np["spec"].get("ingress", [])
    by_port = {}
    for r in rules:
        for p in r.get("ports", []):
            by_port.setdefault(p["port"], []).append(r.get("from"))
    eq(sorted(by_port), ["https", "ingest"], "%s: NetworkPolicy ports" % k)
    for frm in by_port.get("ingest", []):
        check(frm and all("namespaceSelector" in f and "podSelector" in f for f in frm),
              "%s: ingest is open beyond Prometheus (namespaceSelector+podSelector): %r" % (k, frm))
    check(any(frm is None or any(f.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for f in frm)
              for frm in by_port.get("https", [])),
          "%s: the secure port is not open to the kube-apiserver on the host network" % k)


def rules_metric_names(path):
    """Metric names the rules' seriesQuery select: name{...} or {__name__="name"...}."""
    doc = yaml.safe_load(open(path))
    names = []
    for section in ("rules", "externalRules"):
        for r in doc.get(section) or []:
            q = r["seriesQuery"]
            m = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", q) or re.search(r'__name__\s*=\s*"([^"]+)"', q)
            check(m is not None, "cannot find a metric name in seriesQuery %r" % q)
            if m:
                names.append((section, m.group(1), r))
    return names


def check_prometheus_snippet(objs):
    sts = find(objs, "StatefulSet", "metrics-adapter", NS)[0]
    flags = flag_values(sts["spec"]["template"]["spec"]["containers"][0])
    port = flags["listen-address"].rpartition(":")[2]
    rw = yaml.safe_load(open(os.path.join(DEPLOY, "prometheus", "remote-write.yaml")))["remote_write"]
    want = ["http://metrics-adapter-%d.%s.%s.svc:%s/api/v1/write" % (i, HEADLESS, NS, port)
            for i in range(sts["spec"]["replicas"])]
    eq([e["url"] for e in rw], want, "remote-write.yaml: one URL per replica")
    metrics = [n for _, n, _ in rules_metric_names(os.path.join(DEPLOY, "base", "adapter-rules.yaml"))]
    for e in rw:
        check(e.get("authorization", {}).get("credentials_file"), "remote-write.yaml: %s has no token file" % e["url"])
        check(e.get("queue_config", {}).get("batch_send_deadline") in ("1s", "500ms"),
              "remote-write.yaml: %s batch_send_deadline is not low-latency" % e["url"])
        keeps = [r for r in e.get("write_relabel_configs", []) if r.get("action") == "keep"
                 and r.get("source_labels") == ["__name__"]]
        if check(len(keeps) == 1, "remote-write.yaml: %s needs one keep rule on __name__" % e["url"]):
            rx = re.compile("^(?:%s)$" % keeps[0]["regex"])
            for n in metrics:
                check(rx.match(n), "remote-write.yaml: %s drops %s, which adapter-rules.yaml uses" % (e["url"], n))
            check(not rx.match("some_unrelated_metric"), "remote-write.yaml: keep regex keeps everything")
    r = subprocess.run(["promtool", "check", "config", os.path.join(DEPLOY, "prometheus", "remote-write.yaml")],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "promtool check config remote-write.yaml: %s%s" % (r.stdout, r.stderr))


def served_names(path):
    """Custom and external metric names the rules file serves (name.matches/as applied)."""
    custom, external = set(), set()
    for section, series, r in rules_metric_names(path):
        name = r.get("name") or {}
        n = series
        if "matches" in name:
            m = re.search(name["matches"], series)
            if m and name.get("as"):
                n = re.sub(r"\$\{?(\d+)\}?", lambda g: m.group(int(g.group(1))) or "", name["as"])
            elif m and m.groups():
                n = m.group(1)
        (custom if section == "rules" else external).add(n)
    return custom, external


def check_example_hpa():
    hpa = yaml.safe_load(open(os.path.join(DEPLOY, "examples", "hpa.yaml")))
    check_schema([hpa], "hpa.yaml")
    eq(hpa["apiVersion"], "autoscaling/v2", "hpa.yaml apiVersion")
    custom, external = served_names(os.path.join(DEPLOY, "base", "adapter-rules.yaml"))
    kinds = [m["type"] for m in hpa["spec"]["metrics"]]
    check("Pods" in kinds and "External" in kinds, "hpa.yaml: want a Pods and an External metric, got %r" % kinds)
    for m in hpa["spec"]["metrics"]:
        if m["type"] == "Pods":
            n = m["pods"]["metric"]["name"]
            check(n in custom, "hpa.yaml: Pods metric %s is not served by adapter-rules.yaml (%s)" % (n, sorted(custom)))
        if m["type"] == "External":
            n = m["external"]["metric"]["name"]
            check(n in external, "hpa.yaml: External metric %s is not served by adapter-rules.yaml (%s)" % (n, sorted(external)))


def start_adapter(bin_path, args, timeout=20):
    """Starts the adapter, waits (with a deadline) for its "started" line, stops
    it by its PID; returns (started, log text)."""
    p = subprocess.Popen([bin_path] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen, deadline = "", time.monotonic() + timeout
    try:
        fd = p.stdout.fileno()
        while time.monotonic() < deadline and 'msg="started"' not in seen:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break  # the adapter exited
                seen += chunk.decode(errors="replace")
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return 'msg="started"' in seen, seen


def check_rules_load(bin_path):
    """The adapter loads the base's rules file (start-up fails on a bad rule)."""
    path = os.path.join(DEPLOY, "base", "adapter-rules.yaml")
    ok, log = start_adapter(bin_path, ["--config=" + path, "--listen-address=127.0.0.1:0"])
    check(ok and 'msg="rules loaded"' in log, "metrics-adapter did not start with --config=%s:\n%s" % (path, log))


def free_port():
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def local_args(objs, c, tmp, known):
    """The container's args with every in-pod path replaced by a local file
    holding what the pod would see, and listeners moved to free ports on
    127.0.0.1: the adapter then starts here with the manifests' own values."""
    vols = {v["name"]: v for v in objs_pod(objs)["volumes"]}
    secrets = {o["metadata"]["name"]: o for o in find(objs, "Secret")}
    cms = {o["metadata"]["name"]: o for o in find(objs, "ConfigMap")}
    out = []
    for a in c.get("args", []):
        name, eqs, val = a[2:].partition("=")
        if name == "listen-address":
            val = "127.0.0.1:0"
        elif name == "bind-address":
            val = "127.0.0.1"
        elif name == "secure-port":
            val = str(free_port())
        elif name in ("tls-cert-file", "tls-private-key-file"):
            crt, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
            if not os.path.exists(crt):
                subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                "-nodes", "-days", "1", "-subj", "/CN=metrics-adapter-api.metrics-adapter.svc",
                                "-keyout", key, "-out", crt], check=True, capture_output=True, timeout=60)
            val = crt if name == "tls-cert-file" else key
        elif val.startswith("/"):
            vm = mount_for(c, val)
            local = os.path.join(tmp, name)
            vol = vols.get(vm["name"], {}) if vm else {}
            key = os.path.relpath(val, vm["mountPath"]) if vm else ""
            if "secret" in vol:
                data = secrets[vol["secret"]["secretName"]]["data"][key]
                with open(local, "wb") as f:
                    f.write(base64.b64decode(data))
            elif "configMap" in vol:
                with open(local, "w") as f:
                    f.write(cms[vol["configMap"]["name"]]["data"][key])
            elif name.endswith("-dir"):
                os.makedirs(local, exist_ok=True)
            else:
                os.makedirs(os.path.join(tmp, name + ".d"), exist_ok=True)
                local = os.path.join(tmp, name + ".d", os.path.basename(val))
            val = local
        out.append("--" + name + ("=" + val if eqs else ""))
    if "bind-address" in known and not any(a.startswith("--bind-address") for a in out):
        out.append("--bind-address=127.0.0.1")  # its default is 0.0.0.0
    return out


def objs_pod(objs):
    return find(objs, "StatefulSet", "metrics-adapter", NS)[0]["spec"]["template"]["spec"]


# Field names checked against the models of python3-kubernetes (Debian's
# 22.6, the 1.22 API: every field used here is older). A misspelt field
# (publishNotReadyAddress) is silently dropped by the API server on apply, so
# nothing else would notice. Kinds without a model (cert-manager's) are skipped.
MODELS = {
    ("v1", "Namespace"): "V1Namespace", ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Service"): "V1Service", ("v1", "Secret"): "V1Secret", ("v1", "ConfigMap"): "V1ConfigMap",
    ("apps/v1", "StatefulSet"): "V1StatefulSet", ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("apiregistration.k8s.io/v1", "APIService"): "V1APIService",
    # autoscaling/v2 has the fields of v2beta2, the newest this client knows.
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
}


def check_fields(value, typ, where):
    import kubernetes.client as kc
    if typ.startswith("list[") and isinstance(value, list):
        for i, v in enumerate(value):
            check_fields(v, typ[5:-1], "%s[%d]" % (where, i))
    elif typ.startswith("dict(") or typ in ("object", "str", "int", "bool", "float", "datetime"):
        return
    elif isinstance(value, dict):
        model = getattr(kc, typ)
        by_json = {j: py for py, j in model.attribute_map.items()}
        for key, v in value.items():
            if check(key in by_json, "%s: unknown field %r (%s)" % (where, key, typ)):
                check_fields(v, model.openapi_types[by_json[key]], where + "." + key)
    else:
        check(False, "%s: %r is not a %s" % (where, value, typ))


def check_schema(objs, k):
    n = 0
    for o in objs:
        model = MODELS.get((o["apiVersion"], o["kind"]))
        if model:
            check_fields(o, model, "%s: %s %s" % (k, o["kind"], o["metadata"]["name"]))
            n += 1
    return n


def manifests():
    for k in KUSTOMIZATIONS:
        objs = render(k)
        print("deploy/%s: %d objects" % (k, len(objs)))
        check_apiservices(objs, k)
        check_rbac(objs, k)
        sts = check_statefulset(objs, k)
        check_services(objs, k, sts)
        check_networkpolicy(objs, k)
        check(check_schema(objs, k) >= 15, "%s: too few objects checked against the API models" % k)
        if k == "base":
            check_prometheus_snippet(objs)
    check_example_hpa()
    if os.environ.get("MA_BIN"):
        check_rules_load(os.environ["MA_BIN"])


def flags():
    """Every --flag in every rendered container's args is one --help lists."""
    bin_path = os.environ.get("MA_BIN") or os.path.join(ROOT, "build", "bin", "metrics-adapter")
    r = subprocess.run([bin_path, "--help"], capture_output=True, text=True, timeout=30)
    known = set(re.findall(r"^\s+--([a-z0-9][a-z0-9-]*)", r.stdout + r.stderr, re.M))
    check(len(known) > 5, "could not read the flags from %s --help" % bin_path)
    missing = {}
    for k in KUSTOMIZATIONS:
        for o in find(render(k), "StatefulSet"):
            for c in o["spec"]["template"]["spec"]["containers"]:
                for name in flag_values(c):
                    if name not in known:
                        missing.setdefault(name, []).append(k)
    for name in sorted(missing):
        check(False, "--%s (used by deploy/%s) is not in metrics-adapter --help"
              % (name, ", deploy/".join(sorted(set(missing[name])))))
    if missing:
        print("flags the manifests use that the binary does not have yet: %s"
              % " ".join("--" + n for n in sorted(missing)))
        return
    # Every name is known: the values must be accepted too. Start the adapter
    # with each kustomization's args, paths and ports made local.
    for k in KUSTOMIZATIONS:
        objs = render(k)
        with tempfile.TemporaryDirectory() as tmp:
            args = local_args(objs, objs_pod(objs)["containers"][0], tmp, known)
            ok, log = start_adapter(bin_path, args)
            check(ok, "deploy/%s: metrics-adapter does not start with the manifests' args %s:\n%s" % (k, args, log))
            if ok:
                print("deploy/%s: the adapter starts with the manifests' args" % k)


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "manifests"
    {"manifests": manifests, "flags": flags}[what]()
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("PASS: %s" % what)


if __name__ == "__main__":
    main()
