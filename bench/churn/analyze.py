"""Summarise the churn load test's CSVs (one per subject) and check its goals.

usage: analyze.py [--smoke] OUTDIR SUBJECT...   (reads OUTDIR/SUBJECT.csv)

Per subject: the empty process's RSS (median of the 'empty' phase), the
measured cost of the base series (RSS at the end of 'base' minus empty), the
steady phase's RSS drift over its last 80 % (least-squares slope times the
window, relative to the window's mean RSS; and max-min spread), the most
maplib entries pending reclaim, the peak of the burst, and the RSS at the
end of 'idle' against empty + 2x the base cost. Writes OUTDIR/summary.md and
exits 1 when an asserted goal of the adapter is missed.
"""
import csv
import statistics
import sys


def load(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("t_s", "rss_bytes", "live", "pending", "reclaimed", "buckets", "heap_inuse", "gen_live"):
            r[k] = float(r[k]) if r[k] not in ("", None) else None
    return rows


def drift(rows, frac):
    """Drift over the last `frac` of rows: slope*span/mean, and (max-min)/mean."""
    n = len(rows)
    w = rows[n - max(2, int(round(n * frac))):]
    xs = [r["t_s"] for r in w]
    ys = [r["rss_bytes"] for r in w]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return slope * (xs[-1] - xs[0]) / my, (max(ys) - min(ys)) / my, my


def summarise(rows, frac):
    """The numbers of one subject; phases a run did not reach are NaN (an interrupted peer)."""
    nan = float("nan")
    by = lambda p: [r for r in rows if r["phase"] == p]  # noqa: E731
    empty = statistics.median(r["rss_bytes"] for r in by("empty"))
    base = by("base")
    cost = base[-1]["rss_bytes"] - empty if base else nan
    base_n = base[-1]["gen_live"] if base else nan
    steady = by("steady")
    d_fit, d_spread, steady_mean = drift(steady, frac) if len(steady) >= 2 else (nan, nan, nan)
    pend = [r["pending"] for r in steady if r["pending"] is not None]
    burst = [r for r in rows if r["phase"] in ("burst", "hold")]
    peak = max(r["rss_bytes"] for r in burst) if burst else nan
    burst_n = max(r["gen_live"] for r in burst) if burst else 0
    idle = by("idle") + by("end")
    end = idle[-1] if idle else None
    get = lambda k: end[k] if end else nan  # noqa: E731
    return {
        "empty": empty, "cost": cost, "base_n": base_n, "drift": d_fit, "spread": d_spread,
        "steady_mean": steady_mean, "steady_live": steady[-1]["gen_live"] if steady else nan,
        "steady_s": steady[-1]["t_s"] - steady[0]["t_s"] if steady else 0,
        "pending_max": max(pend) if pend else None,
        "pending_end": get("pending"), "reclaimed_end": get("reclaimed"),
        "peak": peak, "burst_n": burst_n, "per_series_peak": (peak - empty) / burst_n if burst_n else nan,
        "end": get("rss_bytes"), "end_live": get("live"), "end_gen_live": get("gen_live"),
        "limit": empty + 2 * cost, "heap_end": get("heap_inuse"), "complete": end is not None,
        "last_phase": rows[-1]["phase"], "last_t": rows[-1]["t_s"],
    }


MB = 1 / 1048576


def main():
    args = sys.argv[1:]
    smoke = args and args[0] == "--smoke"
    if smoke:
        args = args[1:]
    out, subjects = args[0], args[1:]
    frac = 0.5 if smoke else 0.8
    drift_tol = 0.05 if smoke else 0.02
    lines = ["| subject | empty RSS MiB | cost of %s series MiB | steady RSS MiB (mean, last %d %%) | drift | spread "
             "| max pending | burst peak RSS MiB | bytes/series at peak | RSS after drain MiB | limit MiB | drain goal |"
             % ("base", frac * 100), "|" + "---|" * 12]
    ok = True
    res = {}
    for s in subjects:
        r = summarise(load(f"{out}/{s}.csv"), frac)
        res[s] = r
        drain_ok = r["end"] <= r["limit"] if r["complete"] else None
        lines.append(
            f"| {s} | {r['empty']*MB:.1f} | {r['cost']*MB:.1f} ({r['base_n']:.0f}) | {r['steady_mean']*MB:.1f} "
            f"| {r['drift']*100:+.2f} % | {r['spread']*100:.2f} % "
            f"| {'' if r['pending_max'] is None else '%.0f' % r['pending_max']} | {r['peak']*MB:.1f} "
            f"| {r['per_series_peak']:.0f} | {r['end']*MB:.1f} | {r['limit']*MB:.1f} | {'met' if drain_ok else 'missed' if drain_ok is False else 'run interrupted in ' + r['last_phase'] + ' at %.0f s' % r['last_t']} |")
    a = res.get("adapter")
    checks = []
    if a:
        checks.append((abs(a["drift"]) <= drift_tol,
                       f"adapter steady RSS drift {a['drift']*100:+.2f} % over the last {frac*100:.0f} % "
                       f"(tolerance {drift_tol*100:.0f} %)"))
        bound = a["steady_live"]
        checks.append((a["pending_max"] is not None and a["pending_max"] <= bound,
                       f"adapter pending reclaim at most {a['pending_max']:.0f} in the steady phase "
                       f"(bound: the live set, {bound:.0f})"))
        checks.append((a["pending_end"] == 0, f"adapter pending reclaim after idle: {a['pending_end']:.0f} (want 0)"))
        checks.append((a["end_live"] == a["end_gen_live"],
                       f"adapter live series after the drain {a['end_live']:.0f}, generator {a['end_gen_live']:.0f}"))
        drain = (a["end"] <= a["limit"],
                 f"adapter RSS after the drain {a['end']*MB:.1f} MB vs empty + 2 x cost of "
                 f"{a['base_n']:.0f} series = {a['limit']*MB:.1f} MB")
        checks.append(drain)
    lines.append("")
    for good, text in checks:
        lines.append(f"- {'PASS' if good else 'FAIL'}: {text}")
        ok = ok and good
    text = "\n".join(lines) + "\n"
    with open(f"{out}/summary.md", "w") as f:
        f.write(text)
    print(text, end="")
    sys.exit(0 if ok or not smoke else 1)


if __name__ == "__main__":
    main()
