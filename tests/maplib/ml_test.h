#ifndef TESTS_MAPLIB_ML_TEST_H
#define TESTS_MAPLIB_ML_TEST_H

/*
 * Helpers shared by maplib's tests: assertion macros that print both operands
 * and the line, a counted entry type, deadlines and RSS.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "maplib/maplib.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);                            \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_OP(a, op, b)                                                                                   \
    do {                                                                                                     \
        long long ma_a_ = (long long)(a), ma_b_ = (long long)(b);                                            \
        if (!(ma_a_ op ma_b_)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s %s %s) failed: %lld vs %lld\n", __FILE__, __LINE__, #a, #op,    \
                    #b, ma_a_, ma_b_);                                                                       \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_EQ(a, b) CHECK_OP(a, ==, b)
#define CHECK_PTR(a, b)                                                                                      \
    do {                                                                                                     \
        const void *ma_pa_ = (a), *ma_pb_ = (b);                                                             \
        if (ma_pa_ != ma_pb_) {                                                                              \
            fprintf(stderr, "%s:%d: CHECK(%s == %s) failed: %p vs %p\n", __FILE__, __LINE__, #a, #b, ma_pa_, \
                    ma_pb_);                                                                                 \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

static inline double t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until cond holds or the deadline passes; evaluates to the condition. */
#define WAIT_UNTIL(cond, seconds)                                                                            \
    ({                                                                                                       \
        double ma_end_ = t_now() + (seconds);                                                                \
        int ma_ok_;                                                                                          \
        while (!(ma_ok_ = !!(cond)) && t_now() < ma_end_)                                                    \
            usleep(1000);                                                                                    \
        ma_ok_;                                                                                              \
    })

/* A test entry: the node, a value, the key bytes inline. */
struct t_ent {
    struct ml_node node;
    uint64_t value;
    uint32_t state; /* 0 live, POISON after free (see t_reclaim) */
    uint32_t klen;
    char key[24];
};

#define T_POISON 0xdeadbeefu

extern uint64_t t_allocs, t_frees; /* atomics */

static inline struct t_ent *t_ent_new(const char *key, uint64_t value)
{
    struct t_ent *e = calloc(1, sizeof(*e));
    CHECK(e);
    e->klen = (uint32_t)strlen(key);
    CHECK(e->klen < sizeof(e->key));
    memcpy(e->key, key, e->klen);
    e->value = value;
    ml_node_init(&e->node, e->key, e->klen);
    __atomic_fetch_add(&t_allocs, 1, __ATOMIC_RELAXED);
    return e;
}

static inline void t_ent_free(struct t_ent *e)
{
    __atomic_fetch_add(&t_frees, 1, __ATOMIC_RELAXED);
    free(e);
}

static inline void t_reclaim(struct ml_node *n)
{
    t_ent_free(caa_container_of(n, struct t_ent, node));
}

static inline struct t_ent *t_ent_of(struct ml_node *n)
{
    return n ? caa_container_of(n, struct t_ent, node) : NULL;
}

static inline long t_rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    CHECK(f);
    CHECK(fscanf(f, "%ld %ld", &size, &res) == 2);
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

#define T_DEFINE_COUNTERS uint64_t t_allocs, t_frees

#endif /* TESTS_MAPLIB_ML_TEST_H */
