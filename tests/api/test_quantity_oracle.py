#!/usr/bin/python3
"""Checks api_quantity_format against an independent parser.

Runs the generator (test_quantity_gen, path in argv[1]), which prints each
double in hex-float form and the Quantity string our formatter produced, and
checks every line with Debian's python3-kubernetes:

  * kubernetes.utils.parse_quantity(string) equals the shortest round-trip
    decimal of the double (Python's repr) rounded away from zero to milli;
  * the string is the canonical form (trailing zeros moved into an exponent
    that is a multiple of three, DecimalSI suffix, decimal exponent beyond E),
    rebuilt here independently from that decimal;
  * a non-zero value is never "0"; NaN and infinities are refused.

Run with /usr/bin/python3 (the interpreter that has python3-kubernetes).
"""
import decimal
import math
import subprocess
import sys
from decimal import Decimal

from kubernetes.utils import parse_quantity

SUFFIX = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
MILLI = Decimal("0.001")


def expected_decimal(v):
    """Shortest round-trip decimal of v, rounded away from zero to milli."""
    with decimal.localcontext() as ctx:
        ctx.prec = 400
        return Decimal(repr(v)).quantize(MILLI, rounding=decimal.ROUND_UP)


def canonical(d):
    """apimachinery's canonical DecimalSI string for the exact decimal d."""
    if d == 0:
        return "0"
    sign, digits, exp = d.as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exp += 1
    r = exp % 3  # Python's % is non-negative here
    digits += [0] * r
    exp -= r
    mant = "".join(map(str, digits))
    suffix = SUFFIX.get(exp, "e%d" % exp)
    return ("-" if sign else "") + mant + suffix


def main():
    gen = sys.argv[1]
    count = sys.argv[2] if len(sys.argv) > 2 else "9000"
    out = subprocess.run([gen, count], check=True, capture_output=True, text=True, timeout=60).stdout
    lines = out.splitlines()
    failures = 0
    checked = 0
    for line in lines:
        hexv, got = line.split("\t")
        v = float.fromhex(hexv)
        if not math.isfinite(v):
            if got != "REFUSED":
                print("FAIL %s: non-finite formatted as %r" % (hexv, got))
                failures += 1
            continue
        checked += 1
        want = expected_decimal(v)
        try:
            parsed = parse_quantity(got)
        except ValueError as e:
            print("FAIL %r (%s): parse_quantity refused %r: %s" % (v, hexv, got, e))
            failures += 1
            continue
        if parsed != want:
            print("FAIL %r: %r parses as %s, want %s" % (v, got, parsed, want))
            failures += 1
        if got != canonical(want):
            print("FAIL %r: got %r, canonical form is %r" % (v, got, canonical(want)))
            failures += 1
        if v != 0 and got in ("0", "-0"):
            print("FAIL %r: non-zero value written as %r" % (v, got))
            failures += 1
        if failures > 20:
            break
    if checked < 5000:
        print("FAIL: only %d values checked" % checked)
        failures += 1
    if failures:
        print("%d failure(s)" % failures)
        return 1
    print("test_quantity_oracle: %d values agree with kubernetes.utils.parse_quantity" % checked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
