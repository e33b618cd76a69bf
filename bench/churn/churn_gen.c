/*
 * churn_gen: a write-only churn load against metrics-adapter, like a busy
 * cluster whose pods come and go while nothing reads the metrics API.
 *
 * A pod is `--series-per-pod` series (10 by default: ten metric names with
 * the same six Kubernetes-like labels). A pod is born (all its series get a
 * sample), refreshed every `--interval` seconds while it lives (one more
 * sample each, as a scrape would), and dies: one stale marker per series,
 * after which the pod is never seen again. Bodies are built with the
 * project's encoder (api_rw_encode, v1 + snappy); at these rates encoding
 * costs little next to the server's work, so no patch-in-place trick here.
 *
 * Phases, one after the other, on a 100 ms tick:
 *   empty     nothing written (the empty process's RSS)
 *   base      `--base` series written, held (the cost of that many series)
 *   base-gone they are stale-marked
 *   steady    `--rate` new series/s, each pod living live/rate seconds, so
 *             the live set settles at `--live`
 *   burst     the steady pods are stale-marked, then pods are born at
 *             `--burst-rate` series/s up to `--burst` live series
 *   hold      the burst is held
 *   drain     every pod is stale-marked but every `--keep-every`-th one
 *   idle      the survivors are only refreshed
 * Every second it samples the adapter (`--pid`'s VmRSS and the adapter's
 * /metrics) and writes a CSV row:
 *   t_s,phase,rss_bytes,live,pending,reclaimed,buckets,heap_inuse,gen_live
 * (heap_inuse is empty here; the Go peers fill it.)
 *
 * usage: churn_gen --url WRITE_URL --metrics-url URL --pid PID --csv FILE
 *        [--rate N] [--live N] [--steady S] [--burst N] [--burst-rate N]
 *        [--hold S] [--keep-every N] [--idle S] [--interval S] [--base N]
 *        [--series-per-pod N] [--phase-empty S] [--phase-base S]
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "buf.h"
#include "remote_write.h"
#include "bench_series.h"

#define TICK_MS      100
#define MAX_PER_BODY 20000

struct opts {
    const char *url, *metrics_url, *csv;
    long pid;
    double rate, live, steady, burst, burst_rate, hold, idle, interval, base, t_empty, t_base;
    unsigned keep_every, spp;
};

/* A pod: alive between birth and death, last written at last_tick. */
struct pod {
    int64_t last_ts;
    int32_t last_tick;
    int32_t born;
    uint8_t alive;
};

static struct pod *pods;
static size_t n_pods, cap_pods, first_alive, live_series;
static struct opts o;

