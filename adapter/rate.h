#ifndef ADAPTER_RATE_H
#define ADAPTER_RATE_H

/*
 * rate: Prometheus's rate(), increase() and irate() over one series' samples.
 *
 * The arithmetic follows promql/functions.go of Prometheus 2.42
 * (extrapolatedRate and instantValue) step for step, so that the adapter
 * and Prometheus give the same number for the same samples:
 *
 *   - the range vector holds the samples with rangeStart <= t <= rangeEnd
 *     (Prometheus 2.x selects a closed interval; 3.x made it left-open);
 *   - fewer than two samples in the range: no value;
 *   - counter resets (a value lower than its predecessor) add the value
 *     before the reset back in;
 *   - the increase is extrapolated to the range edges when the first/last
 *     sample lies within 1.1 average sample intervals of them, else by
 *     half an average interval; for counters, extrapolation towards the
 *     start never goes below a zero value (the zero-point clamp).
 *
 * The caller picks the window: the adapter ends it at the request's
 * arrival time (rangeEnd = now, rangeStart = now - window).
 * Pure functions, thread-safe.
 */

#include <stddef.h>
#include <stdint.h>

#include "remote_write.h" /* struct api_rw_sample: what store_series_snapshot() copies out */

enum rate_fn {
    RATE_FN_RATE,     /* per-second average rate, extrapolated */
    RATE_FN_INCREASE, /* increase over the range, extrapolated */
    RATE_FN_IRATE,    /* per-second rate between the last two samples */
};

/*
 * rate_eval: evaluate fn over the samples inside [range_start_ms, range_end_ms].
 * @fn: the function.
 * @s, @n: the series' samples, strictly increasing timestamps (oldest first,
 *         newest last); samples outside the range are ignored.
 * @range_start_ms, @range_end_ms: the range; the range duration used by rate()
 *         is range_end_ms - range_start_ms (Prometheus's [2m] gives 120000).
 * @out: written only on success.
 * Returns 0 on success; -ENODATA when the range holds fewer than two samples
 * (or, for irate, when the last two share a timestamp); -EINVAL when the
 * range is empty or reversed.
 */
int rate_eval(enum rate_fn fn, const struct api_rw_sample *s, size_t n, int64_t range_start_ms,
              int64_t range_end_ms, double *out);

/* rate_fn_parse: "rate", "increase" or "irate" to *fn. Returns 0 or -EINVAL. */
int rate_fn_parse(const char *name, enum rate_fn *fn);

#endif /* ADAPTER_RATE_H */
