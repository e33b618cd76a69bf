/* Unit tests of api/expo.c: doubles the Prometheus way, escaping, sample lines. */
#include "expo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "check.h"

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
        {9007199254740993.0, "9.007199254740992e+15"},
        {10, "10"},
        {100, "100"},
        {1234567, "1.234567e+06"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {0.00025, "0.00025"},
        {-123.456, "-123.456"},
        {1e21, "1e+21"},
        {5e-324, "5e-324"},
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

    /* Negotiation: what Prometheus 2.42 sends picks OpenMetrics. */
    CHECK(expo_negotiate("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                         "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1") ==
          EXPO_OPENMETRICS);
    CHECK(expo_negotiate(NULL) == EXPO_TEXT);
    CHECK(expo_negotiate("*/*") == EXPO_TEXT);
    CHECK(expo_negotiate("text/plain;version=0.0.4") == EXPO_TEXT);
    CHECK(expo_negotiate("application/openmetrics-text") == EXPO_OPENMETRICS);
    CHECK(expo_negotiate("application/openmetrics-text; version=1.0.0; q=0.2, text/plain; q=0.9") ==
          EXPO_TEXT);
    CHECK(expo_negotiate("application/openmetrics-text;version=0.0.1,text/plain;q=0.5") == EXPO_TEXT);
    CHECK(expo_negotiate("application/openmetrics-text;version=1.0.0;q=0") == EXPO_TEXT);
    CHECK(expo_accepts_gzip("gzip"));
    CHECK(expo_accepts_gzip("deflate, gzip;q=0.5"));
    CHECK(!expo_accepts_gzip("gzip;q=0"));
    CHECK(!expo_accepts_gzip("identity"));
    CHECK(!expo_accepts_gzip(NULL));

    /* OpenMetrics: counters lose _total in HELP/TYPE only; quotes escaped in HELP; # EOF. */
    expo_header(&b, "x_total", "counter", "Things \"done\".");
    expo_sample_raw(&b, "x_total", "code=\"200\"", 3);
    expo_header(&b, "odd", "counter", "No suffix.");
    expo_sample_raw(&b, "odd", NULL, 1);
    expo_header(&b, "g_total_size", "gauge", "A gauge.");
    expo_sample_raw(&b, "g_total_size", NULL, 2);
    expo_header(&b, "h_seconds", "histogram", "H.");
    buf_puts(&b, "h_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 0.5\nh_seconds_count 1\n");
    struct buf om = BUF_INIT;
    expo_to_openmetrics(b.data, b.len, &om);
    buf_reset(&b);
    CHECK_OUT(&om, "# HELP x Things \\\"done\\\".\n# TYPE x counter\nx_total{code=\"200\"} 3\n"
                   "# HELP odd No suffix.\n# TYPE odd unknown\nodd 1\n"
                   "# HELP g_total_size A gauge.\n# TYPE g_total_size gauge\ng_total_size 2\n"
                   "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
                   "h_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 0.5\nh_seconds_count 1\n# EOF\n");
    buf_free(&om);

    /* gzip round trip through zlib's own inflater. */
    char big[5000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 7);
    CHECK(expo_gzip(big, sizeof(big), &b) == 0);
    CHECK((unsigned char)b.data[0] == 0x1f && (unsigned char)b.data[1] == 0x8b);
    char back[6000];
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    CHECK(inflateInit2(&zs, 15 + 16) == Z_OK);
    zs.next_in = (Bytef *)b.data;
    zs.avail_in = (uInt)b.len;
    zs.next_out = (Bytef *)back;
    zs.avail_out = sizeof(back);
    CHECK(inflate(&zs, Z_FINISH) == Z_STREAM_END);
    CHECK(zs.total_out == sizeof(big) && memcmp(back, big, sizeof(big)) == 0);
    inflateEnd(&zs);
    buf_reset(&b);

    buf_free(&b);
    printf("test_expo: ok\n");
    return 0;
}
