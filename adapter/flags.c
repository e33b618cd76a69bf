/*
 * flags: a table-driven command-line parser.
 *
 * DESIGN: each flag is one row (name, type, offset of its field in struct
 * ma_config, default as text, doc). flags_parse() first applies every default
 * through the same value parser as the command line, so a default can never
 * disagree with what --help prints, then walks argv. A bad value names the
 * flag and the reason; main turns that into exit status 2.
 */
#include "flags.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#ifndef MA_VERSION
#define MA_VERSION "0.0.0-dev"
#endif

enum flag_type {
    F_STRING,
    F_UINT,     /* unsigned, fits in 32 bits */
    F_UINT64,   /* count, 64 bits */
    F_SIZE,     /* bytes with K/M/G/Ki/Mi/Gi */
    F_DURATION, /* milliseconds */
    F_LIST,     /* comma-separated strings: the raw text field, parsed later */
    F_LEVEL,    /* log level */
    F_BOOL,
};

struct flag {
    const char *name;
    enum flag_type type;
    size_t off;
    const char *def;
    const char *doc;
};

#define OFF(field) offsetof(struct ma_config, field)

static const struct flag flag_table[] = {
    {"listen-address", F_STRING, OFF(listen_address), "127.0.0.1:8080",
     "plain HTTP listener (host:port or [v6]:port; port 0 picks a free one): remote write, /metrics, health"},
    {"ingest-token-file", F_STRING, OFF(ingest_token_file), "",
     "file holding the bearer token remote write must present on a non-loopback listen address"},
    {"http-threads", F_UINT, OFF(http_threads), "0", "worker threads per listener (0 = number of CPUs)"},
    {"max-connections", F_UINT, OFF(max_connections), "1024", "open connections per listener"},
    {"http-timeout", F_DURATION, OFF(http_timeout_ms), "30s", "idle HTTP connection timeout (whole seconds)"},
    {"max-body-bytes", F_SIZE, OFF(max_body_bytes), "16Mi",
     "largest compressed remote-write body (413 beyond)"},
    {"max-decoded-bytes", F_SIZE, OFF(max_decoded_bytes), "32Mi",
     "largest snappy-decoded remote-write body (400 beyond, checked before decoding)"},
    {"max-labels-per-series", F_UINT, OFF(max_labels_per_series), "64",
     "labels per series, __name__ included (more: the series is invalid)"},
    {"max-label-name-length", F_UINT, OFF(max_label_name_length), "1024", "bytes in a label name"},
    {"max-label-value-length", F_UINT, OFF(max_label_value_length), "4096", "bytes in a label value"},
    {"max-series-per-request", F_UINT64, OFF(max_series_per_request), "100000",
     "series in one remote-write request (0 = unlimited)"},
    {"max-future", F_DURATION, OFF(max_future_ms), "5m",
     "samples further ahead of the adapter's clock are invalid"},
    {"drop-labels", F_LIST, OFF(drop_labels_raw), "prometheus_replica,__replica__",
     "labels removed at ingest so that HA Prometheus pairs collapse to one series (comma-separated)"},
    {"max-series", F_UINT64, OFF(max_series), "1000000", "series held in memory (0 = unlimited)"},
    {"max-series-per-metric", F_UINT64, OFF(max_series_per_metric), "0",
     "series held per metric name (0 = unlimited)"},
    {"series-ttl", F_DURATION, OFF(series_ttl_ms), "5m",
     "a series with no sample for this long is deleted, and not served"},
    {"rate-window", F_DURATION, OFF(rate_window_ms), "2m",
     "longest rate() window: how long samples are kept"},
    {"reap-interval", F_DURATION, OFF(reap_interval_ms), "15s", "how often expired series are deleted"},
    {"config", F_STRING, OFF(config_path), "",
     "prometheus-adapter rules file (rules:, externalRules:); empty = built-in defaults; with a file, "
     "series no rule can use are dropped at ingest"},
    {"resource-labels", F_STRING, OFF(resource_labels), "",
     "default rules only: more object labels than namespace and pod, as label=resource[.group] pairs "
     "(node=nodes,deployment=deployments.apps)"},
    {"secure-port", F_UINT, OFF(secure_port), "6443",
     "HTTPS port of the Kubernetes API surface (metrics APIs, discovery, /metrics, health); 0 disables it"},
    {"bind-address", F_STRING, OFF(bind_address), "0.0.0.0", "address the HTTPS listener binds"},
    {"tls-cert-file", F_STRING, OFF(tls_cert_file), "",
     "serving certificate (PEM, chain allowed); empty = a self-signed pair in --cert-dir; reloaded on "
     "change"},
    {"tls-private-key-file", F_STRING, OFF(tls_private_key_file), "", "private key of --tls-cert-file"},
    {"cert-dir", F_STRING, OFF(cert_dir), "apiserver.local.config/certificates",
     "where the self-signed apiserver.crt/apiserver.key are written when no --tls-cert-file is given"},
    {"tls-reload-interval", F_DURATION, OFF(tls_reload_interval_ms), "2s",
     "how often certificate and CA files are checked for changes"},
    {"client-ca-file", F_STRING, OFF(client_ca_file), "",
     "CA bundle for client certificates (user = CN, groups = O); empty = read from the "
     "extension-apiserver-authentication ConfigMap when a Kubernetes API is configured"},
    {"requestheader-client-ca-file", F_STRING, OFF(requestheader_client_ca_file), "",
     "CA bundle of the front proxy (the aggregator) whose identity headers are trusted; empty = from the "
     "ConfigMap"},
    {"requestheader-allowed-names", F_STRING, OFF(requestheader_allowed_names), "",
     "front-proxy certificate CNs allowed (comma-separated; empty = any)"},
    {"requestheader-username-headers", F_STRING, OFF(requestheader_username_headers), "X-Remote-User",
     "headers naming the user (comma-separated, first non-empty wins)"},
    {"requestheader-group-headers", F_STRING, OFF(requestheader_group_headers), "X-Remote-Group",
     "headers naming groups (comma-separated; each may repeat)"},
    {"requestheader-extra-headers-prefix", F_STRING, OFF(requestheader_extra_headers_prefix),
     "X-Remote-Extra-", "prefixes of headers carrying user extras (comma-separated)"},
    {"anonymous-auth", F_BOOL, OFF(anonymous_auth), "true",
     "requests without credentials are system:anonymous (false: 401)"},
    {"authorization-always-allow", F_BOOL, OFF(authorization_always_allow), "false",
     "allow every authenticated or anonymous request without a SubjectAccessReview (local use only)"},
    {"authorization-cache-ttl", F_DURATION, OFF(authorization_cache_ttl_ms), "10s",
     "how long SubjectAccessReview and TokenReview answers are cached (allow and deny)"},
    {"kubeconfig", F_STRING, OFF(kubeconfig), "",
     "kubeconfig for the Kubernetes API (reviews, ConfigMap); empty = in-cluster service account if any"},
    {"pod-labels-source", F_STRING, OFF(pod_labels_source), "auto",
     "where pods reads match labelSelector: kubernetes (a pod metadata cache: LIST+WATCH; pods/* then "
     "serves only pods the API has), series (the series' own labels), auto (kubernetes when an API is "
     "configured, else series)"},
    {"kube-api-timeout", F_DURATION, OFF(kube_api_timeout_ms), "5s", "timeout of one Kubernetes API call"},
    {"ingest-tls-cert-file", F_STRING, OFF(ingest_tls_cert_file), "",
     "serve --listen-address over TLS with this certificate (PEM); reloaded on change"},
    {"ingest-tls-private-key-file", F_STRING, OFF(ingest_tls_private_key_file), "",
     "private key of --ingest-tls-cert-file"},
    {"ingest-client-ca-file", F_STRING, OFF(ingest_client_ca_file), "",
     "CA bundle: remote write with a client certificate it verifies needs no bearer token"},
    {"log-level", F_LEVEL, OFF(log_level), "info", "debug, info, warn or error"},
    {"memory-limit", F_STRING, OFF(memory_limit), "auto",
     "memory valve: resident memory at which remote write gets 503 (auto = 80 % of the cgroup's memory "
     "limit, off without one; 0 = off; or a size such as 800Mi)"},
    {"memory-soft-fraction", F_STRING, OFF(memory_soft_fraction), "0.9",
     "memory valve: fraction of --memory-limit from which new series are refused (400)"},
    {"debug-endpoint", F_BOOL, OFF(debug_endpoint), "false",
     "serve GET /debug/maps (maplib table statistics, JSON) on a loopback --listen-address"},
    {"snapshot-file", F_STRING, OFF(snapshot_file), "",
     "store snapshot written on SIGTERM and loaded at start when younger than --series-ttl (\"\" = none)"},
    {"shutdown-timeout", F_DURATION, OFF(shutdown_timeout_ms), "10s",
     "on SIGTERM, how long in-flight requests may take before the listeners are closed"},
};

