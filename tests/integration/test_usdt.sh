#!/usr/bin/env bash
# maplib's USDT probes are in the binary (issue 7, evidence 4): `readelf -n`
# lists provider maplib with insert, delete and reclaim, each with three
# arguments (map, node, name), and the bpftrace script in deploy/tracing
# names only probes that exist.
#
# Usage: test_usdt.sh BINARY SOURCE_DIR
set -euo pipefail
bin=${1:?usage: $0 BINARY SOURCE_DIR}
src=${2:?usage: $0 BINARY SOURCE_DIR}
fail=0

notes=$(readelf -n "$bin")
probes=$(awk '/Provider:/ {p=$2} /Name:/ && p {print p ":" $2; p=""}' <<<"$notes" | sort -u)
echo "probes: $(tr '\n' ' ' <<<"$probes")"
for want in maplib:insert maplib:delete maplib:reclaim; do
  if grep -qx "$want" <<<"$probes"; then
    echo "ok   $want"
  else
    echo "FAIL: USDT probe $want not in readelf -n $bin"; fail=1
  fi
done
# Three 8-byte arguments on every maplib probe.
bad=$(awk '/Provider: maplib/ {m=1; next} m && /Arguments:/ {if (NF != 4) print; m=0}' <<<"$notes")
if [ -n "$bad" ]; then
  echo "FAIL: maplib probes without three arguments: $bad"; fail=1
else
  echo "ok   every maplib probe has (map, node, name)"
fi

# The bpftrace example only uses probes that exist.
bt="$src/deploy/tracing/maplib.bt"
used=$(grep -oE 'usdt:[^:]*:maplib:[a-z_]+' "$bt" | sed 's/.*:maplib:/maplib:/' | sort -u)
[ -n "$used" ] || { echo "FAIL: no maplib probe used in $bt"; fail=1; }
for u in $used; do
  grep -qx "$u" <<<"$probes" || { echo "FAIL: $bt uses $u, which the binary does not have"; fail=1; }
done
[ "$fail" -eq 0 ] && echo PASS
exit "$fail"
