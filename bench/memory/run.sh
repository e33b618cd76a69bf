#!/usr/bin/env bash
# Memory per live series: RSS growth of metrics-adapter and of Prometheus 2.42
# (--web.enable-remote-write-receiver), one after the other in one run, fed
# the same series by remote write (memload: six Kubernetes-like labels, 9
# samples 15 s apart ending now, i.e. a 2 m window at a 15 s interval).
# For each server: RSS of the started, empty process; then 100,000 series
# written, RSS; then 900,000 more, RSS at 1,000,000. Bytes per series =
# (RSS - empty RSS) / series. RSS is VmRSS from /proc/PID/status, read once
# the server counts every series (metrics_adapter_series_live,
# prometheus_tsdb_head_series) and RSS has settled (< 1 % change over 3 s,
# at most 30 s). Writes OUT/memory.csv and prints a summary.
# Requests carry 222 series (1,998 samples), the size of a Prometheus remote
# write at max_samples_per_send 2000 (deploy/run-local.sh; deploy/prometheus
# sends 500): what a server holds while decoding a request is part of its
# cost, and a batch far larger than Prometheus sends would inflate it.
#
# usage: bench/memory/run.sh [--out DIR] [--sizes "100000 1000000"] [--only adapter|prometheus]
#                            [--batch SERIES_PER_REQUEST]
# env:   ADAPTER (default build-b/bin/metrics-adapter, else build/bin/...),
#        MEMLOAD (default next to ADAPTER), PROMETHEUS (default prometheus).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/common/lib.sh"
MEMLOAD=${MEMLOAD:-$(dirname "$ADAPTER")/memload}
PROMETHEUS=${PROMETHEUS:-prometheus}
out=$ROOT/bench/memory/results sizes="100000 1000000" only="" batch=222
while [ $# -gt 0 ]; do
  case "$1" in
  --out) out=$2; shift ;;
  --sizes) sizes=$2; shift ;;
  --only) only=$2; shift ;;
  --batch) batch=$2; shift ;;
  *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
bench_init memory
gauge() {
  curl -sf "$1" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}
rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
# settled_rss PID: RSS once it changed by < 1 % over 3 s (at most 30 s).
settled_rss() {
  local a b deadline=$((SECONDS + 30))
  a=$(rss "$1")
  while :; do
    sleep 3
    b=$(rss "$1")
    if awk -v a="$a" -v b="$b" 'BEGIN { d = b - a; if (d < 0) d = -d; exit !(d < 0.01 * a) }' ||
      [ $SECONDS -ge $deadline ]; then
      echo "$b"
      return
    fi
    a=$b
  done
}
# wait_count URL METRIC N SECONDS
wait_count() {
  local deadline=$((SECONDS + $4)) v
  while :; do
    v=$(gauge "$1" "$2")
    [ "$v" -ge "$3" ] && return 0
    [ $SECONDS -lt $deadline ] || { echo "timed out: $2 = $v, want $3" >&2; return 1; }
    sleep 0.5
  done
}

echo "batch: $batch series per request"
machine_line
echo "server,series,rss_bytes,bytes_per_series" >"$out/memory.csv"

# measure NAME PID WRITE_URL METRICS_URL COUNT_METRIC
measure() {
  local name=$1 pid=$2 url=$3 murl=$4 cm=$5 r0 r prev=0 n
  r0=$(settled_rss "$pid")
  echo "$name,0,$r0," >>"$out/memory.csv"
  echo "$name: empty RSS $((r0 / 1048576)) MiB"
  for n in $sizes; do
    "$MEMLOAD" --url "$url" --from "$prev" --to "$n" --batch "$batch" >"$TMP/memload.out"
    wait_count "$murl" "$cm" "$n" 300
    r=$(settled_rss "$pid")
    awk -v s="$name" -v n="$n" -v r="$r" -v r0="$r0" -v l="$(cat "$TMP/memload.out")" 'BEGIN {
      printf "%s,%d,%.0f,%.0f\n", s, n, r, (r - r0) / n >> "'"$out/memory.csv"'"
      printf "%s: %d series: RSS %.1f MiB, %.0f bytes/series (%s)\n", s, n, r / 1048576, (r - r0) / n, l }'
    prev=$n
  done
}

if [ "$only" != prometheus ]; then
  port=$(free_port)
  args=(--listen-address "127.0.0.1:$port" --max-series 0)
  "$ADAPTER" --help 2>&1 | grep -q -- '--secure-port' && args+=(--secure-port 0)
  "$ADAPTER" "${args[@]}" >"$TMP/adapter.log" 2>&1 &
  apid=$!
  PIDS+=("$apid")
  wait_http "http://127.0.0.1:$port/metrics" 30 || { cat "$TMP/adapter.log" >&2; exit 1; }
  measure adapter "$apid" "http://127.0.0.1:$port/api/v1/write" "http://127.0.0.1:$port/metrics" \
    metrics_adapter_series_live
  kill "$apid"
  wait "$apid" 2>/dev/null || true
fi
if [ "$only" != adapter ]; then
  port=$(free_port)
  printf 'global:\n  scrape_interval: 1m\n' >"$TMP/prometheus.yml"
  "$PROMETHEUS" --web.enable-remote-write-receiver --web.listen-address "127.0.0.1:$port" \
    --storage.tsdb.path "$TMP/tsdb" --config.file "$TMP/prometheus.yml" >"$TMP/prometheus.log" 2>&1 &
  ppid_=$!
  PIDS+=("$ppid_")
  wait_http "http://127.0.0.1:$port/-/ready" 60 || { tail -20 "$TMP/prometheus.log" >&2; exit 1; }
  measure prometheus "$ppid_" "http://127.0.0.1:$port/api/v1/write" "http://127.0.0.1:$port/metrics" \
    prometheus_tsdb_head_series
  kill "$ppid_"
  wait "$ppid_" 2>/dev/null || true
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
# ratios
awk -F, 'NR > 1 && $2 > 0 { b[$1 "," $2] = $4; n[$2] = 1 }
  END { for (s in n) if (b["adapter," s] && b["prometheus," s])
          printf "%d series: adapter %.0f B/series, Prometheus %.0f B/series, ratio %.1fx\n", s, b["adapter," s], b["prometheus," s], b["prometheus," s] / b["adapter," s] }' \
  "$out/memory.csv" | sort -n | tee "$out/summary.txt"
