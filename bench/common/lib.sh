# Shared by the shell benchmarks (bench/*/run.sh): source it after setting ROOT.
#   bench_init NAME   a scratch directory $TMP, and $PIDS, killed and waited for on exit
#   free_port         a free TCP port on 127.0.0.1
#   wait_http URL S   until URL answers 200 within S seconds, or fail
#   machine_line      one line: CPUs, model, memory, load average now
# It also sets ADAPTER (unless set: build-b's binary, else build's) and PY.

PY=/usr/bin/python3
if [ -z "${ADAPTER:-}" ]; then
  ADAPTER=$ROOT/build-b/bin/metrics-adapter
  [ -x "$ADAPTER" ] || ADAPTER=$ROOT/build/bin/metrics-adapter
fi

bench_init() {
  TMP=$(mktemp -d "/tmp/ma-bench-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$TMP"
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() {
  local deadline=$((SECONDS + $2))
  until curl -sf -o /dev/null "$1"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "timed out waiting for $1" >&2
      return 1
    fi
    sleep 0.1
  done
}

machine_line() {
  echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
    "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}