#define NFLAGS (sizeof(flag_table) / sizeof(flag_table[0]))

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

int flags_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* A decimal number "12", "1.5", ".5": integer and fraction parts. */
static const char *parse_decimal(const char *p, uint64_t *ip, double *frac, int *ok)
{
    uint64_t i = 0;
    double f = 0, scale = 0.1;
    int digits = 0;
    while (isdigit((unsigned char)*p)) {
        if (i > (UINT64_MAX - 9) / 10) {
            *ok = 0;
            return p;
        }
        i = i * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            f += (*p - '0') * scale;
            scale /= 10;
            p++;
            digits++;
        }
    }
    *ok = digits > 0;
    *ip = i;
    *frac = f;
    return p;
}

/* Multiply-add with overflow check: *acc += i * unit + frac * unit. */
static int add_scaled(uint64_t *acc, uint64_t i, double frac, uint64_t unit)
{
    if (unit && i > UINT64_MAX / unit)
        return -EINVAL;
    uint64_t v = i * unit;
    uint64_t f = (uint64_t)(frac * (double)unit);
    if (v > UINT64_MAX - f || *acc > UINT64_MAX - v - f)
        return -EINVAL;
    *acc += v + f;
    return 0;
}

int flags_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t ns;
    } units[] = {
        {"ns", 1},       {"us", 1000},         {"\xc2\xb5s", 1000}, /* µs */
        {"ms", 1000000}, {"s", 1000000000ull}, {"m", 60ull * 1000000000ull}, {"h", 3600ull * 1000000000ull},
    };
    if (!s || !*s)
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    uint64_t ns = 0;
    const char *p = s;
    while (*p) {
        uint64_t ip;
        double frac;
        int ok;
        p = parse_decimal(p, &ip, &frac, &ok);
        if (!ok)
            return -EINVAL;
        /* The longest unit that matches: "ms" before "m". */
        size_t best = 0, bestlen = 0;
        for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
            size_t ul = strlen(units[u].unit);
            if (ul > bestlen && strncmp(p, units[u].unit, ul) == 0) {
                best = u;
                bestlen = ul;
            }
        }
        if (!bestlen)
            return -EINVAL;
        if (add_scaled(&ns, ip, frac, units[best].ns))
            return -EINVAL;
        p += bestlen;
    }
    *out = ns / 1000000u;
    return 0;
}

