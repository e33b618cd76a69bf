/*
 * rate: Prometheus 2.42's extrapolatedRate and instantValue.
 *
 * DESIGN. The code mirrors promql/functions.go so that a reader can check it
 * line by line against upstream; the names are upstream's. The order of the
 * steps matters for parity: 2.42 clamps durationToStart to the counter's
 * zero point first and only then compares it with the extrapolation
 * threshold (later releases swapped the two, which changes results when the
 * zero point lies between half and 1.1 average intervals before the first
 * sample).
 */
#include "rate.h"

#include <errno.h>
#include <string.h>

/* Index of the first sample with t >= t_min (n when there is none). */
static size_t first_at_or_after(const struct api_rw_sample *s, size_t n, int64_t t_min)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s[mid].timestamp_ms < t_min)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* extrapolatedRate(..., isCounter = true, isRate) on points p[0..n-1]. */
static double extrapolated_rate(const struct api_rw_sample *p, size_t n, int64_t range_start,
                                int64_t range_end, int is_rate)
{
    double result = p[n - 1].value - p[0].value;
    double prev = p[0].value;
    for (size_t i = 1; i < n; i++) {
        if (p[i].value < prev) /* counter reset: the value before it was lost */
            result += prev;
        prev = p[i].value;
    }

    /* Duration between first/last samples and boundary of range. */
    double duration_to_start = (double)(p[0].timestamp_ms - range_start) / 1000;
    double duration_to_end = (double)(range_end - p[n - 1].timestamp_ms) / 1000;
    double sampled_interval = (double)(p[n - 1].timestamp_ms - p[0].timestamp_ms) / 1000;
    double avg_between = sampled_interval / (double)(n - 1);

    /* Counters cannot be negative: never extrapolate the start past the
     * point where the counter, on this slope, would have been zero. */
    if (result > 0 && p[0].value >= 0) {
        double duration_to_zero = sampled_interval * (p[0].value / result);
        if (duration_to_zero < duration_to_start)
            duration_to_start = duration_to_zero;
    }

    /* Extrapolate to an edge only when a sample is expected there (within
     * 1.1 average intervals); otherwise assume the series starts or ends
     * half an interval beyond its outermost sample. */
    double threshold = avg_between * 1.1;
    double extrapolate_to = sampled_interval;
    extrapolate_to += duration_to_start < threshold ? duration_to_start : avg_between / 2;
    extrapolate_to += duration_to_end < threshold ? duration_to_end : avg_between / 2;

    double factor = extrapolate_to / sampled_interval;
    if (is_rate)
        factor /= (double)(range_end - range_start) / 1000;
    return result * factor;
}

int rate_eval(enum rate_fn fn, const struct api_rw_sample *s, size_t n, int64_t range_start_ms,
              int64_t range_end_ms, double *out)
{
    if (range_end_ms <= range_start_ms)
        return -EINVAL;
    size_t first = first_at_or_after(s, n, range_start_ms);
    size_t end = first_at_or_after(s, n, range_end_ms);
    if (end < n && s[end].timestamp_ms == range_end_ms)
        end++; /* the range is closed at its end too */
    if (end < first + 2)
        return -ENODATA;

    const struct api_rw_sample *p = s + first;
    size_t count = end - first;
    switch (fn) {
    case RATE_FN_RATE:
    case RATE_FN_INCREASE:
        *out = extrapolated_rate(p, count, range_start_ms, range_end_ms, fn == RATE_FN_RATE);
        return 0;
    case RATE_FN_IRATE: {
        const struct api_rw_sample *last = &p[count - 1], *prev = &p[count - 2];
        int64_t interval = last->timestamp_ms - prev->timestamp_ms;
        if (interval == 0)
            return -ENODATA;
        /* instantValue: after a reset the last value is the increase. */
        double v = last->value < prev->value ? last->value : last->value - prev->value;
        *out = v / ((double)interval / 1000);
        return 0;
    }
    }
    return -EINVAL;
}

int rate_fn_parse(const char *name, enum rate_fn *fn)
{
    if (strcmp(name, "rate") == 0)
        *fn = RATE_FN_RATE;
    else if (strcmp(name, "increase") == 0)
        *fn = RATE_FN_INCREASE;
    else if (strcmp(name, "irate") == 0)
        *fn = RATE_FN_IRATE;
    else
        return -EINVAL;
    return 0;
}
