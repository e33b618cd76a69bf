#ifndef TESTS_ADAPTER_TEST_STORE_H
#define TESTS_ADAPTER_TEST_STORE_H

/* Helpers shared by the store's tests: assertions that print both operands, label builders. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);                            \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_OP(a, op, b)                                                                                   \
    do {                                                                                                     \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                                              \
        if (!(t_a_ op t_b_)) {                                                                               \
            fprintf(stderr, "%s:%d: CHECK(%s %s %s) failed: %lld vs %lld\n", __FILE__, __LINE__, #a, #op,    \
                    #b, t_a_, t_b_);                                                                         \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)
#define CHECK_EQ(a, b) CHECK_OP(a, ==, b)

#define CHECK_STR(a, alen, b)                                                                                \
    do {                                                                                                     \
        size_t t_l_ = (alen);                                                                                \
        if (t_l_ != strlen(b) || memcmp((a), (b), t_l_) != 0) {                                              \
            fprintf(stderr, "%s:%d: CHECK(%s == \"%s\") failed: \"%.*s\"\n", __FILE__, __LINE__, #a, (b),    \
                    (int)t_l_, (const char *)(a));                                                           \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* A label set built from "name", "value", ... NULL (must be given sorted). */
struct t_labels {
    struct api_rw_label l[16];
    size_t n;
};

static inline void t_labels_v(struct t_labels *ls, const char *const *kv)
{
    ls->n = 0;
    for (size_t i = 0; kv[i]; i += 2) {
        ls->l[ls->n].name = kv[i];
        ls->l[ls->n].name_len = (uint32_t)strlen(kv[i]);
        ls->l[ls->n].value = kv[i + 1];
        ls->l[ls->n].value_len = (uint32_t)strlen(kv[i + 1]);
        ls->n++;
    }
}

#define T_LABELS(ls, ...)                                                                                    \
    do {                                                                                                     \
        const char *const t_kv_[] = {__VA_ARGS__, NULL};                                                     \
        t_labels_v((ls), t_kv_);                                                                             \
    } while (0)

static inline double t_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write one sample; returns store_write's result and flushes the tally into the store. */
static inline int t_write1(struct store *st, const struct t_labels *ls, int64_t ts, double v)
{
    struct api_rw_sample s = {.value = v, .timestamp_ms = ts};
    struct store_tally t = {0};
    int r = store_write(st, ls->l, ls->n, &s, 1, &t);
    store_tally_flush(st, &t);
    return r;
}

#endif /* TESTS_ADAPTER_TEST_STORE_H */
