/*
 * expo: Prometheus text exposition writers. See expo.h.
 *
 * Doubles: Go's strconv.FormatFloat(v, 'g', -1, 64), which Prometheus's
 * clients use, prints the shortest digit string that parses back to the same
 * double. printf has no such mode, so we try precisions 1..17 with %g and keep
 * the first that round-trips (17 always does for IEEE doubles). Values are
 * usually integers or short decimals, so this stops after a few tries.
 */
#include "expo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void escaped(struct buf *b, const char *s, int quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (quote && *s == '"')
            rep = "\\\"";
        if (rep) {
            buf_append(b, run, (size_t)(s - run));
            buf_puts(b, rep);
            run = s + 1;
        }
    }
    buf_append(b, run, (size_t)(s - run));
}

void expo_header(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_puts(b, "# HELP ");
    buf_puts(b, name);
    buf_putc(b, ' ');
    escaped(b, help ? help : "", 0);
    buf_puts(b, "\n# TYPE ");
    buf_puts(b, name);
    buf_putc(b, ' ');
    buf_puts(b, type);
    buf_putc(b, '\n');
}

void expo_double(struct buf *b, double v)
{
    if (isnan(v)) {
        buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    buf_puts(b, tmp);
}

void expo_label_value(struct buf *b, const char *v)
{
    escaped(b, v ? v : "", 1);
}

static void labels_kv(struct buf *b, const char *const *labels)
{
    if (!labels || !labels[0])
        return;
    buf_putc(b, '{');
    for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
        if (i)
            buf_putc(b, ',');
        buf_puts(b, labels[i]);
        buf_puts(b, "=\"");
        expo_label_value(b, labels[i + 1]);
        buf_putc(b, '"');
    }
    buf_putc(b, '}');
}

void expo_sample(struct buf *b, const char *name, const char *const *labels, double v)
{
    buf_puts(b, name);
    labels_kv(b, labels);
    buf_putc(b, ' ');
    expo_double(b, v);
    buf_putc(b, '\n');
}

void expo_sample_u64(struct buf *b, const char *name, const char *const *labels, uint64_t v)
{
    buf_puts(b, name);
    labels_kv(b, labels);
    buf_printf(b, " %llu\n", (unsigned long long)v);
}

void expo_sample_raw(struct buf *b, const char *name, const char *labels, uint64_t v)
{
    buf_puts(b, name);
    if (labels && *labels) {
        buf_putc(b, '{');
        buf_puts(b, labels);
        buf_putc(b, '}');
    }
    buf_printf(b, " %llu\n", (unsigned long long)v);
}