int flags_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } sfx[] = {
        {"", 1},
        {"K", 1000ull},
        {"M", 1000ull * 1000},
        {"G", 1000ull * 1000 * 1000},
        {"T", 1000ull * 1000 * 1000 * 1000},
        {"Ki", 1ull << 10},
        {"Mi", 1ull << 20},
        {"Gi", 1ull << 30},
        {"Ti", 1ull << 40},
    };
    if (!s || !*s)
        return -EINVAL;
    uint64_t ip;
    double frac;
    int ok;
    const char *p = parse_decimal(s, &ip, &frac, &ok);
    if (!ok)
        return -EINVAL;
    size_t len = strlen(p);
    /* An optional trailing "B" after a suffix (or alone): "16MiB", "100B". */
    if (len > 0 && p[len - 1] == 'B')
        len--;
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        if (strlen(sfx[i].suffix) == len && strncmp(p, sfx[i].suffix, len) == 0) {
            uint64_t v = 0;
            if (add_scaled(&v, ip, frac, sfx[i].mult))
                return -EINVAL;
            *out = v;
            return 0;
        }
    }
    return -EINVAL;
}

static void free_drop_labels(struct ma_config *cfg)
{
    if (cfg->drop_labels) {
        for (size_t i = 0; i < cfg->ndrop_labels; i++)
            free(cfg->drop_labels[i]);
        free(cfg->drop_labels);
    }
    cfg->drop_labels = NULL;
    cfg->ndrop_labels = 0;
}

