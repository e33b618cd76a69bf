#ifndef API_QUANTITY_H
#define API_QUANTITY_H

/*
 * quantity: Kubernetes resource.Quantity strings for metric values.
 *
 * The HPA reads every value with MilliValue(), which rounds up to milli
 * units, so precision below a milli is wasted on the wire. A value is
 * written as Go's canonical DecimalSI form of
 *
 *   the shortest decimal that round-trips the double (0.1 is 0.1, not
 *   0.1000000000000000055), rounded away from zero to milli precision,
 *
 * that is: trailing zeros moved into an exponent, the exponent lowered to
 * a multiple of three, and the suffix for that exponent (m, "", k, M, G, T,
 * P, E). Exponents beyond E have no DecimalSI suffix; like apimachinery's
 * CanonicalizeBytes they are written in decimal-exponent form ("1e21").
 *
 *   1.5 -> "1500m"   2000 -> "2k"     0.25 -> "250m"   0 -> "0"
 *   0.1 -> "100m"    1.1 -> "1100m"   0.0001 -> "1m"   1536 -> "1536"
 *   1500 -> "1500"   15000 -> "15k"   -2.5 -> "-2500m" 1.5e21 -> "1500E"
 *
 * A non-zero value is never "0". NaN and infinities are refused so that
 * they never reach the wire. Thread-safe: no shared state.
 */

#include <stddef.h>

/* Longest string api_quantity_format can produce, NUL included:
 * sign, 17 significant digits, one carry digit, two padding zeros,
 * "e308". */
#define API_QUANTITY_MAX 32

/*
 * api_quantity_format: write the canonical Quantity string of v into out.
 * @v: the value.
 * @out: destination, NUL-terminated on success.
 * @cap: size of out; API_QUANTITY_MAX always suffices.
 * Returns the string length (>= 1) on success, 0 when v is NaN or infinite
 * or when cap is too small (out is then left untouched).
 */
size_t api_quantity_format(double v, char *out, size_t cap);

#endif /* API_QUANTITY_H */
