#ifndef TESTS_COMMON_CHECK_H
#define TESTS_COMMON_CHECK_H

/*
 * Assertions for the C tests: on failure they print the line, the expression
 * and both operands, then abort. Also a monotonic clock and a deadline wait.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c);                            \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* Integers compared as long long with any comparison operator. */
#define CHECK_OP(a, op, b)                                                                                   \
    do {                                                                                                     \
        long long ck_a_ = (long long)(a), ck_b_ = (long long)(b);                                            \
        if (!(ck_a_ op ck_b_)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s %s %s) failed: %lld vs %lld\n", __FILE__, __LINE__, #a, #op,    \
                    #b, ck_a_, ck_b_);                                                                       \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)
#define CHECK_EQ(a, b) CHECK_OP(a, ==, b)

#define CHECK_PTR(a, b)                                                                                      \
    do {                                                                                                     \
        const void *ck_pa_ = (a), *ck_pb_ = (b);                                                             \
        if (ck_pa_ != ck_pb_) {                                                                              \
            fprintf(stderr, "%s:%d: CHECK(%s == %s) failed: %p vs %p\n", __FILE__, __LINE__, #a, #b, ck_pa_, \
                    ck_pb_);                                                                                 \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* Two NUL-terminated strings, neither NULL. */
#define CHECK_STR(a, b)                                                                                      \
    do {                                                                                                     \
        const char *ck_a_ = (a), *ck_b_ = (b);                                                               \
        if (!ck_a_ || !ck_b_ || strcmp(ck_a_, ck_b_) != 0) {                                                 \
            fprintf(stderr, "%s:%d: CHECK(%s == %s) failed: \"%s\" vs \"%s\"\n", __FILE__, __LINE__, #a, #b, \
                    ck_a_ ? ck_a_ : "(null)", ck_b_ ? ck_b_ : "(null)");                                     \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* @alen bytes at @a equal the NUL-terminated string @b. */
#define CHECK_MEM(a, alen, b)                                                                                \
    do {                                                                                                     \
        size_t ck_l_ = (alen);                                                                               \
        if (ck_l_ != strlen(b) || memcmp((a), (b), ck_l_) != 0) {                                            \
            fprintf(stderr, "%s:%d: CHECK(%s == \"%s\") failed: \"%.*s\"\n", __FILE__, __LINE__, #a, (b),    \
                    (int)ck_l_, (const char *)(a));                                                          \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* @hay contains @needle. */
#define CHECK_HAS(hay, needle)                                                                               \
    do {                                                                                                     \
        const char *ck_h_ = (hay), *ck_n_ = (needle);                                                        \
        if (!ck_h_ || !strstr(ck_h_, ck_n_)) {                                                               \
            fprintf(stderr, "%s:%d: \"%s\" not found in:\n%s\n", __FILE__, __LINE__, ck_n_,                  \
                    ck_h_ ? ck_h_ : "(null)");                                                               \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* Seconds on the monotonic clock. */
static inline double t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until cond holds or the deadline passes; evaluates to the condition. */
#define WAIT_UNTIL(cond, seconds)                                                                            \
    ({                                                                                                       \
        double ck_end_ = t_now() + (seconds);                                                                \
        int ck_ok_;                                                                                          \
        while (!(ck_ok_ = !!(cond)) && t_now() < ck_end_)                                                    \
            usleep(1000);                                                                                    \
        ck_ok_;                                                                                              \
    })

#endif /* TESTS_COMMON_CHECK_H */
