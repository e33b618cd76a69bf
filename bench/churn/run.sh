#!/usr/bin/env bash
# Churn load test: write-only pod churn against metrics-adapter, then the same
# schedule against two Go peers (sync.Map; map + sync.RWMutex with deletes),
# one after the other in one run; a CSV per subject sampled every second, a
# summary with the goals checked (analyze.py) and one PNG (gnuplot).
#
# usage: bench/churn/run.sh [--smoke] [--out DIR] [--steady S] [--idle S]
#                           [--rate N] [--live N] [--burst N] [--no-peers]
# env:   ADAPTER (default build-b/bin/metrics-adapter, else build/bin/...),
#        CHURN_GEN (default next to ADAPTER), GO (default go),
#        ADAPTER_ARGS (extra adapter flags).
# Default: 10,000 new series/s, live set 200,000, 120 s steady, burst to
# 1,000,000 at 100,000 series/s, drain to every 100th pod, 30 s idle: about
# 3 minutes per subject, under 10 minutes in all. --out defaults to
# bench/churn/results/.
# --smoke (ctest, label bench): the adapter only, about 60 s, at 5,000
# series/s with a 50,000 live set and a 200,000 burst; exits 1 when the
# bounded-memory property is missed (tolerances in analyze.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/churn
. "$ROOT/bench/common/lib.sh"
CHURN_GEN=${CHURN_GEN:-$(dirname "$ADAPTER")/churn_gen}
GO=${GO:-go}

smoke=0 out=$HERE/results peers=1
sched=(--rate 10000 --live 200000 --steady 120 --burst 1000000 --burst-rate 100000 --hold 5 --idle 30)
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
  --smoke)
    smoke=1 peers=0
    sched=(--rate 5000 --live 50000 --steady 30 --burst 200000 --burst-rate 50000 --hold 2 --idle 12
      --phase-empty 2 --phase-base 3)
    ;;
  --out) out=$2; shift ;;
  --no-peers) peers=0 ;;
  --steady | --idle | --rate | --live | --burst) extra+=("$1" "$2"); shift ;;
  *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
sched+=("${extra[@]}")
mkdir -p "$out"

bench_init churn

machine_line
echo "schedule: ${sched[*]}"
subjects=(adapter)

# The adapter: plain RSS from /proc/PID/status, maplib's numbers from /metrics.
port=$(free_port)
args=(--listen-address "127.0.0.1:$port" --max-series 0)
if "$ADAPTER" --help 2>&1 | grep -q -- '--secure-port'; then
  args+=(--secure-port 0)
fi
# shellcheck disable=SC2206
args+=(${ADAPTER_ARGS:-})
"$ADAPTER" "${args[@]}" >"$TMP/adapter.log" 2>&1 &
apid=$!
PIDS+=("$apid")
wait_http "http://127.0.0.1:$port/metrics" 30 || { cat "$TMP/adapter.log" >&2; exit 1; }
echo "adapter: $ADAPTER (pid $apid)"
"$CHURN_GEN" --url "http://127.0.0.1:$port/api/v1/write" --metrics-url "http://127.0.0.1:$port/metrics" \
  --pid "$apid" --csv "$out/adapter.csv" "${sched[@]}"
kill "$apid"
wait "$apid" 2>/dev/null || true

# The Go peers: the same schedule in-process; RSS after runtime.GC() and
# debug.FreeOSMemory() at every sample.
if [ "$peers" = 1 ]; then
  GOCACHE=$TMP/gocache GO111MODULE=off GOFLAGS= GOPROXY=off \
    "$GO" build -o "$TMP/churnpeer" "$HERE/peers/churnpeer.go"
  for s in syncmap rwmap; do
    echo "peer: $s"
    "$TMP/churnpeer" -store "$s" -csv "$out/$s.csv" "${sched[@]/#--/-}"
    subjects+=("$s")
  done
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

if command -v gnuplot >/dev/null; then
  gnuplot -e "dir='$out'; peers=$peers" "$HERE/plot.gp" && echo "plot: $out/churn.png"
fi
rc=0
"$PY" "$HERE/analyze.py" $([ "$smoke" = 1 ] && echo --smoke) "$out" "${subjects[@]}" || rc=$?
exit $rc
