#ifndef TESTS_ADAPTER_TEST_STORE_H
#define TESTS_ADAPTER_TEST_STORE_H

/* Helpers shared by the store's tests: label builders, one-sample writes (assertions: check.h). */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "store.h"

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
