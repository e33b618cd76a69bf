/* Unit tests of api/expo.c: doubles the Prometheus way, escaping, sample lines. */
#include "expo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_OUT(b, want)                                                                                   \
    do {                                                                                                     \
        if (strcmp((b)->data ? (b)->data : "", (want)) != 0) {                                               \
            fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, (b)->data, (want));      \
            abort();                                                                                         \
        }                                                                                                    \
        buf_reset(b);                                                                                        \
    } while (0)

int main(void)
{
    struct buf b = BUF_INIT;
    static const struct {
        double v;
        const char *s;
    } dbl[] = {
        {0, "0"},
        {1, "1"},
        {-2.5, "-2.5"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {1e6, "1e+06"},
        {123456, "123456"},
        {1.5e-7, "1.5e-07"},
        {0.25, "0.25"},
        {9007199254740993.0, "9007199254740992"},
        {-0.0, "-0"},
    };
    for (size_t i = 0; i < sizeof(dbl) / sizeof(dbl[0]); i++) {
        expo_double(&b, dbl[i].v);
        CHECK_OUT(&b, dbl[i].s);
        /* Round trip is exact. */
        expo_double(&b, dbl[i].v);
        if (strtod(b.data, NULL) != dbl[i].v) {
            fprintf(stderr, "%s does not round-trip\n", b.data);
            abort();
        }
        buf_reset(&b);
    }
    expo_double(&b, INFINITY);
    CHECK_OUT(&b, "+Inf");
    expo_double(&b, -INFINITY);
    CHECK_OUT(&b, "-Inf");
    expo_double(&b, NAN);
    CHECK_OUT(&b, "NaN");

    expo_label_value(&b, "a\\b\"c\nd");
    CHECK_OUT(&b, "a\\\\b\\\"c\\nd");

    expo_header(&b, "x_total", "counter", "Help with \\ and\nnewline and \"quotes\".");
    CHECK_OUT(&b, "# HELP x_total Help with \\\\ and\\nnewline and \"quotes\".\n# TYPE x_total counter\n");

    const char *labels[] = {"pod", "web-1", "path", "/a\"b", NULL};
    expo_sample(&b, "x", labels, 0.5);
    CHECK_OUT(&b, "x{pod=\"web-1\",path=\"/a\\\"b\"} 0.5\n");
    expo_sample(&b, "x", NULL, NAN);
    CHECK_OUT(&b, "x NaN\n");
    const char *none[] = {NULL};
    expo_sample_u64(&b, "x", none, 18446744073709551615ull);
    CHECK_OUT(&b, "x 18446744073709551615\n");
    expo_sample_raw(&b, "y", "reason=\"dup\"", 3);
    CHECK_OUT(&b, "y{reason=\"dup\"} 3\n");
    expo_sample_raw(&b, "y", "", 4);
    CHECK_OUT(&b, "y 4\n");
    buf_free(&b);
    printf("test_expo: ok\n");
    return 0;
}
