#!/usr/bin/python3
"""Build the benchmark suite's results table from the files the benchmarks
wrote, and put it in bench/README.md between the results markers.

usage: results_table.py DIR   (DIR as written by bench/run-all.sh:
        ingest.txt, query.json, churn/summary.md + churn/*.csv,
        memory/memory.csv, freshness.json; any missing is left out)
Ratios against the peers first, absolute numbers second.
"""
import csv
import json
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def less(peer, ours):
    """'N× less' when ours is smaller, 'N× more' when larger, 'not measured' when unknown."""
    try:
        peer, ours = float(peer), float(ours)
    except ValueError:
        return "not measured"
    if peer != peer or ours != ours or ours <= 0 or peer <= 0:
        return "not measured"
    return "%.1f× less" % (peer / ours) if peer >= ours else "%.1f× more" % (ours / peer)


def main():
    d = sys.argv[1]
    ratios, absolute = [], []
    ing = read(os.path.join(d, "ingest.txt"))
    if ing:
        v = {}
        for m in re.finditer(r"^(adapter|prometheus)\s+(\d+) samples/s\s+([\d.]+) us CPU/sample", ing, re.M):
            v[m.group(1)] = (float(m.group(2)), float(m.group(3)))
        if len(v) == 2:
            ratios.append("| ingest samples/s (2 connections) | %.1f× | ≥ 5× |" % (v["adapter"][0] / v["prometheus"][0]))
            ratios.append("| ingest CPU per sample | %.1f× less | ≥ 5× |" % (v["prometheus"][1] / v["adapter"][1]))
            absolute.append("| ingest | %.0f samples/s, %.3f µs CPU/sample | %.0f samples/s, %.3f µs CPU/sample |"
                            % (v["adapter"] + v["prometheus"]))
    q = read(os.path.join(d, "query.json"))
    if q:
        for r in json.loads(q)["results"]:
            if "prometheus" not in r:
                continue
            ratios.append("| query (%s) %s | %.0f× req/s, %.0f× p50 | (a) ≥ 50×, (b), (c) ≥ 10× |"
                          % (r["case"], r["what"], r["speedup_rps"], r["speedup_p50"]))
            absolute.append("| query (%s) | %.0f req/s, p50 %.3f ms | %.2f req/s, p50 %.1f ms |"
                            % (r["case"], r["adapter"]["rps"], r["adapter"]["p50_ms"], r["prometheus"]["rps"],
                               r["prometheus"]["p50_ms"]))
    mem = read(os.path.join(d, "memory", "memory.csv"))
    if mem:
        b = {(r["server"], int(r["series"])): r for r in csv.DictReader(mem.splitlines())}
        for n in sorted({k[1] for k in b if k[1] > 0}):
            a, p = b.get(("adapter", n)), b.get(("prometheus", n))
            if a and p:
                ratios.append("| memory per series at %s series | %.1f× less | ≥ 5× |"
                              % (f"{n:,}", float(p["bytes_per_series"]) / float(a["bytes_per_series"])))
                absolute.append("| bytes per live series at %s (goal ≤ 400) | %.0f B (RSS %.0f MiB) | %.0f B (RSS %.0f MiB) |"
                                % (f"{n:,}", float(a["bytes_per_series"]), int(a["rss_bytes"]) / 1048576,
                                   float(p["bytes_per_series"]), int(p["rss_bytes"]) / 1048576))
    churn = read(os.path.join(d, "churn", "summary.md"))
    if churn:
        rows = {}
        for line in churn.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == 12 and cells[0] in ("adapter", "syncmap", "rwmap"):
                rows[cells[0]] = cells
        a = rows.get("adapter")
        if a:
            for peer, name in (("syncmap", "Go sync.Map"), ("rwmap", "Go map + RWMutex")):
                p = rows.get(peer)
                if p:
                    ratios.append("| churn: steady RSS at 200,000 live, vs %s | %s | (shown) |"
                                  % (name, less(p[3], a[3])))
                    ratios.append("| churn: RSS after the drain to 10,000, vs %s | %s | (shown) |"
                                  % (name, less(p[9], a[9])))
            absolute.append("| churn steady phase: RSS, drift over last 80 %% (≤ 2 %%), max pending | %s MiB, %s, %s | sync.Map %s MiB, map %s MiB |"
                            % (a[3], a[4], a[6], rows.get("syncmap", ["-"] * 12)[3], rows.get("rwmap", ["-"] * 12)[3]))
            nm = lambda v: "not measured" if v in ("nan", "-") else v + " MiB"  # noqa: E731
            absolute.append("| churn after the drain: RSS vs limit (empty + 2 × cost of 10,000 series) | %s MiB vs %s MiB: %s | sync.Map %s, map %s |"
                            % (a[9], a[10], a[11], nm(rows.get("syncmap", ["-"] * 12)[9]),
                               nm(rows.get("rwmap", ["-"] * 12)[9])))
    fr = read(os.path.join(d, "freshness.json"))
    if fr:
        f = json.loads(fr)
        dr = f["direct"]
        absolute.append("| freshness: 204 → served (new series / new value), p50 / max | %.2f / %.1f ms, %.2f / %.1f ms (first poll served: %.0f %%) | - |"
                        % (dr["new_series"]["p50_ms"], dr["new_series"]["max_ms"], dr["new_value"]["p50_ms"],
                           dr["new_value"]["max_ms"], 100 * dr["new_value"]["first_poll_served"]))
        e = f.get("end_to_end")
        if e:
            for case in ("new_value", "new_series"):
                absolute.append("| end to end, %s: target change → served, p50 / max (scrape %s) | %.0f / %.0f ms | %.0f / %.0f ms (query API) |"
                                % (case.replace("_", " "), f["scrape_interval"], e[case]["adapter"]["p50_ms"],
                                   e[case]["adapter"]["max_ms"], e[case]["prometheus"]["p50_ms"],
                                   e[case]["prometheus"]["max_ms"]))
    missing = [n for n, f in (("ingest", "ingest.txt"), ("query", "query.json")) if not read(os.path.join(d, f))]
    note = (["", "Not in this run: %s (see their sections below for their latest numbers)." % ", ".join(missing)]
            if missing else [])
    out = [BEGIN, "", "Ratios (adapter against its peer, same run):", "",
           "| what | ratio | goal |", "|---|---|---|"] + ratios + [
        "", "Absolute numbers:", "", "| what | metrics-adapter | peer (Prometheus 2.42 or the Go stores) |", "|---|---|---|"] + absolute + note + ["", END]
    text = "\n".join(out)
    p = os.path.join(ROOT, "bench", "README.md")
    readme = read(p)
    if BEGIN in readme and END in readme:
        readme = readme[:readme.index(BEGIN)] + text + readme[readme.index(END) + len(END):]
        with open(p, "w") as fh:
            fh.write(readme)
    print(text)


if __name__ == "__main__":
    main()
