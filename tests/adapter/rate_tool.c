/*
 * rate_tool: evaluates adapter/rate on samples read from stdin, for the
 * Prometheus parity test (tests/integration/test_rate_parity.py).
 *
 * Input:  first line "FN RANGE_START_MS RANGE_END_MS" (FN: rate, increase,
 *         irate), then one "T_MS VALUE" line per sample, oldest first.
 * Output: the value as "%.17g", or "none" when the range holds too few
 *         samples. Exit status 2 on malformed input.
 */
#include "rate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    char fn_name[16];
    int64_t start, end;
    enum rate_fn fn;
    if (scanf("%15s %" SCNd64 " %" SCNd64, fn_name, &start, &end) != 3 || rate_fn_parse(fn_name, &fn) != 0) {
        fprintf(stderr, "rate_tool: expected \"FN START_MS END_MS\"\n");
        return 2;
    }
    size_t n = 0, cap = 64;
    struct api_rw_sample *s = malloc(cap * sizeof(*s));
    int64_t t;
    double v;
    while (s && scanf("%" SCNd64 " %lf", &t, &v) == 2) {
        if (n == cap) {
            cap *= 2;
            struct api_rw_sample *grown = realloc(s, cap * sizeof(*s));
            if (!grown)
                break;
            s = grown;
        }
        s[n].timestamp_ms = t;
        s[n].value = v;
        n++;
    }
    if (!s || !feof(stdin)) {
        fprintf(stderr, "rate_tool: malformed sample line or out of memory after %zu samples\n", n);
        free(s);
        return 2;
    }
    double out;
    if (rate_eval(fn, s, n, start, end, &out) == 0)
        printf("%.17g\n", out);
    else
        printf("none\n");
    free(s);
    return 0;
}
