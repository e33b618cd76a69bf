#ifndef TESTS_ADAPTER_T_CHECK_H
#define TESTS_ADAPTER_T_CHECK_H

/* Assertions for the adapter's unit tests: they print both operands and the line. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);                            \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_INT(a, b)                                                                                      \
    do {                                                                                                     \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                                              \
        if (t_a_ != t_b_) {                                                                                  \
            fprintf(stderr, "%s:%d: CHECK(%s == %s) failed: %lld vs %lld\n", __FILE__, __LINE__, #a, #b,     \
                    t_a_, t_b_);                                                                             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#define CHECK_STR(a, b)                                                                                      \
    do {                                                                                                     \
        const char *t_a_ = (a), *t_b_ = (b);                                                                 \
        if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0) {                                                     \
            fprintf(stderr, "%s:%d: CHECK(%s == %s) failed: \"%s\" vs \"%s\"\n", __FILE__, __LINE__, #a, #b, \
                    t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");                                         \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* @hay contains @needle. */
#define CHECK_HAS(hay, needle)                                                                               \
    do {                                                                                                     \
        const char *t_h_ = (hay), *t_n_ = (needle);                                                          \
        if (!t_h_ || !strstr(t_h_, t_n_)) {                                                                  \
            fprintf(stderr, "%s:%d: \"%s\" not found in:\n%s\n", __FILE__, __LINE__, t_n_,                   \
                    t_h_ ? t_h_ : "(null)");                                                                 \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

static inline double t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