/* Split the comma-separated list, dropping empty items and surrounding blanks. */
static int split_list(struct ma_config *cfg, const char *name, char *err, size_t errlen)
{
    free_drop_labels(cfg);
    const char *s = cfg->drop_labels_raw;
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    cfg->drop_labels = calloc(n + 1, sizeof(char *));
    if (!cfg->drop_labels) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        const char *a = p, *b = e;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            for (const char *c = a; c < b; c++) {
                if (!(isalnum((unsigned char)*c) || *c == '_') || (c == a && isdigit((unsigned char)*c)))
                    return fail(err, errlen,
                                "invalid value \"%s\" for flag --%s: \"%.*s\" is not a label name", s, name,
                                (int)(b - a), a);
            }
            char *item = malloc((size_t)(b - a) + 1);
            if (!item) {
                fprintf(stderr, "fatal: out of memory\n");
                abort();
            }
            memcpy(item, a, (size_t)(b - a));
            item[b - a] = '\0';
            cfg->drop_labels[cfg->ndrop_labels++] = item;
        }
        p = *e ? e + 1 : e;
    }
    return 0;
}

static int set_value(struct ma_config *cfg, const struct flag *f, const char *val, char *err, size_t errlen)
{
    void *field = (char *)cfg + f->off;
    uint64_t v;
    enum log_level lvl;
    const char *why = NULL;

    switch (f->type) {
    case F_STRING:
    case F_LIST:
        free(*(char **)field);
        *(char **)field = xstrdup(val);
        if (f->type == F_LIST)
            return split_list(cfg, f->name, err, errlen);
        return 0;
    case F_UINT:
        if (flags_parse_uint(val, UINT_MAX, &v) == 0) {
            *(unsigned *)field = (unsigned)v;
            return 0;
        }
        why = "expected a non-negative integer below 2^32";
        break;
    case F_UINT64:
        if (flags_parse_uint(val, UINT64_MAX, &v) == 0) {
            *(uint64_t *)field = v;
            return 0;
        }
        why = "expected a non-negative integer";
        break;
    case F_SIZE:
        if (flags_parse_size(val, &v) == 0) {
            *(uint64_t *)field = v;
            return 0;
        }
        why = "expected a size such as 1048576, 512Ki, 16Mi or 1G";
        break;
    case F_DURATION:
        if (flags_parse_duration_ms(val, &v) == 0) {
            *(uint64_t *)field = v;
            return 0;
        }
        why = "expected a duration such as 500ms, 30s, 5m or 1h30m";
        break;
    case F_LEVEL:
        if (log_parse_level(val, &lvl) == 0) {
            *(enum log_level *)field = lvl;
            return 0;
        }
        why = "expected debug, info, warn or error";
        break;
    case F_BOOL:
        if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0) {
            *(int *)field = 1;
            return 0;
        }
        if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0) {
            *(int *)field = 0;
            return 0;
        }
        why = "expected true or false";
        break;
    }
    return fail(err, errlen, "invalid value \"%s\" for flag --%s: %s", val, f->name, why);
}

static const struct flag *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        if (strlen(flag_table[i].name) == len && strncmp(flag_table[i].name, name, len) == 0)
            return &flag_table[i];
    }
    return NULL;
}

/* "host:port", "[v6]:port" or ":port" with a decimal port below 65536. The
 * host is resolved later, by the listener; this only catches typos early. */
static int check_hostport(const char *s)
{
    const char *port;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -EINVAL;
        port = rb + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -EINVAL;
        port = colon + 1;
    }
    uint64_t v;
    if (strlen(port) > 5 || flags_parse_uint(port, 65535, &v))
        return -EINVAL;
    return 0;
}

