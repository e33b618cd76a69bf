/*
 * libFuzzer driver: the Quantity formatter (api/quantity.c) and its property
 * "the string parses back to the value at the emitted precision".
 *
 * The first 8 bytes are a double (every bit pattern: NaN, infinities,
 * subnormals, huge exponents). The string must be canonical DecimalSI
 * (digits, one suffix or a decimal exponent, no trailing "000" before a
 * suffix that has a larger neighbour), and parsed back exactly (strtod of
 * mantissa and exponent) it must be the value rounded away from zero to
 * milli precision: same sign, never smaller in magnitude, at most one milli
 * larger (plus the double's own rounding).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(double v, const char *s, const char *why)
{
    fprintf(stderr, "quantity %.17g -> \"%s\": %s\n", v, s, why);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    double v;
    if (size < sizeof v)
        return 0;
    memcpy(&v, data, sizeof v);
    char s[API_QUANTITY_MAX];
    size_t n = api_quantity_format(v, s, sizeof s);
    if (!isfinite(v)) {
        if (n)
            fail(v, s, "a non-finite value was formatted");
        return 0;
    }
    if (n == 0 || n >= sizeof s || strlen(s) != n)
        fail(v, "", "no string or a wrong length");
    if (v == 0) {
        if (strcmp(s, "0") != 0)
            fail(v, s, "zero is not \"0\"");
        return 0;
    }
    /* Shape: -?digits then a suffix or eNNN. */
    const char *p = s;
    int neg = *p == '-';
    p += neg;
    const char *d0 = p;
    while (*p >= '0' && *p <= '9')
        p++;
    size_t nd = (size_t)(p - d0);
    if (nd == 0 || (nd > 1 && *d0 == '0'))
        fail(v, s, "mantissa empty or with a leading zero");
    static const struct {
        const char *suffix;
        int exp;
    } sfx[] = {{"m", -3}, {"", 0}, {"k", 3}, {"M", 6}, {"G", 9}, {"T", 12}, {"P", 15}, {"E", 18}};
    int exp = 0, found = 0, top = 0;
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++)
        if (strcmp(p, sfx[i].suffix) == 0) {
            exp = sfx[i].exp;
            found = 1;
            top = i == sizeof sfx / sizeof sfx[0] - 1;
        }
    if (!found) {
        char *end;
        if (*p != 'e' || p[1] < '0' || p[1] > '9')
            fail(v, s, "unknown suffix");
        long e = strtol(p + 1, &end, 10);
        if (*end || e % 3 || e < 21)
            fail(v, s, "bad decimal exponent");
        exp = (int)e;
        top = 1;
    }
    if (!top && nd > 3 && memcmp(p - 3, "000", 3) == 0)
        fail(v, s, "not canonical: trailing zeros before a suffix");
    if (neg != (v < 0))
        fail(v, s, "sign");
    /* Parse back exactly as a decimal. */
    char back[64];
    snprintf(back, sizeof back, "%.*se%d", (int)nd, d0, exp);
    double q = strtod(back, NULL);
    double av = fabs(v);
    if (!(q >= av))
        fail(v, s, "smaller in magnitude than the value");
    if (!(q - av <= 0.001 + av * 4e-16))
        fail(v, s, "more than one milli above the value");
    return 0;
}
