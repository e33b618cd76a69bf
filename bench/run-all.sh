#!/usr/bin/env bash
# The whole benchmark suite, one after the other, then the results table in
# bench/README.md regenerated from what the runs wrote (bench/results_table.py).
# About 25 minutes: ingest (~1 min), query (~4 min), churn (~9 min), memory
# (~5 min, Prometheus holds 1,000,000 series: several GB), freshness (~2 min).
# Run it on a quiet machine; every number depends on the load.
#
# usage: bench/run-all.sh [--out DIR] [--only "ingest query churn memory freshness"]
# env:   BUILD (default build-b, else build): where metrics-adapter and the
#        generators are; the targets are built first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-b}
[ -d "$BUILD" ] || BUILD=$ROOT/build
out=$ROOT/bench/results only="ingest query churn memory freshness"
while [ $# -gt 0 ]; do
  case "$1" in
  --out) out=$2; shift ;;
  --only) only=$2; shift ;;
  *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
cmake --build "$BUILD" --target metrics-adapter ingest_loadgen churn_gen memload
export ADAPTER=$BUILD/bin/metrics-adapter
export LOADGEN=$BUILD/bin/ingest_loadgen
has() { [[ " $only " == *" $1 "* ]]; }
uptime | tee "$out/load.txt"
if has ingest; then bench_ingest="$ROOT/bench/ingest/run.sh"; "$bench_ingest" | tee "$out/ingest.txt"; fi
if has query; then "$ROOT/bench/query/run.sh" --out "$out/query.json"; fi
if has churn; then "$ROOT/bench/churn/run.sh" --out "$out/churn" || true; fi
if has memory; then "$ROOT/bench/memory/run.sh" --out "$out/memory"; fi
if has freshness; then "$ROOT/bench/freshness/run.sh" --out "$out/freshness.json" >/dev/null; fi
uptime | tee -a "$out/load.txt"
/usr/bin/python3 "$ROOT/bench/results_table.py" "$out"
