/*
 * Unit test of adapter/rate: rate(), increase() and irate() against values
 * computed by hand from Prometheus 2.42's extrapolatedRate/instantValue.
 * Timestamps in the tables are seconds; the helpers convert to ms.
 */
#include "rate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures;

/* A sample at `sec` seconds with value `val`. */
#define S(sec, val)                                                                                          \
    {                                                                                                        \
        .value = (val), .timestamp_ms = (int64_t)((sec)*1000)                                                \
    }
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void check(int line, enum rate_fn fn, const struct api_rw_sample *s, size_t n, double start_s,
                  double end_s, int want_rc, double want)
{
    double got = -12345;
    int rc = rate_eval(fn, s, n, (int64_t)(start_s * 1000), (int64_t)(end_s * 1000), &got);
    if (rc != want_rc) {
        fprintf(stderr, "%s:%d: rc %d, want %d\n", __FILE__, line, rc, want_rc);
        failures++;
        return;
    }
    if (rc != 0) {
        if (got != -12345) {
            fprintf(stderr, "%s:%d: out written on failure (%g)\n", __FILE__, line, got);
            failures++;
        }
        return;
    }
    if (fabs(got - want) > 1e-12 * fabs(want) + 1e-15) {
        fprintf(stderr, "%s:%d: got %.17g, want %.17g\n", __FILE__, line, got, want);
        failures++;
    }
}

#define CHECK(fn, s, start, end, want)     check(__LINE__, fn, s, N(s), start, end, 0, want)
#define CHECK_RC(fn, s, n, start, end, rc) check(__LINE__, fn, s, n, start, end, rc, 0)

int main(void)
{
    /* A: steady counter v = t, every 10 s from 10 to 120, range [0,120].
     * increase 110 over 110 s, start 10 s < 1.1*10 away: extrapolated to
     * 120 s -> 120; rate 1/s. The sample past the range end is ignored. */
    static const struct api_rw_sample a[] = {S(10, 10),   S(20, 20),   S(30, 30),   S(40, 40), S(50, 50),
                                             S(60, 60),   S(70, 70),   S(80, 80),   S(90, 90), S(100, 100),
                                             S(110, 110), S(120, 120), S(130, 9999)};
    CHECK(RATE_FN_INCREASE, a, 0, 120, 120);
    CHECK(RATE_FN_RATE, a, 0, 120, 1.0);
    CHECK(RATE_FN_IRATE, a, 0, 120, 1.0);

    /* B: zero-point clamp. v = t - 25 from t = 30: the counter was 0 at
     * t = 25, 5 s before the first sample, closer than the range start
     * (30 s away). increase = 90 * (90 + 5) / 90 = 95; rate 95/120. */
    static const struct api_rw_sample b[] = {S(30, 5),  S(40, 15), S(50, 25),  S(60, 35),  S(70, 45),
                                             S(80, 55), S(90, 65), S(100, 75), S(110, 85), S(120, 95)};
    CHECK(RATE_FN_INCREASE, b, 0, 120, 95);
    CHECK(RATE_FN_RATE, b, 0, 120, 95.0 / 120);

    /* C: counter reset 120 -> 5. result = 25 - 100 + 120 = 45 over 50 s,
     * start 10 s away (zero point 111 s away: no clamp): 45 * 60/50 = 54. */
    static const struct api_rw_sample c[] = {S(10, 100), S(20, 110), S(30, 120),
                                             S(40, 5),   S(50, 15),  S(60, 25)};
    CHECK(RATE_FN_INCREASE, c, 0, 60, 54);
    CHECK(RATE_FN_RATE, c, 0, 60, 0.9);
    CHECK(RATE_FN_IRATE, c, 0, 60, 1.0);
    /* irate across the reset: the value after the reset is the increase. */
    CHECK(RATE_FN_IRATE, c, 0, 45, 5.0 / 10);

    /* D: samples far from both edges (50 s > 1.1*10 s): extrapolate half an
     * interval each side. increase = 20 * (20 + 5 + 5) / 20 = 30. */
    static const struct api_rw_sample d[] = {S(50, 50), S(60, 60), S(70, 70)};
    CHECK(RATE_FN_INCREASE, d, 0, 120, 30);
    CHECK(RATE_FN_RATE, d, 0, 120, 0.25);

    /* E: 2.42 order of the clamp and the threshold. Zero point 8 s before
     * the first sample (between 0.5 and 1.1 intervals): 2.42 clamps 60 -> 8
     * first, then 8 < 11 extrapolates by 8: 60 * 68/60 = 68 (releases that
     * test the threshold first would give 65). */
    static const struct api_rw_sample e[] = {S(60, 8),   S(70, 18),  S(80, 28), S(90, 38),
                                             S(100, 48), S(110, 58), S(120, 68)};
    CHECK(RATE_FN_INCREASE, e, 0, 120, 68);

    /* F: the range is closed at both ends, as in Prometheus 2.x. */
    static const struct api_rw_sample f[] = {S(-0.001, 1000), S(0, 0), S(60, 60), S(60.001, 7)};
    CHECK(RATE_FN_INCREASE, f, 0, 60, 60);
    CHECK(RATE_FN_RATE, f, 0, 60, 1.0);

    /* G: negative first value: no zero clamp. v = t - 100, range [0,60],
     * samples 20..60: increase 40 over 40 s, start 20 s away > 11 -> +5,
     * end 0: 40 * 45/40 = 45. */
    static const struct api_rw_sample g[] = {S(20, -80), S(30, -70), S(40, -60), S(50, -50), S(60, -40)};
    CHECK(RATE_FN_INCREASE, g, 0, 60, 45);

    /* H: no increase at all: 0, whatever the extrapolation. */
    static const struct api_rw_sample h[] = {S(10, 7), S(20, 7), S(30, 7)};
    CHECK(RATE_FN_RATE, h, 0, 60, 0);

    /* Fewer than two samples in the range: no value. */
    CHECK_RC(RATE_FN_RATE, a, 0, 0, 120, -ENODATA);
    CHECK_RC(RATE_FN_RATE, a, 1, 0, 120, -ENODATA);
    CHECK_RC(RATE_FN_RATE, a, N(a), 115, 125, -ENODATA); /* only 120 in [115,125] */
    CHECK_RC(RATE_FN_IRATE, a, N(a), 200, 300, -ENODATA);
    CHECK_RC(RATE_FN_INCREASE, a, N(a), 0, 9.999, -ENODATA);
    CHECK_RC(RATE_FN_RATE, a, N(a), 120, 120, -EINVAL);
    CHECK_RC(RATE_FN_RATE, a, N(a), 120, 0, -EINVAL);

    /* Function names as the rules use them. */
    enum rate_fn fn;
    if (rate_fn_parse("rate", &fn) != 0 || fn != RATE_FN_RATE || rate_fn_parse("increase", &fn) != 0 ||
        fn != RATE_FN_INCREASE || rate_fn_parse("irate", &fn) != 0 || fn != RATE_FN_IRATE ||
        rate_fn_parse("delta", &fn) != -EINVAL) {
        fprintf(stderr, "%s:%d: rate_fn_parse\n", __FILE__, __LINE__);
        failures++;
    }

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_rate: ok\n");
    return 0;
}
