"""Helpers for integration tests that start the real metrics-adapter binary.

Standard library only (run with Debian's /usr/bin/python3). Typical use:

    import harness
    with harness.Adapter(["--max-series=10"]) as a:      # binds 127.0.0.1:0
        status, headers, body = a.get("/healthz")
        m = a.metrics()                                    # parsed /metrics
        assert m.get("metrics_adapter_map_live_entries") == 0
    # leaving the block stops it by its PID (SIGTERM, deadline, SIGKILL = failure)

The binary comes from $MA_BIN (set by CTest through ma_py_test()), else from
build/bin/metrics-adapter in the source tree. Every instance gets its own
temporary directory (a.dir) holding its log (a.log_text()); it is removed when
the instance stops cleanly and kept, with its path printed, when it does not.
"""

import atexit
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

_live = []  # instances not yet stopped, killed at exit by PID


def adapter_bin():
    """Path of the metrics-adapter binary under test."""
    path = os.environ.get("MA_BIN") or os.path.join(ROOT, "build", "bin", "metrics-adapter")
    if not os.access(path, os.X_OK):
        raise RuntimeError("metrics-adapter binary not found at %s (set MA_BIN)" % path)
    return path


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (prefer --listen-address=...:0 where possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what="condition", interval=0.02):
    """Poll cond() until it returns a true value, which is returned; fail after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def request(port, method, path, body=None, headers=None, host="127.0.0.1", timeout=10):
    """One HTTP request on a fresh connection: (status, headers as a lower-cased dict, body bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def http_get(port, path, headers=None, **kw):
    return request(port, "GET", path, headers=headers, **kw)


def http_post(port, path, body, headers=None, **kw):
    return request(port, "POST", path, body=body, headers=headers, **kw)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(v):
    out, i = [], 0
    while i < len(v):
        c = v[i]
        if c == "\\" and i + 1 < len(v):
            n = v[i + 1]
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(n, "\\" + n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Metrics:
    """A parsed Prometheus text exposition.

    samples: {(name, ((label, value), ...sorted)): float}
    types:   {family name: "counter" | "gauge" | ...}
    helps:   {family name: help text}
    """

    def __init__(self, text):
        self.samples, self.types, self.helps = {}, {}, {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ", 3)
                if name in self.types:
                    raise ValueError("line %d: second TYPE for %s" % (lineno, name))
                self.types[name] = typ
                continue
            if line.startswith("# HELP "):
                parts = line.split(" ", 3)
                self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            if line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            if not m:
                raise ValueError("line %d: not a sample: %r" % (lineno, line))
            labels = {}
            if m.group(3):
                rest = m.group(3)
                pos = 0
                while pos < len(rest):
                    lm = _LABEL.match(rest, pos)
                    if not lm:
                        raise ValueError("line %d: bad labels: %r" % (lineno, line))
                    labels[lm.group(1)] = _unescape(lm.group(2))
                    pos = lm.end()
            key = (m.group(1), tuple(sorted(labels.items())))
            if key in self.samples:
                raise ValueError("line %d: duplicate sample %r" % (lineno, line))
            self.samples[key] = float(m.group(4))

    def get(self, name, default=None, **labels):
        """The value of the sample with exactly these labels, or default."""
        return self.samples.get((name, tuple(sorted(labels.items()))), default)

    def series(self, name):
        """[(labels dict, value)] for every sample of this name."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]

    def sum(self, name, **match):
        """Sum of the samples of this name whose labels include match."""
        return sum(v for labels, v in self.series(name) if all(labels.get(k) == x for k, x in match.items()))


def parse_metrics(text):
    return Metrics(text)


class LogFile:
    """For a test's child process writing to self.log_path: its log as text, kept
    in self._final_log once the process has stopped and its directory may be gone."""

    _final_log = None

    def log_text(self):
        if self._final_log is not None:
            return self._final_log
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


class Adapter(LogFile):
    """One metrics-adapter process on loopback.

    args: extra flags. Unless args set --listen-address, the instance binds
    127.0.0.1:0 and the port is read from its "listening" log line.
    """

    def __init__(self, args=(), binary=None, env=None, wait_healthy=True, start_timeout=10):
        self.args = list(args)
        self.binary = binary or adapter_bin()
        self.env = dict(os.environ, **(env or {}))
        self.wait_healthy = wait_healthy
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None
        self.addr = None
        self.dir = None
        self.returncode = None

    # -- lifecycle -------------------------------------------------------

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="ma-it-")
        self.log_path = os.path.join(self.dir, "adapter.log")
        args = list(self.args)
        if not any(a == "--listen-address" or a.startswith("--listen-address=") for a in args):
            args.insert(0, "--listen-address=127.0.0.1:0")
        # The HTTPS listener (default 6443) is off unless a test asks for it:
        # instances run in parallel and must not share a port.
        if not any(a == "--secure-port" or a.startswith("--secure-port=") for a in args):
            args.insert(0, "--secure-port=0")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary] + args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir, env=self.env)
        _live.append(self)
        m = wait_until(self._listening, self.start_timeout, "the adapter's listening line")
        self.addr, self.port = m.group(1), int(m.group(2))
        if self.wait_healthy:
            wait_until(self._healthy, self.start_timeout, "/healthz")
        return self

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("adapter exited with %s during start-up:\n%s" % (self.proc.returncode,
                                                                                   self.log_text()))
        return re.search(r'msg="listening" listener=ingest addr=(\S+):(\d+)', self.log_text())

    def _healthy(self):
        try:
            return self.get("/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal the process by its PID and wait; SIGKILL after timeout is a failure. Returns the exit code."""
        if self.proc is None or self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.returncode = self.proc.wait(timeout=timeout)
            self._finish(keep=True)
            raise AssertionError("adapter did not exit within %.0fs of %s; killed. Log:\n%s"
                                 % (timeout, signal.Signals(sig).name, self.log_text()))
        self._finish(keep=self.returncode != 0)
        return self.returncode

    def _finish(self, keep):
        if self in _live:
            _live.remove(self)
        self._log.close()
        self._final_log = self.log_text()
        if keep:
            # The tail goes to the test output too: CI keeps that, not /tmp.
            tail = "\n".join(self._final_log.splitlines()[-40:])
            print("adapter log kept in %s; its end:\n%s" % (self.dir, tail), file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if self.proc is not None and self.returncode is None:
            rc = self.stop()
            if exc_type is None and rc != 0:
                raise AssertionError("adapter exited with %d. Log:\n%s" % (rc, self.log_text()))
        if exc_type is not None:
            sys.stderr.write("--- adapter log ---\n%s\n---\n" % self.log_text())
        return False

    # -- observation -----------------------------------------------------

    def wait_log(self, pattern, timeout=5):
        """Wait for a log line matching the regular expression; returns the match."""
        return wait_until(lambda: re.search(pattern, self.log_text()), timeout, "log line /%s/" % pattern)

    def request(self, method, path, body=None, headers=None, **kw):
        return request(self.port, method, path, body=body, headers=headers, **kw)

    def get(self, path, headers=None, **kw):
        return request(self.port, "GET", path, headers=headers, **kw)

    def post(self, path, body, headers=None, **kw):
        return request(self.port, "POST", path, body=body, headers=headers, **kw)

    def metrics(self):
        status, headers, body = self.get("/metrics")
        if status != 200:
            raise AssertionError("/metrics answered %d: %r" % (status, body[:200]))
        return Metrics(body.decode("utf-8"))


def run(args, timeout=10, binary=None):
    """Run the binary to completion (for --help and flag errors): (code, stdout, stderr)."""
    p = subprocess.run([binary or adapter_bin()] + list(args), capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


@atexit.register
def _kill_leftovers():
    for a in list(_live):
        try:
            os.kill(a.proc.pid, signal.SIGKILL)
            a.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
