#ifndef TESTS_MAPLIB_ML_TEST_H
#define TESTS_MAPLIB_ML_TEST_H

/*
 * Helpers shared by maplib's tests: a counted entry type and RSS (assertions,
 * the clock and deadlines: check.h).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "maplib/maplib.h"

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
