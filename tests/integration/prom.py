"""A real Prometheus 2.42 (Debian package) on loopback, for end-to-end tests.

    import prom
    cfg = prom.config(scrape=[("target", ["127.0.0.1:9100"])],
                      remote_write=["http://127.0.0.1:8080/api/v1/write"])
    with prom.Prometheus(cfg) as p:            # free port, temp dir, waits for /-/ready
        p.wait_for("up == 1", timeout=30)
        value = p.query_scalar('sum(up)')

Every instance has its own temporary directory (config, TSDB, log), removed on
a clean stop and kept (path printed) otherwise; it is stopped by its own PID
(SIGTERM, then SIGKILL after a deadline) and killed at interpreter exit if a
test forgot. Standard library only; run with /usr/bin/python3.
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import harness

PROMETHEUS = os.environ.get("MA_PROMETHEUS", "/usr/bin/prometheus")
_live = []


def available():
    return os.access(PROMETHEUS, os.X_OK)


def config(scrape=(), remote_write=(), scrape_interval="1s", relabel=None, extra_remote_write=None):
    """A prometheus.yml as text. scrape: [(job, [host:port, ...])]; remote_write: [url].

    relabel: optional {job: [(target_label, replacement)]} static labels added by relabelling.
    The remote-write queue is tuned for tests: small batches sent every second.
    """
    lines = ["global:", "  scrape_interval: %s" % scrape_interval, "  scrape_timeout: %s" % scrape_interval,
             "  evaluation_interval: %s" % scrape_interval, "scrape_configs:"]
    for job, targets in scrape:
        lines += ["  - job_name: %s" % json.dumps(job),
                  "    static_configs:",
                  "      - targets: [%s]" % ", ".join(json.dumps(t) for t in targets)]
        adds = (relabel or {}).get(job, [])
        if adds:
            lines.append("    relabel_configs:")
            for label, value in adds:
                lines += ["      - target_label: %s" % label, "        replacement: %s" % json.dumps(value)]
    if remote_write:
        lines.append("remote_write:")
        for url in remote_write:
            lines += ["  - url: %s" % json.dumps(url),
                      "    remote_timeout: 5s",
                      "    queue_config:",
                      "      capacity: 2000",
                      "      max_samples_per_send: 500",
                      "      batch_send_deadline: 1s",
                      "      min_backoff: 100ms",
                      "      max_backoff: 1s",
                      "    metadata_config:",
                      "      send: true",
                      "      send_interval: 5s"]
            for line in extra_remote_write or ():
                lines.append("    " + line)
    return "\n".join(lines) + "\n"


class Prometheus(harness.LogFile):
    def __init__(self, config_text, args=(), start_timeout=30):
        self.config_text = config_text
        self.args = list(args)
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None
        self.dir = None
        self.returncode = None

    def start(self):
        if not available():
            raise RuntimeError("prometheus not found at %s" % PROMETHEUS)
        self.dir = tempfile.mkdtemp(prefix="ma-prom-")
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(self.config_text)
        self.port = harness.free_port()
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self._log = open(self.log_path, "wb")
        cmd = [PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
               "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=info"] + self.args
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.dir)
        _live.append(self)
        harness.wait_until(self._ready, self.start_timeout, "Prometheus /-/ready", interval=0.1)
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("prometheus exited with %s during start-up:\n%s"
                                 % (self.proc.returncode, self.log_text()))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout=20):
        if self.proc is None or self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.returncode = self.proc.wait(timeout=10)
        if self in _live:
            _live.remove(self)
        self._log.close()
        self._final_log = self.log_text()
        if self.returncode == 0:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("prometheus log kept in %s" % self.dir, file=sys.stderr)
        return self.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is not None:
            sys.stderr.write("--- prometheus log (tail) ---\n%s\n---\n" % self.log_text()[-4000:])
        return False

    # -- HTTP API ---------------------------------------------------------

    def api(self, path, params=None, timeout=10):
        url = "http://127.0.0.1:%d%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=timeout) as r:
            doc = json.loads(r.read().decode("utf-8"))
        if doc.get("status") != "success":
            raise AssertionError("prometheus API %s: %r" % (path, doc))
        return doc["data"]

    def query(self, expr, at=None):
        """Instant query: [(labels dict, value float)]."""
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        data = self.api("/api/v1/query", params)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def query_scalar(self, expr, at=None):
        """The single value of expr, or None when the result is empty."""
        res = self.query(expr, at)
        if not res:
            return None
        if len(res) != 1:
            raise AssertionError("%s: %d results, expected one" % (expr, len(res)))
        return res[0][1]

    def wait_for(self, expr, timeout=60, what=None):
        """Wait until expr returns a non-empty result; returns it."""
        return harness.wait_until(lambda: self.query(expr), timeout, what or expr, interval=0.25)


@atexit.register
def _kill_leftovers():
    for p in list(_live):
        try:
            os.kill(p.proc.pid, signal.SIGKILL)
            p.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
