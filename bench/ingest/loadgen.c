/*
 * loadgen: a remote-write load generator for the ingest benchmark.
 *
 * Each connection (one thread, one libcurl easy handle kept alive) owns its
 * own set of series (2,000 by default, six Kubernetes-like labels:
 * __name__, container, instance, job, namespace, pod) and POSTs them all in
 * every request, one sample per series, every request with a new timestamp
 * (like one scrape) and new values, so a receiver never sees a duplicate.
 *
 * Encoding every request from scratch (protobuf pack + snappy) costs about
 * as much CPU as decoding it, which on a small machine would measure the
 * generator rather than the server. So the body is built once with the
 * project's encoder (api_rw_encode), and compressed once by a small snappy
 * block writer here that never lets a match cover a sample's value and
 * timestamp bytes: those stay literal bytes at known offsets of the
 * compressed body and are patched in place before each request. The label
 * bytes around them are compressed with back-references as libsnappy would
 * (matches reach across series), the result is checked once against
 * libsnappy's decompressor, and what the server decodes is byte for byte
 * the protobuf a sender would produce.
 *
 * usage: loadgen --url URL [--connections N] [--duration S] [--series N]
 *                [--proto v1|v2] [--max-requests N]
 * Prints one key=value line: requests, ok, errors, samples_sent, elapsed_s,
 * samples_per_s, body_bytes, raw_bytes, last_status, loadgen_cpu_s.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>
#include <snappy-c.h>

#include "buf.h"
#include "remote_write.h"
#include "bench_series.h"

struct opts {
    const char *url;
    unsigned connections;
    double duration;
    unsigned series;
    int version;
    unsigned long max_requests; /* per connection, 0 = no limit */
};

/* ---- template ---------------------------------------------------------- */

/* A 6-byte varint timestamp placeholder; real timestamps (2^35..2^42 ms) also take 6 bytes. */
#define TS_PLACEHOLDER ((int64_t)1 << 41)
#define TS_MIN         ((int64_t)1 << 35)
#define TS_MAX         (((int64_t)1 << 42) - 1)

struct body {
    char *comp; /* compressed body, patched in place */
    size_t comp_len;
    size_t raw_len;
    size_t *sample_off; /* per series: offset of the 8 value bytes in comp; ts varint at +9 */
    size_t n;
};

static void die(const char *msg)
{
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(1);
}

static double placeholder_value(size_t i)
{
    return 1000.25 + (double)i; /* never 0: proto3 would omit the field */
}

static void put_varint6(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 5; i++) {
        p[i] = (unsigned char)((u & 0x7f) | 0x80);
        u >>= 7;
    }
    p[5] = (unsigned char)u;
}

/* Build the raw protobuf of one connection's series with the project's encoder. */
static void build_raw(unsigned conn, const struct opts *o, struct buf *raw)
{
    size_t n = o->series;
    struct api_rw_series *ser = calloc(n, sizeof *ser);
    struct api_rw_label *lab = calloc(n * 6, sizeof *lab);
    struct api_rw_sample *smp = calloc(n, sizeof *smp);
    char *strs = calloc(n, 256);
    if (!ser || !lab || !smp || !strs)
        die("out of memory");
    for (size_t i = 0; i < n; i++) {
        char *s = strs + i * 256;
        size_t pod = i / BENCH_N_METRICS;
        int c = snprintf(s, 64, "app-%zu", pod % 3);
        char *container = s;
        char *instance = s + c + 1;
        c += 1 + snprintf(instance, 64, "10.%u.%zu.%zu:8080", conn % 250, (pod / 250) % 250, pod % 250);
        char *ns = s + c + 1;
        c += 1 + snprintf(ns, 32, "team-%zu", pod % 16);
        char *podname = s + c + 1;
        snprintf(podname, 64, "web-%zu-7c9f8d6b5-c%u%05zx", pod % 16, conn, pod);
        struct api_rw_label *l = &lab[i * 6];
        const char *vals[6] = {
            bench_metric_names[i % BENCH_N_METRICS], container, instance, "kubernetes-pods", ns, podname};
        const char *names[6] = {"__name__", "container", "instance", "job", "namespace", "pod"};
        for (int j = 0; j < 6; j++) {
            l[j].name = names[j];
            l[j].name_len = (uint32_t)strlen(names[j]);
            l[j].value = vals[j];
            l[j].value_len = (uint32_t)strlen(vals[j]);
        }
        smp[i].value = placeholder_value(i);
        smp[i].timestamp_ms = TS_PLACEHOLDER;
        ser[i].labels = l;
        ser[i].n_labels = 6;
        ser[i].samples = &smp[i];
        ser[i].n_samples = 1;
    }
    struct api_rw_request req = {.series = ser, .n_series = n};
    if (api_rw_encode(&req, o->version, API_RW_ENC_RAW, raw) != 0)
        die("encode failed");
    free(ser);
    free(lab);
    free(smp);
    free(strs);
}

