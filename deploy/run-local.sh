#!/usr/bin/env bash
# A local demo that needs no cluster. It installs the Debian packages that are
# missing (tests/install-deps.sh), builds into build/, then starts on loopback:
#   - metrics-adapter (plain listener 127.0.0.1:$ADAPTER_PORT, which also serves
#     the metrics APIs unauthenticated because it is bound to loopback);
#   - prometheus-node-exporter on 127.0.0.1:$NODE_EXPORTER_PORT, a scrape target;
#   - Prometheus 2.42 on 127.0.0.1:$PROMETHEUS_PORT, scraping the node exporter
#     and the adapter's own /metrics every 5 s, adding `namespace` and `pod`
#     labels by relabelling (so each target looks like a pod), and remote-writing
#     everything into the adapter.
# Once the first samples have arrived it prints the kubectl and curl commands
# that read live values. Ctrl-C stops all three.
#
# Ports can be changed with the environment variables above (defaults 8080,
# 9100, 9090). Extra arguments are passed to the adapter, for example:
#   deploy/run-local.sh --log-level=debug
set -euo pipefail
cd "$(dirname "$0")/.."

ADAPTER_PORT=${ADAPTER_PORT:-8080}
NODE_EXPORTER_PORT=${NODE_EXPORTER_PORT:-9100}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}

bash tests/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target metrics-adapter

work=$(mktemp -d /tmp/metrics-adapter-demo.XXXXXX)
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap stop INT TERM EXIT

# Each child runs in its own session, so that Ctrl-C reaches only this script,
# whose trap stops them in order (background jobs of a script ignore SIGINT).
setsid build/bin/metrics-adapter \
  --listen-address="127.0.0.1:$ADAPTER_PORT" \
  --secure-port=0 \
  --series-ttl=2m \
  "$@" 2>"$work/adapter.log" &
pids+=($!)

setsid prometheus-node-exporter \
  --web.listen-address="127.0.0.1:$NODE_EXPORTER_PORT" \
  --collector.disable-defaults --collector.cpu --collector.meminfo --collector.loadavg \
  >"$work/node-exporter.log" 2>&1 &
pids+=($!)

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:$NODE_EXPORTER_PORT']
        labels: {namespace: demo, pod: node-exporter-0}
  - job_name: metrics-adapter
    static_configs:
      - targets: ['127.0.0.1:$ADAPTER_PORT']
        labels: {namespace: demo, pod: metrics-adapter-0}
remote_write:
  - url: http://127.0.0.1:$ADAPTER_PORT/api/v1/write
    queue_config: {batch_send_deadline: 1s, max_samples_per_send: 2000}
    metadata_config: {send_interval: 5s}
EOF
setsid prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$work/prometheus.log" 2>&1 &
pids+=($!)

base="http://127.0.0.1:$ADAPTER_PORT"
echo "waiting for the first remote-write samples (Prometheus sends them ~10 s after start)..."
for _ in $(seq 120); do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a process exited early; logs in $work:"; tail -n 20 "$work"/*.log; exit 1; }
  done
  if curl -fs "$base/metrics" | grep -qE '^metrics_adapter_series_live [1-9]'; then break; fi
  sleep 0.5
done

cat <<EOF

metrics-adapter is live on $base (Prometheus on 127.0.0.1:$PROMETHEUS_PORT). Try:

  # discovery: every metric the default rules can serve
  kubectl --server=$base get --raw /apis/custom.metrics.k8s.io/v1beta2 | head -c 600; echo
  # rate of node CPU seconds per pod (counter node_cpu_seconds_total, served as node_cpu_seconds)
  kubectl --server=$base get --raw "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/node_cpu_seconds"
  # a gauge, for one object
  kubectl --server=$base get --raw /apis/custom.metrics.k8s.io/v1beta1/namespaces/demo/pods/node-exporter-0/node_load1
  # the same as an external metric
  kubectl --server=$base get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/demo/node_load1
  # the adapter's own numbers
  curl -s $base/metrics | grep -E '^metrics_adapter_(series_live|samples_accepted_total|map_pending_entries)'

Rates need two samples inside the 2 m window: they appear ~10 s after the first data.
Logs: $work/*.log. Ctrl-C stops everything.
EOF
wait "${pids[0]}"