/* Checks that involve more than one flag, or that a parser cannot express. */
static int validate(const struct ma_config *cfg, char *err, size_t errlen)
{
    if (check_hostport(cfg->listen_address))
        return fail(err, errlen,
                    "invalid value \"%s\" for flag --listen-address: expected host:port or [v6]:port",
                    cfg->listen_address);
    if (cfg->secure_port > 65535)
        return fail(err, errlen, "invalid value \"%u\" for flag --secure-port: must be below 65536",
                    cfg->secure_port);
    if (!cfg->tls_cert_file[0] != !cfg->tls_private_key_file[0])
        return fail(err, errlen, "flags --tls-cert-file and --tls-private-key-file go together");
    if (!cfg->ingest_tls_cert_file[0] != !cfg->ingest_tls_private_key_file[0])
        return fail(err, errlen,
                    "flags --ingest-tls-cert-file and --ingest-tls-private-key-file go together");
    if (cfg->ingest_client_ca_file[0] && !cfg->ingest_tls_cert_file[0])
        return fail(err, errlen, "flag --ingest-client-ca-file needs --ingest-tls-cert-file");
    if (cfg->tls_reload_interval_ms == 0)
        return fail(err, errlen, "invalid value \"0\" for flag --tls-reload-interval: must be positive");
    if (cfg->max_body_bytes == 0)
        return fail(err, errlen, "invalid value \"0\" for flag --max-body-bytes: must be positive");
    if (cfg->max_decoded_bytes == 0)
        return fail(err, errlen, "invalid value \"0\" for flag --max-decoded-bytes: must be positive");
    if (cfg->max_connections == 0)
        return fail(err, errlen, "invalid value \"0\" for flag --max-connections: must be positive");
    if (cfg->rate_window_ms == 0)
        return fail(err, errlen, "invalid value \"0\" for flag --rate-window: must be positive");
    if (cfg->reap_interval_ms == 0)
        return fail(err, errlen, "invalid value \"0\" for flag --reap-interval: must be positive");
    /* MHD counts whole seconds and reads 0 as "never": a sub-second value
     * would silently switch the timeout off. */
    if (cfg->http_timeout_ms < 1000 || cfg->http_timeout_ms / 1000 > UINT_MAX)
        return fail(err, errlen, "invalid value for flag --http-timeout: must be between 1s and 136y");
    return 0;
}

int flags_parse(struct ma_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    if (err && errlen)
        err[0] = '\0';
    for (size_t i = 0; i < NFLAGS; i++) {
        int rc = set_value(cfg, &flag_table[i], flag_table[i].def, err, errlen);
        if (rc)
            return rc; /* a bad default is a bug; tests catch it */
    }

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return FLAGS_HELP;
        if (strcmp(arg, "--version") == 0)
            return FLAGS_VERSION;
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            return fail(err, errlen, "unexpected argument \"%s\" (flags start with --; see --help)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct flag *f = find_flag(name, nlen);
        if (!f)
            return fail(err, errlen, "unknown flag --%.*s (see --help)", (int)nlen, name);
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (f->type == F_BOOL) {
            val = "true";
        } else {
            if (i + 1 >= argc)
                return fail(err, errlen, "flag --%s needs a value", f->name);
            val = argv[++i];
        }
        int rc = set_value(cfg, f, val, err, errlen);
        if (rc)
            return rc;
    }
    return validate(cfg, err, errlen);
}

void flags_free(struct ma_config *cfg)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        if (flag_table[i].type == F_STRING || flag_table[i].type == F_LIST) {
            char **p = (char **)((char *)cfg + flag_table[i].off);
            free(*p);
            *p = NULL;
        }
    }
    free_drop_labels(cfg);
}

void flags_usage(FILE *out, const char *prog)
{
    static const char *type_names[] = {
        [F_STRING] = "string",     [F_UINT] = "int",  [F_UINT64] = "int",  [F_SIZE] = "size",
        [F_DURATION] = "duration", [F_LIST] = "list", [F_LEVEL] = "level", [F_BOOL] = "bool",
    };
    fprintf(out,
            "Usage: %s [flags]\n\n"
            "A Kubernetes custom-metrics API server fed by Prometheus remote write.\n\n"
            "Flags (--name=value or --name value):\n",
            prog ? prog : "metrics-adapter");
    for (size_t i = 0; i < NFLAGS; i++) {
        const struct flag *f = &flag_table[i];
        fprintf(out, "  --%s %s\n        %s (default \"%s\")\n", f->name, type_names[f->type], f->doc,
                f->def);
    }
    fprintf(out, "  --help\n        print this help and exit\n"
                 "  --version\n        print the version and exit\n\n"
                 "Durations: 500ms, 30s, 5m, 1h30m. Sizes: bytes, or K M G (x1000) and Ki Mi Gi (x1024).\n");
}

void flags_version(FILE *out)
{
    fprintf(out, "metrics-adapter %s\n", MA_VERSION);
}
