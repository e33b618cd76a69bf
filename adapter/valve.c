/*
 * valve: the memory safety valve. See valve.h.
 *
 * DESIGN: one sampler thread owns every transition; everyone else reads the
 * state with a relaxed load. Nothing needs ordering with it: a remote-write
 * request that reads OK a moment after the thread moved to HARD is simply
 * one more request accepted, exactly as if it had arrived a moment earlier.
 * The store's refuse-new flag is set by the same thread, after the state
 * (both are hints with the same meaning, read independently).
 *
 * Resident memory comes from /proc/self/statm (second field, pages): one
 * open/read/close of a ~30-byte file, ~2 µs, ten times a second. RSS is what
 * the kernel's OOM killer and the cgroup's memory.max look at (together with
 * page cache, which a process that writes no files has little of).
 *
 * While the valve is engaged the thread also calls malloc_trim(0) once a
 * second: glibc keeps freed chunks (DESIGN 4a), and a valve that compares
 * resident memory would otherwise stay shut after the reaper freed series.
 *
 * The thread also times synchronize_rcu() once a second: a grace period that
 * takes long means a reader is stuck in a read-side section, and reclaim
 * (maplib's call_rcu) falls behind while memory grows.
 */
#include "valve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include "expo.h"
#include "flags.h"
#include "log.h"
#include "selfmetrics.h"
#include "store.h"

#define DEFAULT_SOFT_FRACTION 0.9
#define DEFAULT_INTERVAL_MS   100
#define AUTO_FRACTION         0.8 /* --memory-limit=auto: 80 % of the cgroup's limit */
#define HYSTERESIS            0.05
#define GRACE_EVERY_MS        1000
#define TRIM_EVERY_MS         1000 /* malloc_trim(0) at most this often while the valve is engaged */

static _Atomic int cur_state;

SM_GAUGE(valve_g_state, "metrics_adapter_memory_valve_state", NULL,
         "The memory valve: 0 open, 1 soft level (new series refused), 2 hard level (remote write refused "
         "with 503).")
SM_GAUGE(valve_g_limit, "metrics_adapter_memory_limit_bytes", NULL,
         "The memory valve's hard level (--memory-limit); 0 when the valve is off.")
SM_GAUGE(valve_g_soft, "metrics_adapter_memory_soft_limit_bytes", NULL,
         "The memory valve's soft level (--memory-soft-fraction of the limit); 0 when the valve is off.")
SM_GAUGE(valve_g_rss, "metrics_adapter_memory_valve_resident_bytes", NULL,
         "Resident memory as the valve last sampled it.")
#define TRANS_HELP "Changes of the memory valve's state, by the state entered."
SM_COUNTER(valve_c_to_ok, "metrics_adapter_memory_valve_transitions_total", "state=\"open\"", TRANS_HELP)
SM_COUNTER(valve_c_to_soft, "metrics_adapter_memory_valve_transitions_total", "state=\"soft\"", TRANS_HELP)
SM_COUNTER(valve_c_to_hard, "metrics_adapter_memory_valve_transitions_total", "state=\"hard\"", TRANS_HELP)

SM_COUNTER(valve_c_refused, "metrics_adapter_memory_valve_refused_requests_total", NULL,
           "Remote-write requests refused with 503 at the memory valve's hard level.")

static const double grace_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
SM_HISTOGRAM(valve_h_grace, "metrics_adapter_rcu_grace_period_seconds", NULL,
             "Duration of synchronize_rcu(), timed once a second: long grace periods delay reclaim.",
             grace_bounds, sizeof(grace_bounds) / sizeof(grace_bounds[0]))

static struct {
    pthread_t thread;
    int running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    struct store *store;
    uint64_t limit, soft;
    unsigned interval_ms;
} v = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static const char *state_name(enum valve_state s)
{
    return s == VALVE_HARD ? "hard" : s == VALVE_SOFT ? "soft" : "open";
}

