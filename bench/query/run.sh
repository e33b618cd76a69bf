#!/usr/bin/env bash
# Query benchmark: metrics-adapter's custom-metrics reads against Prometheus
# 2.42's /api/v1/query over the same data, sent to both by remote write
# (details in bench/query/bench.py and bench/README.md).
#
# usage: bench/query/run.sh [--smoke] [bench.py options: --pods N --series N
#                           --duration S --connections N --threads N --out FILE]
# env:   ADAPTER (default build/bin/metrics-adapter)
# --smoke: 100 pods x 10 series, 1 s per wrk run: checks that every read
# answers 200 with the right item count on both servers, and that the
# adapter's latency histogram (GET /metrics) counted every read, not speed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ADAPTER=${ADAPTER:-$ROOT/build/bin/metrics-adapter}
args=()
for a in "$@"; do
  if [ "$a" = --smoke ]; then
    args+=(--pods 100 --series 10 --duration 1 --connections 1 --threads 1)
  else
    args+=("$a")
  fi
done
command -v wrk >/dev/null || { echo "wrk is needed (Debian package wrk)" >&2; exit 2; }
exec env PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$ROOT/bench/query/bench.py" --adapter "$ADAPTER" "${args[@]}"
