#!/usr/bin/env bash
# Freshness benchmark (bench/freshness/freshness.py): acceptance-to-visibility
# in the adapter's API, and end to end through a real Prometheus 2.42 scrape
# + remote write against Prometheus's own query API.
# usage: bench/freshness/run.sh [--smoke] [--trials N] [--e2e-trials N] [--out FILE.json]
# env:   ADAPTER (default build-b/bin/metrics-adapter, else build/bin/...).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${ADAPTER:-}" ]; then
  ADAPTER=$ROOT/build-b/bin/metrics-adapter
  [ -x "$ADAPTER" ] || ADAPTER=$ROOT/build/bin/metrics-adapter
fi
exec env PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$ROOT/bench/freshness/freshness.py" --adapter "$ADAPTER" "$@"