int valve_parse(const char *limit, const char *fraction, struct valve_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!limit || strcmp(limit, "auto") == 0) {
        uint64_t cg = valve_cgroup_limit("/sys/fs/cgroup");
        out->limit_bytes = (uint64_t)((double)cg * AUTO_FRACTION);
    } else if (flags_parse_size(limit, &out->limit_bytes) != 0) {
        snprintf(
            err, errlen,
            "invalid value \"%s\" for flag --memory-limit: expected auto, 0 (off) or a size such as 800Mi",
            limit);
        return -EINVAL;
    }
    out->soft_fraction = DEFAULT_SOFT_FRACTION;
    if (fraction && *fraction) {
        char *end;
        errno = 0;
        double f = strtod(fraction, &end);
        if (errno || *end || end == fraction || !(f > 0 && f <= 1)) {
            snprintf(err, errlen,
                     "invalid value \"%s\" for flag --memory-soft-fraction: expected a number in (0, 1]",
                     fraction);
            return -EINVAL;
        }
        out->soft_fraction = f;
    }
    return 0;
}

/* The first line of @path as an unsigned number; "max" (or anything else) gives 0. */
static uint64_t read_limit_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char line[64] = "";
    char *ok = fgets(line, sizeof(line), f);
    fclose(f);
    if (!ok)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(line, &end, 10);
    if (errno || end == line || (*end && *end != '\n'))
        return 0;
    /* cgroup v1 reports "no limit" as a page-rounded LONG_MAX. */
    if (n >= (1ULL << 62))
        return 0;
    return (uint64_t)n;
}

/*
 * The cgroup of this process: v2's "0::/path" line of /proc/self/cgroup, or
 * v1's memory controller line. Inside a container the namespace makes the
 * path "/" and the files are at the mount point itself; both are tried.
 */
uint64_t valve_cgroup_limit(const char *root)
{
    char path[4096], rel[2048] = "", rel1[2048] = "";
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (f) {
        char line[2048];
        while (fgets(line, sizeof(line), f)) {
            line[strcspn(line, "\n")] = 0;
            if (strncmp(line, "0::", 3) == 0)
                snprintf(rel, sizeof(rel), "%s", line + 3);
            else {
                char *c1 = strchr(line, ':');
                char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (c2 && strstr(c1, "memory") && (size_t)(c2 - c1) < 64)
                    snprintf(rel1, sizeof(rel1), "%s", c2 + 1);
            }
        }
        fclose(f);
    }
    uint64_t n;
    if (rel[0] && strcmp(rel, "/") != 0) {
        snprintf(path, sizeof(path), "%s%s/memory.max", root, rel);
        if ((n = read_limit_file(path)))
            return n;
    }
    snprintf(path, sizeof(path), "%s/memory.max", root);
    if ((n = read_limit_file(path)))
        return n;
    if (rel1[0] && strcmp(rel1, "/") != 0) {
        snprintf(path, sizeof(path), "%s/memory%s/memory.limit_in_bytes", root, rel1);
        if ((n = read_limit_file(path)))
            return n;
    }
    snprintf(path, sizeof(path), "%s/memory/memory.limit_in_bytes", root);
    return read_limit_file(path);
}

enum valve_state valve_next_state(enum valve_state cur, uint64_t rss, uint64_t limit, uint64_t soft_bytes)
{
    if (!limit)
        return VALVE_OK;
    uint64_t margin = (uint64_t)((double)limit * HYSTERESIS);
    uint64_t hard_exit = limit - margin;
    uint64_t soft_exit = soft_bytes > margin ? soft_bytes - margin : 0;
    if (rss >= limit)
        return VALVE_HARD;
    if (cur == VALVE_HARD && rss >= hard_exit)
        return VALVE_HARD;
    if (rss >= soft_bytes)
        return VALVE_SOFT;
    if (cur != VALVE_OK && rss >= soft_exit)
        return VALVE_SOFT;
    return VALVE_OK;
}