static void die(const char *msg)
{
    fprintf(stderr, "churn_gen: %s\n", msg);
    exit(1);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- one request under construction ---------------------------------------- */

struct batch {
    struct api_rw_series *ser;
    struct api_rw_label *lab;
    struct api_rw_sample *smp;
    char *strs; /* 192 bytes per series */
    size_t n;
};

static struct batch B;
static CURL *wh, *mh;
static struct curl_slist *hdr;
static unsigned long requests, errors;

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static void flush(void)
{
    if (B.n == 0)
        return;
    struct api_rw_request req = {.version = 1, .series = B.ser, .n_series = B.n};
    struct buf body = BUF_INIT;
    if (api_rw_encode(&req, 1, 0, &body) != 0)
        die("encode failed");
    curl_easy_setopt(wh, CURLOPT_POSTFIELDS, body.data);
    curl_easy_setopt(wh, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
    CURLcode rc = curl_easy_perform(wh);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(wh, CURLINFO_RESPONSE_CODE, &status);
    requests++;
    if (rc != CURLE_OK || status < 200 || status >= 300) {
        errors++;
        if (errors <= 5)
            fprintf(stderr, "churn_gen: write failed: curl %d status %ld\n", (int)rc, status);
    }
    buf_free(&body);
    B.n = 0;
}

/* Queue one sample (or stale marker) for every series of pod p. */
static void put_pod(size_t p, int stale, int64_t ts, uint64_t round)
{
    for (unsigned m = 0; m < o.spp; m++) {
        if (B.n == MAX_PER_BODY)
            flush();
        size_t i = B.n++;
        char *s = B.strs + i * 192;
        int c = snprintf(s, 32, "app-%zu", p % 7);
        char *instance = s + c + 1;
        c += 1 + snprintf(instance, 40, "10.%zu.%zu.%zu:8080", (p >> 16) & 255, (p >> 8) & 255, p & 255);
        char *ns = s + c + 1;
        c += 1 + snprintf(ns, 24, "team-%zu", p % 16);
        char *pod = s + c + 1;
        snprintf(pod, 64, "web-%zu-7c9f8d6b5-%08zx", p % 16, p);
        const char *vals[6] = {
            bench_metric_names[m % BENCH_N_METRICS], s, instance, "kubernetes-pods", ns, pod};
        static const char *const names[6] = {"__name__", "container", "instance", "job", "namespace", "pod"};
        struct api_rw_label *l = &B.lab[i * 6];
        for (int j = 0; j < 6; j++) {
            l[j].name = names[j];
            l[j].name_len = (uint32_t)strlen(names[j]);
            l[j].value = vals[j];
            l[j].value_len = (uint32_t)strlen(vals[j]);
        }
        B.smp[i].value = stale ? api_stale_nan() : (double)(round * 3 + m) + 0.5;
        B.smp[i].timestamp_ms = ts;
        B.ser[i] = (struct api_rw_series){.labels = l, .n_labels = 6, .samples = &B.smp[i], .n_samples = 1};
    }
}

static int64_t next_ts(struct pod *p)
{
    int64_t w = wall_ms();
    p->last_ts = w > p->last_ts ? w : p->last_ts + 1;
    return p->last_ts;
}

static void birth(int32_t tick)
{
    if (n_pods == cap_pods)
        die("pod table full");
    struct pod *p = &pods[n_pods];
    p->alive = 1;
    p->last_tick = tick;
    p->born = tick;
    put_pod(n_pods, 0, next_ts(p), 0);
    n_pods++;
    live_series += o.spp;
}

static void death(size_t i)
{
    struct pod *p = &pods[i];
    if (!p->alive)
        return;
    p->alive = 0;
    put_pod(i, 1, next_ts(p), 0);
    live_series -= o.spp;
}

/* Refresh every live pod last written an interval ago. */
static void refresh(int32_t tick)
{
    int32_t every = (int32_t)(o.interval * 1000 / TICK_MS);
    while (first_alive < n_pods && !pods[first_alive].alive)
        first_alive++;
    for (size_t i = first_alive; i < n_pods; i++) {
        struct pod *p = &pods[i];
        if (p->alive && tick - p->last_tick >= every) {
            p->last_tick = tick;
            put_pod(i, 0, next_ts(p), (uint64_t)tick);
        }
    }
}

/* ---- sampling ------------------------------------------------------------- */

static struct buf mbuf;

static size_t keep(char *p, size_t size, size_t n, void *ud)
{
    (void)ud;
    buf_append(&mbuf, p, size * n);
    return size * n;
}

/* Sum of every sample of a metric family in the exposition text; -1 when absent. */
static double family_sum(const char *name)
{
    size_t nl = strlen(name);
    double sum = 0;
    int seen = 0;
    const char *p = mbuf.data, *end = mbuf.data + mbuf.len;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && memcmp(p, name, nl) == 0 && (p[nl] == ' ' || p[nl] == '{')) {
            const char *v = p[nl] == '{' ? memchr(p, '}', (size_t)(eol - p)) : p + nl;
            if (v) {
                sum += strtod(v + 1, NULL);
                seen = 1;
            }
        }
        p = eol + 1;
    }
    return seen ? sum : -1;
}

