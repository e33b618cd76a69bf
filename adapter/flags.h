#ifndef ADAPTER_FLAGS_H
#define ADAPTER_FLAGS_H

/*
 * flags: the command line and the configuration it produces.
 *
 * Flags take `--name=value` or `--name value`; booleans also take a bare
 * `--name`. The last occurrence of a flag wins. Every flag has a default
 * (shown by --help), which goes through the same parser as a value given on
 * the command line.
 *
 * Value syntax:
 *  - durations: Go style, a sequence of decimal numbers with units ns, us, ms,
 *    s, m, h ("90s", "1m30s", "1.5h", "0"); stored in milliseconds.
 *  - sizes: bytes, with the Kubernetes suffixes K, M, G, T (powers of 1000)
 *    or Ki, Mi, Gi, Ti (powers of 1024), optionally followed by "B"
 *    ("16Mi", "32MiB", "1G").
 *  - counts: plain non-negative integers; where the doc says so 0 means
 *    "unlimited".
 *
 * To add a flag: add a field to struct ma_config and a row to the table in
 * flags.c (name, type, field, default, one line of doc).
 *
 * Not thread-safe: parse once in main before starting threads; afterwards the
 * config is read-only.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

struct ma_config {
    /* Listeners. */
    char *listen_address;    /* plain HTTP listener: remote write, /metrics, health */
    char *ingest_token_file; /* bearer token for remote write on a non-loopback address ("" = none) */
    unsigned http_threads;   /* MHD pool threads per listener; 0 = number of CPUs */
    unsigned max_connections;
    uint64_t http_timeout_ms; /* idle connection timeout */

    /* Ingest caps. */
    uint64_t max_body_bytes;    /* compressed remote-write body */
    uint64_t max_decoded_bytes; /* snappy-decoded body */
    unsigned max_labels_per_series;
    unsigned max_label_name_length;
    unsigned max_label_value_length;
    uint64_t max_series_per_request; /* 0 = unlimited */
    uint64_t max_future_ms;
    char *drop_labels_raw; /* as given, comma-separated */
    char **drop_labels;    /* parsed, NULL-terminated */
    size_t ndrop_labels;

    /* Store. */
    uint64_t max_series;            /* 0 = unlimited */
    uint64_t max_series_per_metric; /* 0 = unlimited */
    uint64_t series_ttl_ms;
    uint64_t rate_window_ms; /* longest window the store keeps samples for */
    uint64_t reap_interval_ms;

    /* Serving. */
    char *config_path;     /* --config: prometheus-adapter rules file; "" = the defaults */
    char *resource_labels; /* --resource-labels: extra label=resource pairs for the defaults */

    /* HTTPS, authentication and authorization (the secure listener). */
    unsigned secure_port; /* 0 = no HTTPS listener */
    char *bind_address;
    char *tls_cert_file, *tls_private_key_file; /* "" = self-signed pair in cert_dir */
    char *cert_dir;
    uint64_t tls_reload_interval_ms;
    char *client_ca_file;
    char *requestheader_client_ca_file;
    char *requestheader_allowed_names;        /* comma-separated; "" = any CN */
    char *requestheader_username_headers;     /* comma-separated */
    char *requestheader_group_headers;        /* comma-separated */
    char *requestheader_extra_headers_prefix; /* comma-separated */
    int anonymous_auth;
    int authorization_always_allow;
    uint64_t authorization_cache_ttl_ms;
    char *kubeconfig; /* "" = in-cluster when available */
    uint64_t kube_api_timeout_ms;
    char *pod_labels_source; /* "auto", "series" or "kubernetes" */
    char *ingest_tls_cert_file, *ingest_tls_private_key_file, *ingest_client_ca_file;

    /* Process. */
    enum log_level log_level;

    /* Memory valve (valve.h) and the debug endpoint (debug.h). */
    char *memory_limit;         /* --memory-limit: "auto", "0" (off) or a size */
    char *memory_soft_fraction; /* --memory-soft-fraction: (0, 1] */
    int debug_endpoint;         /* --debug-endpoint: serve /debug/maps on the loopback listener */

    /* Graceful shutdown and warm restart (snapshot.h). */
    char *snapshot_file;          /* --snapshot-file: "" = no snapshot */
    uint64_t shutdown_timeout_ms; /* --shutdown-timeout: in-flight requests' grace on SIGTERM */
};

enum {
    FLAGS_OK = 0,      /* run */
    FLAGS_HELP = 1,    /* --help was given: print flags_usage() and exit 0 */
    FLAGS_VERSION = 2, /* --version was given: print flags_version() and exit 0 */
};

/*
 * flags_parse - fill @cfg from the defaults and then @argv.
 * @err, @errlen: on -EINVAL, a one-line message naming the flag.
 *
 * Returns FLAGS_OK, FLAGS_HELP, FLAGS_VERSION or -EINVAL (unknown flag,
 * missing or bad value, stray argument; the caller exits 2). @cfg is always
 * initialised and must be released with flags_free(), whatever the result.
 */
int flags_parse(struct ma_config *cfg, int argc, char **argv, char *err, size_t errlen);
void flags_free(struct ma_config *cfg);

/* Print every flag with its default and doc. */
void flags_usage(FILE *out, const char *prog);
/* Print "metrics-adapter <version>". */
void flags_version(FILE *out);

/* Value parsers, shared with tests and config-file code. Return 0 or -EINVAL. */
int flags_parse_duration_ms(const char *s, uint64_t *out);
int flags_parse_size(const char *s, uint64_t *out);
int flags_parse_uint(const char *s, uint64_t max, uint64_t *out);

#endif /* ADAPTER_FLAGS_H */
