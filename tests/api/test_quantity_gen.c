/*
 * Generator for test_quantity_oracle.py: formats a deterministic set of
 * doubles (integers, fractions, tiny and huge magnitudes, negatives, raw bit
 * patterns) and prints one line per value: the double in C99 hex-float form
 * ("%a", exact), a tab, and the Quantity string, or "REFUSED" when the
 * formatter declined (NaN, infinities). Usage: test_quantity_gen [count].
 */
#include "quantity.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* splitmix64: deterministic and good enough to spread bits. */
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void emit(double v)
{
    char q[API_QUANTITY_MAX];
    size_t n = api_quantity_format(v, q, sizeof(q));
    printf("%a\t%s\n", v, n ? q : "REFUSED");
}

static double pick(int kind)
{
    switch (kind) {
    case 0: /* small integers */
        return (double)(rng() % 100000);
    case 1: /* large integers up to 2^53 */
        return (double)(rng() >> 11);
    case 2: /* round integers: k * 10^e */
        return (double)(rng() % 1000) * pow(10, (double)(rng() % 19));
    case 3: /* milli fractions, often exact in decimal */
        return (double)(rng() % 10000000) / 1000.0;
    case 4: /* fractions with long expansions */
        return (double)(rng() % 100000) / (double)(rng() % 997 + 1);
    case 5: /* uniform mantissa over many decades, -12..+30 */
        return ((double)(rng() >> 11) / 9007199254740992.0) * pow(10, (double)((int)(rng() % 43) - 12));
    case 6: { /* finite raw bit patterns: any exponent, subnormals */
        for (;;) {
            uint64_t bits = rng();
            double d;
            memcpy(&d, &bits, sizeof(d));
            if (isfinite(d))
                return d;
        }
    }
    case 7: /* near a milli boundary: x.xxx plus or minus a hair */
        return (double)(rng() % 1000000) / 1000.0 + ((rng() & 1) ? 1e-9 : -1e-9);
    default: /* tiny */
        return ldexp((double)(rng() % 1000 + 1), -(int)(rng() % 1070));
    }
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? strtol(argv[1], NULL, 10) : 9000;
    static const double fixed[] = {0,      -0.0,   1.5,    2000,     0.25,   0.1,
                                   1.1,    0.0001, 1536,   -2.5,     1500,   15000,
                                   1e18,   1e21,   1.5e21, 1e300,    5e-324, 0.9995,
                                   0.0005, 0.0015, 0.9999, 999.9995, 1.0005, 1.7976931348623157e308};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        emit(fixed[i]);
        emit(-fixed[i]);
    }
    emit(NAN);
    emit(INFINITY);
    emit(-INFINITY);
    for (long i = 0; i < count; i++) {
        double v = pick((int)(rng() % 9));
        emit((rng() & 3) == 0 ? -v : v);
    }
    return 0;
}