uint64_t valve_rss_bytes(void)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    char data[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, data, sizeof(data) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    data[n] = 0;
    unsigned long long size, resident;
    if (sscanf(data, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)page;
}

void valve_note_refused(void)
{
    sm_inc(&valve_c_refused);
}

enum valve_state valve_state(void)
{
    return (enum valve_state)atomic_load_explicit(&cur_state, memory_order_relaxed);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void transition(enum valve_state from, enum valve_state to, uint64_t rss)
{
    atomic_store_explicit(&cur_state, (int)to, memory_order_relaxed);
    sm_set(&valve_g_state, (uint64_t)to);
    sm_inc(to == VALVE_HARD ? &valve_c_to_hard : to == VALVE_SOFT ? &valve_c_to_soft : &valve_c_to_ok);
    if (v.store)
        store_set_refuse_new(v.store, to != VALVE_OK);
    if (to > from)
        log_warn("memory valve engaged",
                 "state=%s from=%s resident_bytes=%" PRIu64 " soft_bytes=%" PRIu64 " limit_bytes=%" PRIu64,
                 state_name(to), state_name(from), rss, v.soft, v.limit);
    else
        log_info("memory valve released",
                 "state=%s from=%s resident_bytes=%" PRIu64 " soft_bytes=%" PRIu64 " limit_bytes=%" PRIu64,
                 state_name(to), state_name(from), rss, v.soft, v.limit);
    /* Entering the hard level: delete what has expired now rather than at the next tick. */
    if (to == VALVE_HARD && v.store)
        store_reap_now(v.store);
}

static void *valve_main(void *arg)
{
    (void)arg;
    rcu_register_thread();
    uint64_t last_grace = 0, last_trim = 0;
    pthread_mutex_lock(&v.mu);
    while (!v.stop) {
        pthread_mutex_unlock(&v.mu);
        uint64_t rss = valve_rss_bytes();
        sm_set(&valve_g_rss, rss);
        enum valve_state from = valve_state();
        enum valve_state to = valve_next_state(from, rss, v.limit, v.soft);
        if (to != from)
            transition(from, to, rss);
        uint64_t now = mono_ns();
        /*
         * Engaged: give freed memory back to the kernel now rather than when
         * maplib's allocator policy gets to it (it waits for a large batch of
         * reclaims), so that resident memory, which the valve compares, falls
         * as soon as the reaper has freed series. A trim costs a few
         * milliseconds; once a second is nothing next to a refused write.
         */
        if (to != VALVE_OK && now - last_trim >= (uint64_t)TRIM_EVERY_MS * 1000000u) {
            malloc_trim(0);
            last_trim = now;
        }
        if (now - last_grace >= (uint64_t)GRACE_EVERY_MS * 1000000u) {
            synchronize_rcu();
            uint64_t done = mono_ns();
            sm_observe(&valve_h_grace, (double)(done - now) / 1e9);
            last_grace = done;
        }
        pthread_mutex_lock(&v.mu);
        if (v.stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)v.interval_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&v.cv, &v.mu, &ts);
    }
    pthread_mutex_unlock(&v.mu);
    rcu_unregister_thread();
    return NULL;
}

int valve_start(const struct valve_config *cfg, struct store *st)
{
    if (v.running)
        return -EBUSY;
    double frac =
        cfg->soft_fraction > 0 && cfg->soft_fraction <= 1 ? cfg->soft_fraction : DEFAULT_SOFT_FRACTION;
    v.store = st;
    v.limit = cfg->limit_bytes;
    v.soft = (uint64_t)((double)cfg->limit_bytes * frac); /* truncates: the floor */
    v.interval_ms = cfg->interval_ms ? cfg->interval_ms : DEFAULT_INTERVAL_MS;
    v.stop = 0;
    atomic_store_explicit(&cur_state, VALVE_OK, memory_order_relaxed);
    sm_set(&valve_g_state, 0);
    sm_set(&valve_g_limit, v.limit);
    sm_set(&valve_g_soft, v.limit ? v.soft : 0);
    if (v.limit)
        log_info("memory valve", "limit_bytes=%" PRIu64 " soft_bytes=%" PRIu64 " interval_ms=%u", v.limit,
                 v.soft, v.interval_ms);
    else
        log_info("memory valve", "limit_bytes=0 state=off");
    int rc = pthread_create(&v.thread, NULL, valve_main, NULL);
    if (rc)
        return -rc;
    v.running = 1;
    return 0;
}

void valve_stop(void)
{
    if (!v.running)
        return;
    pthread_mutex_lock(&v.mu);
    v.stop = 1;
    pthread_cond_signal(&v.cv);
    pthread_mutex_unlock(&v.mu);
    pthread_join(v.thread, NULL);
    v.running = 0;
    if (v.store && valve_state() != VALVE_OK)
        store_set_refuse_new(v.store, 0);
    atomic_store_explicit(&cur_state, VALVE_OK, memory_order_relaxed);
    v.store = NULL;
}
