#!/usr/bin/env bash
# Ingest benchmark: the same remote-write load against metrics-adapter and
# against Prometheus 2.42 (--web.enable-remote-write-receiver), one after the
# other in one run, reporting for each
#   samples/s            counted by the server itself: the adapter's
#                        metrics_adapter_samples_accepted_total, Prometheus'
#                        prometheus_tsdb_head_samples_appended_total;
#   CPU us per sample    the server's utime+stime from /proc/PID/stat over
#                        the measured window, divided by the samples counted.
# Each server gets a warm-up run first (series creation), then the measured
# run appends new samples to existing series, as a steady remote-write
# stream does.
#
# usage: bench/ingest/run.sh [--smoke] [--connections N] [--duration S]
#                            [--series N] [--proto v1|v2] [--only adapter|prometheus]
# env:   ADAPTER (default build-b/bin/metrics-adapter, else build/bin/...),
#        LOADGEN (default next to ADAPTER), PROMETHEUS (default prometheus),
#        ADAPTER_ARGS (extra adapter flags).
# --smoke: a short run (1 connection, 200 series, 10 requests) that only
# asserts that both servers counted every sample the generator had accepted.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/common/lib.sh"
LOADGEN=${LOADGEN:-$(dirname "$ADAPTER")/ingest_loadgen}
PROMETHEUS=${PROMETHEUS:-prometheus}

smoke=0 conns=2 duration=10 series=2000 proto=v1 only="" warmup=3 maxreq=0
while [ $# -gt 0 ]; do
  case "$1" in
  --smoke) smoke=1; conns=1; duration=10; series=200; warmup=0; maxreq=10 ;;
  --connections) conns=$2; shift ;;
  --duration) duration=$2; shift ;;
  --series) series=$2; shift ;;
  --proto) proto=$2; shift ;;
  --only) only=$2; shift ;;
  *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

bench_init ingest

# counter URL NAME: the sum of every series of a metric in a /metrics page.
counter() {
  curl -sf "$1" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}

# cpu_ticks PID: utime + stime of a process, in clock ticks.
cpu_ticks() {
  sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

TICK=$(getconf CLK_TCK)
RESULTS=()

# measure NAME PID WRITE_URL METRICS_URL COUNTER
measure() {
  local name=$1 pid=$2 url=$3 murl=$4 cname=$5
  if [ "$warmup" != 0 ]; then
    "$LOADGEN" --url "$url" --connections "$conns" --series "$series" --proto "$proto" \
      --duration "$warmup" >"$TMP/$name.warmup" || { cat "$TMP/$name.warmup" >&2; return 1; }
  fi
  local c0 t0 c1 t1 out
  c0=$(counter "$murl" "$cname")
  t0=$(cpu_ticks "$pid")
  local extra=()
  [ "$maxreq" != 0 ] && extra=(--max-requests "$maxreq")
  out=$("$LOADGEN" --url "$url" --connections "$conns" --series "$series" --proto "$proto" \
    --duration "$duration" "${extra[@]}")
  t1=$(cpu_ticks "$pid")
  c1=$(counter "$murl" "$cname")
  echo "$name loadgen: $out"
  local sent el
  sent=$(sed -n 's/.*samples_sent=\([0-9]*\).*/\1/p' <<<"$out")
  el=$(sed -n 's/.*elapsed_s=\([0-9.]*\).*/\1/p' <<<"$out")
  local got=$((c1 - c0))
  if [ "$got" -le 0 ]; then
    echo "FAIL: $name counted no samples ($cname $c0 -> $c1)" >&2
    return 1
  fi
  if [ "$got" -ne "$sent" ]; then
    echo "FAIL: $name counted $got samples, the generator had $sent accepted" >&2
    return 1
  fi
  local line
  line=$(awk -v n="$name" -v g="$got" -v e="$el" -v dt="$((t1 - t0))" -v tk="$TICK" \
    'BEGIN { printf "%-12s %12.0f samples/s %8.3f us CPU/sample (%d samples in %.2f s, %.2f CPU s)\n",
             n, g / e, dt * 1e6 / tk / g, g, e, dt / tk }')
  echo "$line"
  RESULTS+=("$line")
}

run_adapter() {
  local port
  port=$(free_port)
  local args=(--listen-address "127.0.0.1:$port")
  if "$ADAPTER" --help 2>&1 | grep -q -- '--secure-port'; then
    args+=(--secure-port 0)
  fi
  # shellcheck disable=SC2206
  args+=(${ADAPTER_ARGS:-})
  "$ADAPTER" "${args[@]}" >"$TMP/adapter.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/metrics" 30 || { cat "$TMP/adapter.log" >&2; return 1; }
  measure adapter "$pid" "http://127.0.0.1:$port/api/v1/write" "http://127.0.0.1:$port/metrics" \
    metrics_adapter_samples_accepted_total
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

run_prometheus() {
  local port
  port=$(free_port)
  printf 'global:\n  scrape_interval: 1m\n' >"$TMP/prometheus.yml"
  "$PROMETHEUS" --web.enable-remote-write-receiver --web.listen-address "127.0.0.1:$port" \
    --storage.tsdb.path "$TMP/tsdb" --config.file "$TMP/prometheus.yml" >"$TMP/prometheus.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/-/ready" 60 || { tail -20 "$TMP/prometheus.log" >&2; return 1; }
  measure prometheus "$pid" "http://127.0.0.1:$port/api/v1/write" "http://127.0.0.1:$port/metrics" \
    prometheus_tsdb_head_samples_appended_total
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

machine_line
echo "load: $conns connections x $series series x 1 sample, proto $proto, ${duration} s (warm-up ${warmup} s)"
[ "$only" = prometheus ] || run_adapter
[ "$only" = adapter ] || run_prometheus
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${RESULTS[@]}"
