/* Unit test of api_quantity_format: the DESIGN 6 table and edge cases. */
#include "quantity.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK_Q(v, want)                                                                                     \
    do {                                                                                                     \
        char got_[API_QUANTITY_MAX];                                                                         \
        size_t n_ = api_quantity_format((v), got_, sizeof(got_));                                            \
        if (n_ == 0 || strcmp(got_, (want)) != 0 || n_ != strlen(want)) {                                    \
            fprintf(stderr, "%s:%d: format(%s = %.17g): got \"%s\" (len %zu), want \"%s\"\n", __FILE__,      \
                    __LINE__, #v, (double)(v), n_ ? got_ : "", n_, (want));                                  \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

#define CHECK_REFUSED(v)                                                                                     \
    do {                                                                                                     \
        char got_[API_QUANTITY_MAX] = "untouched";                                                           \
        size_t n_ = api_quantity_format((v), got_, sizeof(got_));                                            \
        if (n_ != 0 || strcmp(got_, "untouched") != 0) {                                                     \
            fprintf(stderr, "%s:%d: format(%s): got %zu \"%s\", want refusal\n", __FILE__, __LINE__, #v, n_, \
                    got_);                                                                                   \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

int main(void)
{
    /* The table of DESIGN 6. */
    CHECK_Q(1.5, "1500m");
    CHECK_Q(2000, "2k");
    CHECK_Q(0.25, "250m");
    CHECK_Q(0, "0");
    CHECK_Q(0.1, "100m");
    CHECK_Q(1.1, "1100m");
    CHECK_Q(0.0001, "1m");
    CHECK_Q(1536, "1536");
    CHECK_Q(-2.5, "-2500m");

    /* Integers: apimachinery keeps 1500 as is, moves 15000 to k. */
    CHECK_Q(1, "1");
    CHECK_Q(10, "10");
    CHECK_Q(100, "100");
    CHECK_Q(1000, "1k");
    CHECK_Q(1500, "1500");
    CHECK_Q(15000, "15k");
    CHECK_Q(150000, "150k");
    CHECK_Q(1e6, "1M");
    CHECK_Q(1.5e6, "1500k");
    CHECK_Q(1234567, "1234567");
    CHECK_Q(1e9, "1G");
    CHECK_Q(1e12, "1T");
    CHECK_Q(1e15, "1P");
    CHECK_Q(1e18, "1E");
    CHECK_Q(2.5e18, "2500P");
    CHECK_Q(-7e3, "-7k");

    /* Beyond E: no DecimalSI suffix, decimal exponent as CanonicalizeBytes. */
    CHECK_Q(1e21, "1e21");
    CHECK_Q(1e22, "10e21");
    CHECK_Q(1.5e21, "1500E");
    CHECK_Q(1e300, "1e300");
    CHECK_Q(1.7976931348623157e308, "179769313486231570e291");
    CHECK_Q(-1e24, "-1e24");

    /* Fractions: rounded away from zero to milli, from the shortest decimal. */
    CHECK_Q(0.001, "1m");
    CHECK_Q(0.0011, "2m");
    CHECK_Q(0.999, "999m");
    CHECK_Q(0.9991, "1");
    CHECK_Q(0.9999999, "1");
    CHECK_Q(1.0005, "1001m"); /* 1.0005 is stored as 1.000499999..., the shortest decimal is 1.0005 */
    CHECK_Q(1.0001, "1001m");
    CHECK_Q(2.675, "2675m");
    CHECK_Q(123.456, "123456m");
    CHECK_Q(123.4561, "123457m");
    CHECK_Q(999.9999, "1k");
    CHECK_Q(999999.9999, "1M");
    CHECK_Q(12.3, "12300m");
    CHECK_Q(-0.0001, "-1m");
    CHECK_Q(-0.0011, "-2m");
    CHECK_Q(-999.9999, "-1k");
    CHECK_Q(1.0 / 3.0, "334m");
    CHECK_Q(2.0 / 3.0, "667m");
    CHECK_Q(100.5, "100500m");

    /* Tiny magnitudes: a non-zero value is never "0". */
    CHECK_Q(5e-324, "1m");
    CHECK_Q(-5e-324, "-1m");
    CHECK_Q(2.2250738585072014e-308, "1m");
    CHECK_Q(1e-10, "1m");
    CHECK_Q(-0.0, "0");

    /* Large values that are not integers of a round exponent. */
    CHECK_Q(9007199254740993.0, "9007199254740992"); /* 2^53+1 is not a double */
    CHECK_Q(1e16 + 2, "10000000000000002");
    CHECK_Q(123456789012345680000.0, "123456789012345680k");

    /* NaN and infinities never reach the wire; a short buffer is refused. */
    CHECK_REFUSED(NAN);
    CHECK_REFUSED(-NAN);
    CHECK_REFUSED(INFINITY);
    CHECK_REFUSED(-INFINITY);
    {
        char small[5] = "xxxx";
        size_t n = api_quantity_format(1.5, small, sizeof(small)); /* "1500m" needs 6 */
        if (n != 0 || strcmp(small, "xxxx") != 0) {
            fprintf(stderr, "%s:%d: short buffer: got %zu \"%s\", want 0 and untouched\n", __FILE__, __LINE__,
                    n, small);
            failures++;
        }
        char exact[6];
        n = api_quantity_format(1.5, exact, sizeof(exact));
        if (n != 5 || strcmp(exact, "1500m") != 0) {
            fprintf(stderr, "%s:%d: exact buffer: got %zu \"%s\"\n", __FILE__, __LINE__, n, exact);
            failures++;
        }
    }

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_quantity: ok\n");
    return 0;
}