static long rss_bytes(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static FILE *csv;

static void sample(double t, const char *phase)
{
    mbuf.len = 0;
    long rss = rss_bytes(o.pid);
    double live = -1, pend = -1, recl = -1, bk = -1;
    if (curl_easy_perform(mh) == CURLE_OK && mbuf.len) {
        buf_putc(&mbuf, '\0');
        mbuf.len--;
        live = family_sum("metrics_adapter_series_live");
        pend = family_sum("metrics_adapter_map_pending_entries");
        recl = family_sum("metrics_adapter_map_reclaimed_entries_total");
        bk = family_sum("metrics_adapter_map_buckets");
    }
    fprintf(csv, "%.1f,%s,%ld,%.0f,%.0f,%.0f,%.0f,,%zu\n", t, phase, rss, live, pend, recl, bk, live_series);
    fflush(csv);
}

/* ---- the schedule ----------------------------------------------------------- */

enum phase { P_EMPTY, P_BASE, P_BASE_GONE, P_STEADY, P_BURST, P_HOLD, P_DRAIN, P_IDLE, P_END };
static const char *const phase_name[] = {"empty", "base",  "base-gone", "steady", "burst",
                                         "hold",  "drain", "idle",      "end"};

int main(int argc, char **argv)
{
    o = (struct opts){.rate = 10000,
                      .live = 200000,
                      .steady = 120,
                      .burst = 1000000,
                      .burst_rate = 100000,
                      .hold = 5,
                      .idle = 30,
                      .interval = 15,
                      .base = 10000,
                      .t_empty = 3,
                      .t_base = 4,
                      .keep_every = 100,
                      .spp = 10};
    static const struct option lo[] = {
        {"url", required_argument, 0, 'u'},
        {"metrics-url", required_argument, 0, 'M'},
        {"pid", required_argument, 0, 'p'},
        {"csv", required_argument, 0, 'c'},
        {"rate", required_argument, 0, 'r'},
        {"live", required_argument, 0, 'l'},
        {"steady", required_argument, 0, 's'},
        {"burst", required_argument, 0, 'b'},
        {"burst-rate", required_argument, 0, 'B'},
        {"hold", required_argument, 0, 'h'},
        {"keep-every", required_argument, 0, 'k'},
        {"idle", required_argument, 0, 'i'},
        {"interval", required_argument, 0, 'I'},
        {"base", required_argument, 0, 'a'},
        {"series-per-pod", required_argument, 0, 'S'},
        {"phase-empty", required_argument, 0, 'e'},
        {"phase-base", required_argument, 0, 'E'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'u':
            o.url = optarg;
            break;
        case 'M':
            o.metrics_url = optarg;
            break;
        case 'p':
            o.pid = strtol(optarg, NULL, 10);
            break;
        case 'c':
            o.csv = optarg;
            break;
        case 'r':
            o.rate = strtod(optarg, NULL);
            break;
        case 'l':
            o.live = strtod(optarg, NULL);
            break;
        case 's':
            o.steady = strtod(optarg, NULL);
            break;
        case 'b':
            o.burst = strtod(optarg, NULL);
            break;
        case 'B':
            o.burst_rate = strtod(optarg, NULL);
            break;
        case 'h':
            o.hold = strtod(optarg, NULL);
            break;
        case 'k':
            o.keep_every = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'i':
            o.idle = strtod(optarg, NULL);
            break;
        case 'I':
            o.interval = strtod(optarg, NULL);
            break;
        case 'a':
            o.base = strtod(optarg, NULL);
            break;
        case 'S':
            o.spp = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'e':
            o.t_empty = strtod(optarg, NULL);
            break;
        case 'E':
            o.t_base = strtod(optarg, NULL);
            break;
        default:
            die("bad argument (see the comment at the top of churn_gen.c)");
        }
    }
    if (!o.url || !o.metrics_url || !o.csv || o.pid <= 0 || o.spp == 0 || o.keep_every == 0 || o.rate <= 0 ||
        o.burst_rate <= 0)
        die("usage: churn_gen --url URL --metrics-url URL --pid PID --csv FILE [options]");

    cap_pods = (size_t)((o.base + o.rate * (o.steady + 1) + o.burst) / o.spp) + 16;
    pods = calloc(cap_pods, sizeof *pods);
    B.ser = calloc(MAX_PER_BODY, sizeof *B.ser);
    B.lab = calloc(MAX_PER_BODY * 6, sizeof *B.lab);
    B.smp = calloc(MAX_PER_BODY, sizeof *B.smp);
    B.strs = calloc(MAX_PER_BODY, 192);
    if (!pods || !B.ser || !B.lab || !B.smp || !B.strs)
        die("out of memory");
    csv = fopen(o.csv, "w");
    if (!csv)
        die("cannot open the CSV file");
    fprintf(csv, "t_s,phase,rss_bytes,live,pending,reclaimed,buckets,heap_inuse,gen_live\n");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    wh = curl_easy_init();
    mh = curl_easy_init();
    if (!wh || !mh)
        die("curl_easy_init");
    hdr = curl_slist_append(hdr, "Content-Type: " API_RW_CONTENT_TYPE_V1);
    hdr = curl_slist_append(hdr, "Content-Encoding: snappy");
    hdr = curl_slist_append(hdr, "X-Prometheus-Remote-Write-Version: 0.1.0");
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(wh, CURLOPT_URL, o.url);
    curl_easy_setopt(wh, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(wh, CURLOPT_POST, 1L);
    curl_easy_setopt(wh, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(wh, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(wh, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(mh, CURLOPT_URL, o.metrics_url);
    curl_easy_setopt(mh, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(mh, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(mh, CURLOPT_NOSIGNAL, 1L);

    const int32_t tps = 1000 / TICK_MS;
    double dur[P_END] = {o.t_empty, o.t_base, o.t_base, o.steady, 0, o.hold, 1, o.idle};
    size_t lifetime_ticks = (size_t)(o.live / o.rate * tps);
    size_t base_pods = (size_t)(o.base / o.spp), burst_pods = (size_t)(o.burst / o.spp);
    size_t burst_first = 0, steady_first = 0, next_death = 0;
    double births_due = 0;
    enum phase ph = P_EMPTY;
    int32_t ph_start = 0, tick = 0;
    double t0 = now_s(), sched0 = t0, next_sample = 0;
    sample(0, phase_name[ph]);
    next_sample = 1;
    while (ph != P_END) {
        /*
         * Wait for this tick's time. When a tick's work took longer (a big
         * drain), shift the schedule instead of running the late ticks back
         * to back: every phase keeps its length in wall time.
         */
        double due = sched0 + (double)tick / tps;
        if (now_s() > due + 1.0 / tps)
            sched0 += now_s() - due;
        due = sched0 + (double)tick / tps;
        while (now_s() < due) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        int32_t in_ph = tick - ph_start;
        switch (ph) {
        case P_EMPTY:
            break;
        case P_BASE:
            if (in_ph == 0)
                for (size_t i = 0; i < base_pods; i++)
                    birth(tick);
            break;
        case P_BASE_GONE:
            if (in_ph == 0)
                for (size_t i = 0; i < base_pods; i++)
                    death(i);
            break;
        case P_STEADY:
            if (in_ph == 0)
                steady_first = n_pods;
            births_due += o.rate / o.spp / tps;
            while (births_due >= 1) {
                birth(tick);
                births_due -= 1;
            }
            /* deaths: in birth order, each pod lifetime_ticks after its birth */
            if (in_ph == 0)
                next_death = steady_first;
            while (next_death < n_pods && (size_t)(tick - pods[next_death].born) >= lifetime_ticks)
                death(next_death++);
            break;
        case P_BURST:
            if (in_ph == 0) {
                for (size_t i = steady_first; i < n_pods; i++)
                    death(i);
                burst_first = n_pods;
                births_due = 0;
            }
            births_due += o.burst_rate / o.spp / tps;
            while (births_due >= 1 && n_pods - burst_first < burst_pods) {
                birth(tick);
                births_due -= 1;
            }
            break;
        case P_HOLD:
            break;
        case P_DRAIN:
            if (in_ph == 0)
                for (size_t i = burst_first; i < n_pods; i++)
                    if ((i - burst_first) % o.keep_every != 0)
                        death(i);
            break;
        case P_IDLE:
        case P_END:
            break;
        }
        refresh(tick);
        flush();
        tick++;
        double t = now_s() - t0;
        if (t >= next_sample) {
            sample(t, phase_name[ph]);
            next_sample = (double)(int)t + 1;
        }
        /* next phase? */
        int32_t len = (int32_t)(dur[ph] * tps);
        int done = ph == P_BURST ? n_pods - burst_first >= burst_pods : tick - ph_start >= len;
        if (done) {
            ph++;
            ph_start = tick;
        }
    }
    sample(now_s() - t0, "end");
    fprintf(stderr, "churn_gen: %lu requests, %lu errors, %zu pods, %zu live series at the end\n", requests,
            errors, n_pods, live_series);
    fclose(csv);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(wh);
    curl_easy_cleanup(mh);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