/* Offsets of each sample's value bytes in the raw message: 0x09 <8> 0x10 <6-byte varint>. */
static size_t *find_samples(const struct buf *raw, size_t n)
{
    unsigned char pat[16];
    put_varint6(pat, TS_PLACEHOLDER);
    size_t *off = calloc(n, sizeof *off);
    size_t found = 0;
    const unsigned char *r = (const unsigned char *)raw->data;
    for (size_t p = 9; p + 7 <= raw->len && found <= n; p++) {
        if (r[p] != 0x10 || memcmp(r + p + 1, pat, 6) != 0 || r[p - 9] != 0x09)
            continue;
        double v;
        memcpy(&v, r + p - 8, 8);
        if (found < n && v == placeholder_value(found))
            off[found] = p - 8;
        found++;
    }
    if (found != n)
        die("sample layout not found in the encoded template");
    return off;
}

/* ---- a snappy block writer that keeps the sample bytes literal -------------- */

static void put_uvarint(struct buf *b, uint64_t v)
{
    while (v >= 0x80) {
        buf_putc(b, (char)((v & 0x7f) | 0x80));
        v >>= 7;
    }
    buf_putc(b, (char)v);
}

/* Emit a literal element; returns the offset of its first data byte in b. */
static size_t put_literal(struct buf *b, const unsigned char *p, size_t n)
{
    if (n == 0)
        return b->len;
    size_t m = n - 1;
    if (m < 60) {
        buf_putc(b, (char)(m << 2));
    } else {
        int nb = m < (1u << 8) ? 1 : m < (1u << 16) ? 2 : m < (1u << 24) ? 3 : 4;
        buf_putc(b, (char)((59 + nb) << 2));
        for (int i = 0; i < nb; i++)
            buf_putc(b, (char)(m >> (8 * i)));
    }
    size_t at = b->len;
    buf_append(b, p, n);
    return at;
}

static void put_copy(struct buf *b, size_t offset, size_t len)
{
    while (len > 0) {
        size_t l = len > 64 ? 64 : len;
        if (len - l > 0 && len - l < 4)
            l = len - 4; /* keep every piece >= 4 bytes */
        buf_putc(b, (char)(((l - 1) << 2) | 2));
        buf_putc(b, (char)(offset & 0xff));
        buf_putc(b, (char)(offset >> 8));
        len -= l;
    }
}

static uint32_t load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#define HASH_BITS 14

/*
 * Greedy LZ77 in snappy's block format (like snappy's own compressor, with a
 * 16K-entry hash of 4-byte sequences and offsets up to 64 KiB), except that
 * bytes flagged in `pinned` are never the source or the target of a copy.
 * Each pinned run therefore lands verbatim in some literal element; its
 * position in the output is recorded through `pinned_out`.
 */
