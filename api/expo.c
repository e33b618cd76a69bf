/*
 * expo: Prometheus text exposition writers. See expo.h.
 *
 * Doubles: Go's strconv.FormatFloat(v, 'g', -1, 64), which Prometheus's
 * clients use, prints the shortest digit string that parses back to the same
 * double. printf has no such mode, so we try precisions 1..17 with %e and keep
 * the first that round-trips (17 always does for IEEE doubles), then lay the
 * digits out as Go does. Values are usually integers or short decimals, so
 * this stops after a few tries.
 */
#include "expo.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

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
    /* The shortest digit string that round-trips, then Go's layout for
     * 'g' with shortest precision: exponent form when the decimal exponent
     * is below -4 or at least 6 ("1e+06", "1e-05"), plain otherwise ("10",
     * "0.001", "123456"). */
    char tmp[48];
    int prec;
    for (prec = 1; prec < 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
    int exp = atoi(strchr(tmp, 'e') + 1);
    if (exp >= -4 && exp < 6) {
        int decimals = prec - 1 - exp;
        snprintf(tmp, sizeof(tmp), "%.*f", decimals > 0 ? decimals : 0, v);
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

/*
 * Accept parsing. Media ranges are "type/subtype *( ; param )" separated by
 * commas; we only need the type, the version parameter and q. Anything we do
 * not understand (a bad q) counts as q=1, as most servers do.
 */
struct media {
    const char *type;
    size_t typelen;
    const char *version;
    size_t versionlen;
    double q;
};

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static size_t trim_len(const char *p, const char *end)
{
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (size_t)(end - p);
}

/* Parse one range [p, end). */
static void parse_media(const char *p, const char *end, struct media *m)
{
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *tend = semi ? semi : end;
    p = skip_ws(p, tend);
    m->type = p;
    m->typelen = trim_len(p, tend);
    m->version = NULL;
    m->versionlen = 0;
    m->q = 1;
    while (semi) {
        p = skip_ws(semi + 1, end);
        semi = memchr(p, ';', (size_t)(end - p));
        const char *pend = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        if (!eq)
            continue;
        size_t klen = trim_len(p, eq);
        const char *v = skip_ws(eq + 1, pend);
        size_t vlen = trim_len(v, pend);
        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
            v++;
            vlen -= 2;
        }
        if (klen == 1 && (*p == 'q' || *p == 'Q')) {
            char tmp[16];
            if (vlen < sizeof(tmp)) {
                memcpy(tmp, v, vlen);
                tmp[vlen] = 0;
                char *e;
                double q = strtod(tmp, &e);
                if (e != tmp && q >= 0 && q <= 1)
                    m->q = q;
            }
        } else if (klen == 7 && strncasecmp(p, "version", 7) == 0) {
            m->version = v;
            m->versionlen = vlen;
        }
    }
}

static int media_is(const struct media *m, const char *type)
{
    return m->typelen == strlen(type) && strncasecmp(m->type, type, m->typelen) == 0;
}

static int version_is(const struct media *m, const char *v)
{
    return !m->version || (m->versionlen == strlen(v) && memcmp(m->version, v, m->versionlen) == 0);
}

enum expo_format expo_negotiate(const char *accept)
{
    if (!accept)
        return EXPO_TEXT;
    double q_om = 0, q_text = 0;
    const char *p = accept, *end = accept + strlen(accept);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *rend = comma ? comma : end;
        struct media m;
        parse_media(p, rend, &m);
        if (media_is(&m, "application/openmetrics-text") && version_is(&m, "1.0.0")) {
            if (m.q > q_om)
                q_om = m.q;
        } else if (media_is(&m, "text/plain") && version_is(&m, "0.0.4")) {
            if (m.q > q_text)
                q_text = m.q;
        }
        p = comma ? comma + 1 : end;
    }
    return q_om > 0 && q_om >= q_text ? EXPO_OPENMETRICS : EXPO_TEXT;
}

int expo_accepts_gzip(const char *accept_encoding)
{
    if (!accept_encoding)
        return 0;
    const char *p = accept_encoding, *end = p + strlen(p);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *rend = comma ? comma : end;
        struct media m;
        parse_media(p, rend, &m);
        if ((media_is(&m, "gzip") || media_is(&m, "x-gzip")) && m.q > 0)
            return 1;
        p = comma ? comma + 1 : end;
    }
    return 0;
}

/* The line [p, nl) starts with @prefix; returns what follows it or NULL. */
static const char *after(const char *p, const char *nl, const char *prefix)
{
    size_t n = strlen(prefix);
    return (size_t)(nl - p) >= n && memcmp(p, prefix, n) == 0 ? p + n : NULL;
}

/*
 * Whether the line after a HELP line (expo_header() writes TYPE right after
 * HELP) says the family [name, name+len) is a counter.
 */
static int next_is_counter(const char *nl, const char *end, const char *name, size_t len)
{
    const char *p = nl + 1;
    if (p >= end)
        return 0;
    const char *e = memchr(p, '\n', (size_t)(end - p));
    if (!e)
        e = end;
    const char *r = after(p, e, "# TYPE ");
    return r && (size_t)(e - r) == len + 8 && memcmp(r, name, len) == 0 && r[len] == ' ' &&
           memcmp(r + len + 1, "counter", 7) == 0;
}

static int ends_total(const char *name, size_t len)
{
    return len > 6 && memcmp(name + len - 6, "_total", 6) == 0;
}

void expo_to_openmetrics(const char *text, size_t tlen, struct buf *out)
{
    const char *p = text, *end = text + tlen;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        const char *r;
        if ((r = after(p, nl, "# HELP ")) || (r = after(p, nl, "# TYPE "))) {
            int help = p[2] == 'H';
            const char *sp = memchr(r, ' ', (size_t)(nl - r));
            size_t nlen = sp ? (size_t)(sp - r) : (size_t)(nl - r);
            const char *rest = sp ? sp + 1 : nl;
            int counter = help ? next_is_counter(nl, end, r, nlen)
                               : (size_t)(nl - rest) == 7 && memcmp(rest, "counter", 7) == 0;
            size_t keep = nlen;
            const char *type = NULL;
            if (counter) {
                if (ends_total(r, nlen))
                    keep = nlen - 6;
                else
                    type = "unknown";
            }
            buf_append(out, p, 7);
            buf_append(out, r, keep);
            buf_putc(out, ' ');
            if (!help) {
                if (type)
                    buf_puts(out, type);
                else
                    buf_append(out, rest, (size_t)(nl - rest));
            } else {
                /* 0.0.4 HELP escapes \\ and \n already; OpenMetrics also wants \". */
                for (const char *c = rest; c < nl; c++) {
                    if (*c == '"')
                        buf_puts(out, "\\\"");
                    else
                        buf_putc(out, *c);
                }
            }
            buf_putc(out, '\n');
        } else if (nl > p && p[0] != '#') {
            buf_append(out, p, (size_t)(nl - p));
            buf_putc(out, '\n');
        }
        p = nl + 1;
    }
    buf_puts(out, "# EOF\n");
}

int expo_gzip(const void *in, size_t len, struct buf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    /* 15 + 16: a gzip header and trailer rather than zlib's. */
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    size_t bound = deflateBound(&zs, (uLong)len);
    buf_reset(out);
    buf_reserve(out, bound + 1);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out->data;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    size_t n = bound - zs.avail_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        buf_reset(out);
        return -EIO;
    }
    out->len = n;
    return 0;
}
