#ifndef ADAPTER_VALVE_H
#define ADAPTER_VALVE_H

/*
 * valve: the memory safety valve (DESIGN 5).
 *
 * A sampler thread reads the process's resident memory from /proc/self/statm
 * every interval (default 100 ms; one read of a short file, never per
 * request) and moves between three states:
 *
 *   VALVE_OK   (0): everything is accepted.
 *   VALVE_SOFT (1): resident >= soft_fraction * limit. New series are
 *                   refused through the store's 400 path
 *                   (store_set_refuse_new), existing series keep updating.
 *   VALVE_HARD (2): resident >= limit. Remote-write bodies are refused before
 *                   decoding with 503 and Retry-After (valve_refuses_writes()),
 *                   and the reaper runs at once (store_reap_now).
 *
 * Leaving a level needs resident memory 5 % of the limit below it (hard:
 * below 0.95 * limit; soft: below soft level - 0.05 * limit), so that the
 * valve does not flap on the noise of a few pages. Serving and readiness
 * never look at the valve. Every state change is logged, and exported as
 * metrics_adapter_memory_valve_state (0, 1, 2) with
 * metrics_adapter_memory_limit_bytes, metrics_adapter_memory_soft_limit_bytes
 * and metrics_adapter_memory_valve_transitions_total{state}.
 *
 * The same thread times one synchronize_rcu() per second and exports it as
 * the histogram metrics_adapter_rcu_grace_period_seconds: a grace period that
 * takes long is what makes reclaim fall behind (DESIGN 4a).
 *
 * Thread safety: valve_state() and valve_refuses_writes() are a relaxed
 * atomic load, safe anywhere; valve_start/valve_stop from main only.
 */

#include <stddef.h>
#include <stdint.h>

struct store;

enum valve_state {
    VALVE_OK = 0,
    VALVE_SOFT = 1,
    VALVE_HARD = 2,
};

struct valve_config {
    uint64_t limit_bytes; /* 0: the valve is off (the thread still samples and times grace periods) */
    double soft_fraction; /* (0, 1]; 0 means the default 0.9 */
    unsigned interval_ms; /* 0 means 100 */
};

/* The seconds a 503 asks the sender to wait (Retry-After). */
#define VALVE_RETRY_AFTER "5"

/*
 * valve_parse - the flags' values into @out.
 * @limit: "auto" (80 % of the cgroup's memory limit when there is one, off
 *         otherwise), "0" (off) or a size with K/M/G/Ki/Mi/Gi suffixes.
 * @fraction: a decimal in (0, 1].
 * Returns 0 or -EINVAL with a one-line message naming the flag in @err.
 */
int valve_parse(const char *limit, const char *fraction, struct valve_config *out, char *err, size_t errlen);

/*
 * valve_cgroup_limit - the memory limit of the process's cgroup: v2
 * memory.max, else v1 memory.limit_in_bytes; 0 when there is none ("max", or
 * v1's "unlimited" near 2^63). @root is the cgroup file-system mount point
 * ("/sys/fs/cgroup"; tests pass a directory of their own).
 */
uint64_t valve_cgroup_limit(const char *root);

/*
 * valve_next_state - the state after one sample (the valve's whole policy,
 * pure, for tests). @soft_bytes <= @limit; @limit == 0 is always VALVE_OK.
 */
enum valve_state valve_next_state(enum valve_state cur, uint64_t rss, uint64_t limit, uint64_t soft_bytes);

/* The process's resident set, in bytes, from /proc/self/statm; 0 if unreadable. */
uint64_t valve_rss_bytes(void);

/*
 * valve_start - start the sampler thread, acting on @st (which outlives
 * valve_stop()). Registers the valve's metrics with selfmetrics.
 * Returns 0 or a negative errno. One valve per process.
 */
int valve_start(const struct valve_config *cfg, struct store *st);
/* Stop and join the thread; the store's refuse-new flag is left off. */
void valve_stop(void);

/* The current state (relaxed load). */
enum valve_state valve_state(void);
/* Count one remote-write request refused at the hard level
 * (metrics_adapter_memory_valve_refused_requests_total). */
void valve_note_refused(void);
/* Whether remote write must be refused with 503 now (the hard level). */
static inline int valve_refuses_writes(void)
{
    return valve_state() == VALVE_HARD;
}

#endif /* ADAPTER_VALVE_H */