static void compress_pinned(const unsigned char *r, size_t n, const unsigned char *pinned, struct buf *out,
                            const size_t *pin_start, size_t n_pins, size_t *pin_out)
{
    uint32_t *table = calloc((size_t)1 << HASH_BITS, sizeof *table);
    if (!table)
        die("out of memory");
    put_uvarint(out, n);
    size_t pos = 0, lit = 0, k = 0;
    while (pos < n) {
        if (pinned[pos]) {
            pos++;
            continue;
        }
        if (pos + 4 <= n && !pinned[pos + 1] && !pinned[pos + 2] && !pinned[pos + 3]) {
            uint32_t h = (load32(r + pos) * 0x1e35a7bdu) >> (32 - HASH_BITS);
            size_t cand = table[h];
            table[h] = (uint32_t)pos + 1;
            if (cand && pos - (cand - 1) <= 0xffff && load32(r + cand - 1) == load32(r + pos)) {
                size_t c = cand - 1;
                if (!pinned[c] && !pinned[c + 1] && !pinned[c + 2] && !pinned[c + 3]) {
                    size_t len = 4;
                    while (pos + len < n && !pinned[pos + len] && !pinned[c + len] &&
                           r[c + len] == r[pos + len])
                        len++;
                    /* the literal before the copy carries any pinned runs since `lit` */
                    size_t at = put_literal(out, r + lit, pos - lit);
                    while (k < n_pins && pin_start[k] < pos) {
                        pin_out[k] = at + (pin_start[k] - lit);
                        k++;
                    }
                    put_copy(out, pos - c, len);
                    pos += len;
                    lit = pos;
                    continue;
                }
            }
        }
        pos++;
    }
    size_t at = put_literal(out, r + lit, n - lit);
    while (k < n_pins) {
        pin_out[k] = at + (pin_start[k] - lit);
        k++;
    }
    free(table);
}

static void build_body(unsigned conn, const struct opts *o, struct body *b)
{
    struct buf raw = BUF_INIT, comp = BUF_INIT;
    build_raw(conn, o, &raw);
    size_t n = o->series;
    size_t *off = find_samples(&raw, n);
    unsigned char *pinned = calloc(raw.len + 1, 1);
    if (!pinned)
        die("out of memory");
    for (size_t i = 0; i < n; i++)
        memset(pinned + off[i], 1, 15); /* 8 value bytes, 0x10, 6 timestamp bytes */
    b->sample_off = calloc(n, sizeof *b->sample_off);
    compress_pinned((unsigned char *)raw.data, raw.len, pinned, &comp, off, n, b->sample_off);
    /* Check once against libsnappy: the body must decode to exactly the template. */
    size_t ulen = 0;
    char *check = malloc(raw.len + 1);
    if (!check || snappy_uncompressed_length(comp.data, comp.len, &ulen) != SNAPPY_OK || ulen != raw.len ||
        snappy_uncompress(comp.data, comp.len, check, &ulen) != SNAPPY_OK || memcmp(check, raw.data, raw.len))
        die("snappy writer self-check failed");
    for (size_t i = 0; i < n; i++)
        if (memcmp(comp.data + b->sample_off[i], raw.data + off[i], 15) != 0)
            die("pinned sample bytes not found in the compressed body");
    free(check);
    free(pinned);
    free(off);
    b->raw_len = raw.len;
    b->comp_len = comp.len;
    b->comp = buf_steal(&comp, &b->comp_len);
    b->n = n;
    buf_free(&raw);
}

static void patch_body(struct body *b, int64_t ts, uint64_t round)
{
    unsigned char tsb[6];
    put_varint6(tsb, ts);
    for (size_t i = 0; i < b->n; i++) {
        double v = (double)(round * 7 + i % 13) + 0.5; /* counters that only go up */
        memcpy(b->comp + b->sample_off[i], &v, 8);
        memcpy(b->comp + b->sample_off[i] + 9, tsb, 6);
    }
}

/* ---- sending ------------------------------------------------------------- */

struct conn {
    pthread_t tid;
    unsigned id;
    const struct opts *o;
    struct body body;
    unsigned long requests, ok, errors;
    long last_status;
    char err[CURL_ERROR_SIZE];
};

