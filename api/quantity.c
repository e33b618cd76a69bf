/*
 * quantity: canonical resource.Quantity strings.
 *
 * DESIGN. Everything after the first step is exact decimal arithmetic on a
 * digit string, never floating-point: multiplying a double by 1000 and
 * rounding would misround values such as 1.0005 (stored as 1.000499999...)
 * and would hand a different answer than the shortest decimal a reader sees.
 *
 *   1. shortest round-trip decimal: the fewest significant digits (1..17)
 *      that strtod maps back to the same bits; this is what Go's
 *      strconv.FormatFloat(v, 'g', -1, 64) and Python's repr() produce.
 *   2. value = digits * 10^exp10, digits without leading zeros.
 *   3. exp10 < -3: cut the digits below the milli place; if any cut digit
 *      is non-zero, add one unit at the milli place (away from zero: the
 *      sign is kept apart, so this is the magnitude that grows). A value
 *      whose digits all lie below the milli place becomes 1m.
 *   4. canonical form, as apimachinery's AsCanonicalBytes: strip trailing
 *      zeros into the exponent, then lower the exponent to a multiple of
 *      three by appending zeros, and pick the DecimalSI suffix for it.
 */
#include "quantity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for 17 digits, a carry digit and two padding zeros. */
#define DIGITS_MAX 24

struct decimal {
    char d[DIGITS_MAX]; /* significant digits, '0'..'9', no leading zero */
    int n;              /* number of digits */
    int exp10;          /* value = d * 10^exp10 */
};

/* Whether @prec significant digits give back @v; leaves them in @tmp. */
static int round_trips(double v, int prec, char *tmp, size_t size)
{
    snprintf(tmp, size, "%.*e", prec - 1, v);
    double back = strtod(tmp, NULL);
    return memcmp(&back, &v, sizeof(v)) == 0;
}

/*
 * Step 1 and 2: the shortest decimal that strtod maps back to |v|. If p
 * digits round-trip, so do p + 1 (the nearest (p+1)-digit decimal is at
 * least as close to v as the p-digit one), so the precision can be searched:
 * 1 and 2 digits first (the round values gauges carry), then 15, which most
 * results of arithmetic (rates, sums) fail and need 16 or 17; below 15 by
 * bisection. At most 6 conversions instead of up to 17.
 */
static void shortest_decimal(double v, struct decimal *dec)
{
    char tmp[40];
    int hi;
    if (round_trips(v, 1, tmp, sizeof tmp)) {
        hi = 1;
    } else if (round_trips(v, 2, tmp, sizeof tmp)) {
        hi = 2;
    } else if (!round_trips(v, 15, tmp, sizeof tmp)) {
        hi = round_trips(v, 16, tmp, sizeof tmp) ? 16 : 17; /* 17 digits always round-trip */
        if (hi == 17)
            snprintf(tmp, sizeof tmp, "%.16e", v);
    } else {
        int lo = 3;
        hi = 15;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (round_trips(v, mid, tmp, sizeof tmp))
                hi = mid;
            else
                lo = mid + 1;
        }
        round_trips(v, hi, tmp, sizeof tmp);
    }
    /* tmp is "d.ddde+XX" with hi significant digits. */
    const char *p = tmp;
    dec->n = 0;
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9')
            dec->d[dec->n++] = *p;
    }
    int e = atoi(p + 1);
    dec->exp10 = e - (dec->n - 1);
}

/* Add one unit at the last digit, carrying into a new leading digit. */
static void increment(struct decimal *dec)
{
    int i = dec->n - 1;
    while (i >= 0 && dec->d[i] == '9') {
        dec->d[i] = '0';
        i--;
    }
    if (i >= 0) {
        dec->d[i]++;
        return;
    }
    memmove(dec->d + 1, dec->d, (size_t)dec->n);
    dec->d[0] = '1';
    dec->n++;
}

/* Step 3: round the magnitude up (away from zero) to a multiple of 10^-3. */
static void round_up_to_milli(struct decimal *dec)
{
    if (dec->exp10 >= -3)
        return;
    int drop = -3 - dec->exp10; /* digits below the milli place */
    if (drop >= dec->n) {
        /* all digits are sub-milli and the value is non-zero */
        dec->d[0] = '1';
        dec->n = 1;
        dec->exp10 = -3;
        return;
    }
    int keep = dec->n - drop;
    int inexact = 0;
    for (int i = keep; i < dec->n; i++)
        inexact |= dec->d[i] != '0';
    dec->n = keep;
    dec->exp10 = -3;
    if (inexact)
        increment(dec);
}

/* Step 4: trailing zeros into the exponent, exponent to a multiple of 3. */
static void to_canonical_form(struct decimal *dec)
{
    while (dec->n > 1 && dec->d[dec->n - 1] == '0') {
        dec->n--;
        dec->exp10++;
    }
    int r = ((dec->exp10 % 3) + 3) % 3;
    for (int i = 0; i < r; i++)
        dec->d[dec->n++] = '0';
    dec->exp10 -= r;
}

static const char *si_suffix(int exp10)
{
    switch (exp10) {
    case -3:
        return "m";
    case 0:
        return "";
    case 3:
        return "k";
    case 6:
        return "M";
    case 9:
        return "G";
    case 12:
        return "T";
    case 15:
        return "P";
    case 18:
        return "E";
    }
    return NULL;
}

size_t api_quantity_format(double v, char *out, size_t cap)
{
    char tmp[API_QUANTITY_MAX];
    int len;

    if (!isfinite(v))
        return 0;
    if (v == 0) { /* also -0.0, which Kubernetes writes as "0" too */
        len = snprintf(tmp, sizeof(tmp), "0");
    } else {
        struct decimal dec;
        shortest_decimal(v < 0 ? -v : v, &dec);
        round_up_to_milli(&dec);
        to_canonical_form(&dec);
        const char *suffix = si_suffix(dec.exp10);
        if (suffix)
            len = snprintf(tmp, sizeof(tmp), "%s%.*s%s", v < 0 ? "-" : "", dec.n, dec.d, suffix);
        else
            len = snprintf(tmp, sizeof(tmp), "%s%.*se%d", v < 0 ? "-" : "", dec.n, dec.d, dec.exp10);
    }
    if (len <= 0 || (size_t)len >= cap)
        return 0;
    memcpy(out, tmp, (size_t)len + 1);
    return (size_t)len;
}
