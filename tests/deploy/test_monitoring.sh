#!/usr/bin/env bash
# deploy/monitoring: the alert rules are valid (promtool check rules) and
# behave as alerts_test.yaml says (promtool test rules), the
# PrometheusRule is exactly what gen-prometheusrule.sh makes of them, and every
# metrics_adapter_* / process_* name the rules use is one the adapter's
# sources export (a rule on a name nobody exports would never fire).
#
# Usage: test_monitoring.sh SOURCE_DIR
set -euo pipefail
src=${1:?usage: $0 SOURCE_DIR}
mon="$src/deploy/monitoring"
fail=0

if ! out=$(promtool check rules "$mon/alerts.yaml" 2>&1); then
  echo "$out"; echo "FAIL: promtool check rules deploy/monitoring/alerts.yaml"; fail=1
else
  echo "ok   promtool: $(tr '\n' ' ' <<<"$out")"
fi

# The alerts fire on the series the adapter exports, and stay quiet otherwise.
if ! out=$(cd "$mon" && promtool test rules alerts_test.yaml 2>&1); then
  echo "$out"; echo "FAIL: promtool test rules deploy/monitoring/alerts_test.yaml"; fail=1
else
  echo "ok   promtool test rules: $(tr '\n' ' ' <<<"$out")"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$mon/gen-prometheusrule.sh" "$tmp/prometheusrule.yaml"
if ! diff -u "$mon/prometheusrule.yaml" "$tmp/prometheusrule.yaml"; then
  echo "FAIL: deploy/monitoring/prometheusrule.yaml differs from what gen-prometheusrule.sh generates from alerts.yaml (run it and commit the result)"
  fail=1
else
  echo "ok   prometheusrule.yaml is up to date with alerts.yaml"
fi

# Names in the rules' expressions (annotations left out).
names=$(/usr/bin/python3 -c '
import sys, yaml
for g in yaml.safe_load(open(sys.argv[1]))["groups"]:
    for r in g["rules"]:
        print(r["expr"])' "$mon/alerts.yaml" | grep -oE '\b(metrics_adapter|process)_[a-z0-9_]+' | sort -u)
[ -n "$names" ] || { echo "FAIL: found no metrics_adapter_* names in the rules"; fail=1; }
for n in $names; do
  # A histogram's series are exported under the family's name.
  fam=$(sed -E 's/_(bucket|sum|count)$//' <<<"$n")
  if grep -rqF "\"$n\"" "$src/adapter" "$src/maplib" "$src/api" ||
     grep -rqF "\"$fam\"" "$src/adapter" "$src/maplib" "$src/api"; then
    echo "ok   $n is exported"
  else
    echo "FAIL: $n is used by deploy/monitoring/alerts.yaml but no source file in adapter/, maplib/ or api/ exports it"
    fail=1
  fi
done
[ "$fail" -eq 0 ] && echo PASS
exit "$fail"
