"""Prometheus remote-write payloads, built by hand for tests.

Protobuf is encoded here field by field (no generated code, no protobuf
package: the wire format is small), then compressed with python3-snappy's
block format, as Prometheus sends it. Run with Debian's /usr/bin/python3.

    import rw
    body = rw.v1([rw.series({"__name__": "up", "pod": "a"}, [(t_ms, 1.0)])])
    status, headers, text = a.post("/api/v1/write", body, rw.headers(1))

Label order is kept exactly as given (a list of pairs or a dict, whose
insertion order is kept), so unsorted or duplicate labels can be built on
purpose; series() sorts a dict unless sort=False.
"""

import struct

import snappy

CT_V1 = "application/x-protobuf;proto=prometheus.WriteRequest"
CT_V2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]

TYPES = {"unknown": 0, "counter": 1, "gauge": 2, "histogram": 3, "gaugehistogram": 4, "summary": 5,
         "info": 6, "stateset": 7}


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_len(num, payload):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def f_varint(num, v):
    return varint(num << 3) + varint(v)


def f_double(num, v):
    return varint(num << 3 | 1) + struct.pack("<d", v)


def stale_bits_double():
    """The stale marker as a double (its bits survive struct.pack)."""
    return STALE_NAN


class Series:
    """labels: list of (name, value); samples: list of (t_ms, value); type: a TYPES key or None."""

    def __init__(self, labels, samples, type=None, histograms=0, exemplars=0):
        self.labels = list(labels)
        self.samples = list(samples)
        self.type = type
        self.histograms = histograms
        self.exemplars = exemplars


def series(labels, samples, sort=True, **kw):
    items = list(labels.items()) if isinstance(labels, dict) else list(labels)
    if sort:
        items.sort()
    return Series(items, samples, **kw)


# -- v1: prometheus.WriteRequest -------------------------------------------

def _v1_sample(t, v):
    return f_double(1, v) + f_varint(2, t)


def v1_raw(series_list, metadata=()):
    """Uncompressed v1 protobuf. metadata: [(family, type name, help, unit)]."""
    out = bytearray()
    for s in series_list:
        ts = bytearray()
        for name, value in s.labels:
            ts += f_len(1, f_len(1, name) + f_len(2, value))
        for t, v in s.samples:
            ts += f_len(2, _v1_sample(t, v))
        for _ in range(s.histograms):
            ts += f_len(4, f_varint(1, 1) + f_varint(15, s.samples[0][0] if s.samples else 0))
        out += f_len(1, bytes(ts))
    for family, typ, help_, unit in metadata:
        md = f_varint(1, TYPES[typ]) + f_len(2, family)
        if help_:
            md += f_len(4, help_)
        if unit:
            md += f_len(5, unit)
        out += f_len(3, md)
    return bytes(out)


def v1(series_list, metadata=()):
    return snappy.compress(v1_raw(series_list, metadata))


# -- v2: io.prometheus.write.v2.Request -------------------------------------

def v2_raw(series_list, helps=None):
    """Uncompressed v2 protobuf. The symbol table starts with ""; each series' type goes in its metadata."""
    symbols, index = [""], {"": 0}

    def ref(s):
        if s not in index:
            index[s] = len(symbols)
            symbols.append(s)
        return index[s]

    body = bytearray()
    for s in series_list:
        refs = []
        for name, value in s.labels:
            refs += [ref(name), ref(value)]
        ts = bytearray()
        if refs:
            ts += f_len(1, b"".join(varint(r) for r in refs))  # packed
        for t, v in s.samples:
            ts += f_len(2, _v1_sample(t, v))
        for _ in range(s.histograms):
            ts += f_len(3, f_varint(1, 1) + f_varint(15, s.samples[0][0] if s.samples else 0))
        for _ in range(s.exemplars):
            ts += f_len(4, f_double(2, 1.0) + f_varint(3, s.samples[0][0] if s.samples else 0))
        if s.type:
            md = f_varint(1, TYPES[s.type])
            name = dict(s.labels).get("__name__")
            if helps and name in helps:
                md += f_varint(3, ref(helps[name]))
            ts += f_len(5, md)
        body += f_len(5, bytes(ts))
    head = b"".join(f_len(4, s) for s in symbols)
    return head + bytes(body)


def v2_raw_refs(symbols, refs_per_series, samples):
    """A v2 body with a given symbol table and raw label references (out-of-range refs on purpose)."""
    body = b"".join(f_len(4, s) for s in symbols)
    for refs in refs_per_series:
        ts = f_len(1, b"".join(varint(r) for r in refs))
        for t, v in samples:
            ts += f_len(2, _v1_sample(t, v))
        body += f_len(5, ts)
    return body


def v2(series_list, helps=None):
    return snappy.compress(v2_raw(series_list, helps))


def headers(version, token=None):
    h = {
        "Content-Type": CT_V1 if version == 1 else CT_V2,
        "Content-Encoding": "snappy",
        "User-Agent": "metrics-adapter-tests",
        "X-Prometheus-Remote-Write-Version": "0.1.0" if version == 1 else "2.0.0",
    }
    if token is not None:
        h["Authorization"] = "Bearer " + token
    return h