static atomic_int go;
static double t_end;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    const struct opts *o = c->o;
    CURL *h = curl_easy_init();
    if (!h)
        die("curl_easy_init");
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, o->version == 2 ? "Content-Type: " API_RW_CONTENT_TYPE_V2
                                                 : "Content-Type: " API_RW_CONTENT_TYPE_V1);
    hdr = curl_slist_append(hdr, "Content-Encoding: snappy");
    hdr = curl_slist_append(hdr, o->version == 2 ? "X-Prometheus-Remote-Write-Version: 2.0.0"
                                                 : "X-Prometheus-Remote-Write-Version: 0.1.0");
    hdr = curl_slist_append(hdr, "User-Agent: metrics-adapter-loadgen");
    hdr = curl_slist_append(hdr, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(h, CURLOPT_URL, o->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body.comp);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body.comp_len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->err);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);

    while (!atomic_load(&go))
        ;
    int64_t ts = wall_ms() - 1;
    while (now_s() < t_end && (!o->max_requests || c->requests < o->max_requests)) {
        int64_t w = wall_ms();
        ts = w > ts ? w : ts + 1;
        if (ts < TS_MIN || ts > TS_MAX)
            die("timestamp outside the 6-byte varint range");
        patch_body(&c->body, ts, c->requests);
        CURLcode rc = curl_easy_perform(h);
        c->requests++;
        long status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        c->last_status = status;
        if (rc == CURLE_OK && status >= 200 && status < 300) {
            c->ok++;
        } else {
            c->errors++;
            if (c->errors <= 3)
                fprintf(stderr, "loadgen: conn %u: %s status %ld\n", c->id, rc == CURLE_OK ? "" : c->err,
                        status);
        }
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --url URL [--connections N] [--duration S] [--series N] [--proto v1|v2]"
                    " [--max-requests N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o = {.connections = 2, .duration = 10, .series = 2000, .version = 1};
    static const struct option lo[] = {
        {"url", required_argument, 0, 'u'},
        {"connections", required_argument, 0, 'c'},
        {"duration", required_argument, 0, 'd'},
        {"series", required_argument, 0, 's'},
        {"proto", required_argument, 0, 'p'},
        {"max-requests", required_argument, 0, 'm'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "u:c:d:s:p:m:", lo, NULL)) != -1) {
        switch (ch) {
        case 'u':
            o.url = optarg;
            break;
        case 'c':
            o.connections = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            o.duration = strtod(optarg, NULL);
            break;
        case 's':
            o.series = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'p':
            o.version = strcmp(optarg, "v2") == 0 ? 2 : 1;
            break;
        case 'm':
            o.max_requests = strtoul(optarg, NULL, 10);
            break;
        default:
            usage();
        }
    }
    if (!o.url || o.connections == 0 || o.series == 0 || o.duration <= 0)
        usage();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct conn *c = calloc(o.connections, sizeof *c);
    if (!c)
        die("out of memory");
    for (unsigned i = 0; i < o.connections; i++) {
        c[i].id = i;
        c[i].o = &o;
        build_body(i, &o, &c[i].body);
    }
    for (unsigned i = 0; i < o.connections; i++)
        if (pthread_create(&c[i].tid, NULL, conn_main, &c[i]) != 0)
            die("pthread_create");
    double t0 = now_s();
    t_end = t0 + o.duration;
    atomic_store(&go, 1);
    unsigned long req = 0, ok = 0, err = 0;
    long last = 0;
    for (unsigned i = 0; i < o.connections; i++) {
        pthread_join(c[i].tid, NULL);
        req += c[i].requests;
        ok += c[i].ok;
        err += c[i].errors;
        last = c[i].last_status;
    }
    double el = now_s() - t0;
    unsigned long long sent = (unsigned long long)ok * o.series;
    /* The generator's own CPU (set-up included), to show it is not the bottleneck. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    printf(
        "requests=%lu ok=%lu errors=%lu samples_sent=%llu elapsed_s=%.3f samples_per_s=%.0f body_bytes=%zu "
        "raw_bytes=%zu last_status=%ld loadgen_cpu_s=%.2f\n",
        req, ok, err, sent, el, (double)sent / el, c[0].body.comp_len, c[0].body.raw_len, last, cpu);
    for (unsigned i = 0; i < o.connections; i++) {
        free(c[i].body.comp);
        free(c[i].body.sample_off);
    }
    free(c);
    curl_global_cleanup();
    return err && !ok ? 1 : 0;
}
