#!/usr/bin/python3
"""Instructions per lookup under callgrind: maplib at 1,000 vs 100,000 entries,
fresh and after the map grew and shrank.

usage: lookup_cost.py path/to/lookup_cost

A hash table whose bucket array follows its entry count costs about the same
per lookup at any size; one stuck small walks a chain that grows with the
count. Callgrind counts instructions, which repeat exactly from run to run,
so this measures the effect (work per lookup) without trusting the bucket
count the table reports. The stuck raw cds_lfht run is the control: it shows
that the same measurement does see a table that stopped resizing.
"""
import os
import re
import subprocess
import sys
import tempfile

MAX_RATIO = 3.0      # maplib, 100k vs 1k entries
MIN_STUCK_RATIO = 30  # control: a 1-bucket table at 10k entries (inserting 100k into it is quadratic)


def instructions_per_lookup(binary, kind, n, lookups, tmp):
    out = os.path.join(tmp, f"cg.{kind}.{n}")
    cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", f"--callgrind-out-file={out}",
           binary, kind, str(n), str(lookups)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"{' '.join(cmd)}: exit {res.returncode}")
    with open(out) as f:
        m = re.search(r"^summary:\s+(\d+)", f.read(), re.M)
    if not m:
        raise SystemExit(f"no summary in {out}")
    ir = int(m.group(1))
    print(f"{kind:6} n={n:<7} lookups={lookups:<6} Ir={ir:<10} Ir/lookup={ir / lookups:.1f}  {res.stdout.split()[0]}")
    return ir / lookups


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        small = instructions_per_lookup(binary, "maplib", 1000, 20000, tmp)
        big = instructions_per_lookup(binary, "maplib", 100000, 20000, tmp)
        cycled = instructions_per_lookup(binary, "cycled", 100000, 20000, tmp)
        shrunk = instructions_per_lookup(binary, "shrunk", 1000, 20000, tmp)
        stuck = instructions_per_lookup(binary, "stuck", 10000, 200, tmp)
    sratio = stuck / small
    for what, cost in (("100k", big), ("100k after 0 -> 100k -> 0", cycled), ("1k after 100k -> 1k", shrunk)):
        ratio = cost / small
        print(f"ratio maplib {what} / fresh 1k = {ratio:.2f} (limit {MAX_RATIO})")
        if ratio >= MAX_RATIO:
            raise SystemExit(f"FAIL: lookups got expensive: {what}")
    print(f"stuck 10k/1k = {sratio:.0f} (control, must exceed {MIN_STUCK_RATIO})")
    if sratio <= MIN_STUCK_RATIO:
        raise SystemExit("FAIL: the control did not show a stuck table; the measurement is blind")
    print("lookup_cost: ok")


if __name__ == "__main__":
    main()
