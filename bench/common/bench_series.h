#ifndef BENCH_SERIES_H
#define BENCH_SERIES_H

/*
 * The metric names the load generators (bench/ingest, bench/churn,
 * bench/memory) give their Kubernetes-like series, so that every benchmark
 * writes the same shape of data.
 */

static const char *const bench_metric_names[] = {
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total",
    "http_requests_total",
    "http_request_duration_seconds_sum",
    "http_request_duration_seconds_count",
    "process_resident_memory_bytes",
    "queue_messages_ready",
    "grpc_server_handled_total",
};
#define BENCH_N_METRICS (sizeof bench_metric_names / sizeof bench_metric_names[0])

#endif /* BENCH_SERIES_H */
