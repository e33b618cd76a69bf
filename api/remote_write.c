/*
 * remote_write: DESIGN. One pass per request, all memory in the request's
 * arena:
 *
 *   content type -> version;  snappy length -> cap check (before any
 *   allocation);  snappy -> decoded bytes in the arena;  a tag walk that
 *   counts the series against the per-request cap;  then the message:
 *   v1 through a hand-written walker of the subset Prometheus sends, and
 *   anything it does not take (and all of v2) through protobuf-c with the
 *   arena as its budgeted allocator;  per series: labels (drop list applied,
 *   order kept) and samples in flat arrays, then validated.
 *
 * Validation never stops the request: a series gets a reason and a static
 * message and the caller skips it. Only problems that make the whole body
 * meaningless (unparseable, too big, too many series, a broken v2 symbol
 * table, nothing at all) are negative returns. Every string of the neutral
 * representation lives in the arena, NUL-terminated, as long as the request
 * does. protobuf-c stays the reference: both v1 paths must agree on every
 * input the fast one accepts (fuzz_rw_v1 checks it).
 */
#include "remote_write.h"

#include <endian.h>
#include <string.h>
#include <strings.h>

#include <snappy-c.h>

#include "remote_write_v1.pb-c.h"
#include "remote_write_v2.pb-c.h"

static const char *const reason_text[API_RW_SERIES_REASON_COUNT] = {
    [API_RW_SERIES_OK] = "",
    [API_RW_SERIES_MISSING_NAME] = "series without __name__ label",
    [API_RW_SERIES_UNSORTED] = "labels not sorted by name",
    [API_RW_SERIES_DUPLICATE_NAME] = "duplicate label name",
    [API_RW_SERIES_EMPTY_NAME] = "empty label name",
    [API_RW_SERIES_EMPTY_VALUE] = "empty label value",
    [API_RW_SERIES_INVALID_NAME] = "invalid label name",
    [API_RW_SERIES_TOO_MANY_LABELS] = "too many labels in series",
    [API_RW_SERIES_NAME_TOO_LONG] = "label name too long",
    [API_RW_SERIES_VALUE_TOO_LONG] = "label value too long",
    [API_RW_SERIES_FUTURE] = "sample timestamp too far in the future",
    [API_RW_SERIES_BAD_SYMBOL_REF] = "symbol reference out of range",
};

const char *api_rw_reason_str(enum api_rw_series_reason r)
{
    if ((unsigned)r >= API_RW_SERIES_REASON_COUNT)
        return "invalid series";
    return reason_text[r];
}

const char *api_rw_type_str(enum api_rw_metric_type t)
{
    static const char *const names[] = {"unknown",        "counter", "gauge", "histogram",
                                        "gaugehistogram", "summary", "info",  "stateset"};
    if ((unsigned)t >= sizeof names / sizeof names[0])
        return "unknown";
    return names[t];
}

static enum api_rw_metric_type type_from_wire(int t)
{
    return (t >= 0 && t <= API_RW_TYPE_STATESET) ? (enum api_rw_metric_type)t : API_RW_TYPE_UNKNOWN;
}

/* ---- content type ---------------------------------------------------- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *trim_end(const char *p, const char *end)
{
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return end;
}

static int token_eq(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - p) == n && strncasecmp(p, lit, n) == 0;
}

/*
 * "application/x-protobuf" with an optional proto parameter, as
 * mime.ParseMediaType sees it: case-insensitive type and parameter names,
 * spaces around ';' and '=', an optionally quoted value. Prometheus compares
 * the value exactly; clients have been seen lower-casing it, so we do not.
 */
int api_rw_content_version(const char *ct)
{
    if (!ct)
        return API_RW_EMEDIA_TYPE;
    const char *end = ct + strlen(ct);
    const char *semi = memchr(ct, ';', (size_t)(end - ct));
    const char *mt_end = semi ? semi : end;
    const char *p = skip_ws(ct, mt_end);
    if (!token_eq(p, trim_end(p, mt_end), "application/x-protobuf"))
        return API_RW_EMEDIA_TYPE;
    int version = 1;
    while (semi) {
        p = semi + 1;
        semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        p = skip_ws(p, pe);
        if (!eq) {
            if (p == trim_end(p, pe))
                continue; /* stray ';' */
            return API_RW_EMEDIA_TYPE;
        }
        if (!token_eq(p, trim_end(p, eq), "proto"))
            continue; /* charset and friends */
        const char *v = skip_ws(eq + 1, pe);
        const char *ve = trim_end(v, pe);
        if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
            v++;
            ve--;
        }
        if (token_eq(v, ve, "prometheus.WriteRequest"))
            version = 1;
        else if (token_eq(v, ve, "io.prometheus.write.v2.Request"))
            version = 2;
        else
            return API_RW_EMEDIA_TYPE;
    }
    return version;
}

/* ---- validation ------------------------------------------------------ */

static const struct api_rw_limits default_limits = {
    .max_decoded_bytes = API_RW_DEFAULT_MAX_DECODED_BYTES,
    .max_future_ms = -1,
};

/* [a-zA-Z_][a-zA-Z0-9_]*: 1 = any position, 2 = not first. */
static const unsigned char name_chars[256] = {
    ['0'] = 2, ['1'] = 2, ['2'] = 2, ['3'] = 2, ['4'] = 2, ['5'] = 2, ['6'] = 2, ['7'] = 2, ['8'] = 2,
    ['9'] = 2, ['_'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1,
    ['z'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1,
    ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
};

static int valid_label_name(const char *s, size_t n)
{
    if (name_chars[(unsigned char)s[0]] != 1)
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!name_chars[(unsigned char)s[i]])
            return 0;
    return 1;
}

/*
 * The drop list with its lengths, computed once per request: is_dropped()
 * runs for every label of every series, and "pod" must not cost a string
 * compare against "prometheus_replica".
 */
#define DROP_MAX 16

struct dropset {
    size_t n;
    const char *name[DROP_MAX];
    uint32_t len[DROP_MAX];
    const struct api_rw_limits *lim; /* for lists longer than DROP_MAX */
};

static void dropset_init(struct dropset *ds, const struct api_rw_limits *lim)
{
    ds->lim = lim;
    ds->n = 0;
    for (size_t i = 0; i < lim->n_drop_labels && i < DROP_MAX; i++) {
        if (!lim->drop_labels[i])
            continue;
        ds->name[ds->n] = lim->drop_labels[i];
        ds->len[ds->n++] = (uint32_t)strlen(lim->drop_labels[i]);
    }
}

static int is_dropped(const struct dropset *ds, const char *name, size_t len)
{
    for (size_t i = 0; i < ds->n; i++)
        if (ds->len[i] == len && memcmp(ds->name[i], name, len) == 0)
            return 1;
    for (size_t i = DROP_MAX; i < ds->lim->n_drop_labels; i++) {
        const char *d = ds->lim->drop_labels[i];
        if (d && strlen(d) == len && memcmp(d, name, len) == 0)
            return 1;
    }
    return 0;
}

static int name_cmp(const struct api_rw_label *x, const struct api_rw_label *y)
{
    /* Label names of one series nearly always differ in the first byte. */
    if (x->name[0] != y->name[0] && x->name_len && y->name_len)
        return (unsigned char)x->name[0] - (unsigned char)y->name[0];
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* The first rule a series breaks, in the order the labels are listed. */
static enum api_rw_series_reason check_labels(struct api_rw_series *s, const struct api_rw_limits *lim)
{
    if (lim->max_labels && s->n_labels > lim->max_labels)
        return API_RW_SERIES_TOO_MANY_LABELS;
    for (size_t i = 0; i < s->n_labels; i++) {
        const struct api_rw_label *l = &s->labels[i];
        if (l->name_len == 0)
            return API_RW_SERIES_EMPTY_NAME;
        if (lim->max_label_name_len && l->name_len > lim->max_label_name_len)
            return API_RW_SERIES_NAME_TOO_LONG;
        if (!valid_label_name(l->name, l->name_len))
            return API_RW_SERIES_INVALID_NAME;
        if (l->value_len == 0)
            return API_RW_SERIES_EMPTY_VALUE;
        if (lim->max_label_value_len && l->value_len > lim->max_label_value_len)
            return API_RW_SERIES_VALUE_TOO_LONG;
        if (i > 0) {
            int c = name_cmp(&s->labels[i - 1], l);
            if (c == 0)
                return API_RW_SERIES_DUPLICATE_NAME;
            if (c > 0)
                return API_RW_SERIES_UNSORTED;
        }
        if (l->name_len == 8 && memcmp(l->name, "__name__", 8) == 0) {
            s->name = l->value;
            s->name_len = l->value_len;
        }
    }
    if (!s->name)
        return API_RW_SERIES_MISSING_NAME;
    return API_RW_SERIES_OK;
}

static enum api_rw_series_reason check_samples(const struct api_rw_series *s, const struct api_rw_limits *lim)
{
    if (lim->max_future_ms < 0)
        return API_RW_SERIES_OK;
    int64_t horizon =
        lim->now_ms > INT64_MAX - lim->max_future_ms ? INT64_MAX : lim->now_ms + lim->max_future_ms;
    for (size_t i = 0; i < s->n_samples; i++)
        if (s->samples[i].timestamp_ms > horizon)
            return API_RW_SERIES_FUTURE;
    return API_RW_SERIES_OK;
}

/* Validate one assembled series and account for it. */
static void finish_series(struct api_rw_request *out, size_t idx, enum api_rw_series_reason r,
                          const struct api_rw_limits *lim)
{
    struct api_rw_series *s = &out->series[idx];
    if (r == API_RW_SERIES_OK)
        r = check_labels(s, lim);
    if (r == API_RW_SERIES_OK)
        r = check_samples(s, lim);
    s->reason = r;
    s->reason_msg = reason_text[r];
    out->counts.samples += s->n_samples;
    out->counts.histograms += s->n_histograms;
    out->counts.exemplars += s->n_exemplars;
    if (r == API_RW_SERIES_OK) {
        out->counts.samples_valid += s->n_samples;
    } else {
        if (out->n_invalid++ == 0)
            out->first_invalid = idx;
    }
}

/* ---- v1 -------------------------------------------------------------- */

static struct api_rw_sample *copy_samples_v1(struct arena *a, Prometheus__Sample **in, size_t n)
{
    struct api_rw_sample *s = arena_alloc(a, n * sizeof *s);
    for (size_t i = 0; i < n; i++) {
        s[i].value = in[i]->value;
        s[i].timestamp_ms = in[i]->timestamp;
    }
    return s;
}

static int decode_v1(const uint8_t *pb, size_t len, const struct api_rw_limits *lim, const struct dropset *ds,
                     struct arena *a, struct api_rw_request *out)
{
    Prometheus__WriteRequest *wr = prometheus__write_request__unpack(&a->pb, len, pb);
    if (!wr)
        return API_RW_EPROTOBUF;
    if (wr->n_timeseries == 0 && wr->n_metadata == 0)
        return API_RW_ENOTHING;
    if (lim->max_series_per_request && wr->n_timeseries > lim->max_series_per_request)
        return API_RW_ETOO_MANY_SERIES;

    out->version = 1;
    out->n_series = wr->n_timeseries;
    out->series = arena_calloc(a, wr->n_timeseries, sizeof *out->series);
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = wr->timeseries[i];
        struct api_rw_series *s = &out->series[i];
        struct api_rw_label *labels = arena_alloc(a, ts->n_labels * sizeof *labels);
        size_t n = 0;
        for (size_t j = 0; j < ts->n_labels; j++) {
            const char *name = ts->labels[j]->name, *value = ts->labels[j]->value;
            size_t nl = strlen(name);
            if (ds->n && is_dropped(ds, name, nl))
                continue;
            labels[n].name = name;
            labels[n].name_len = (uint32_t)nl;
            labels[n].value = value;
            labels[n].value_len = (uint32_t)strlen(value);
            n++;
        }
        s->labels = labels;
        s->n_labels = n;
        s->samples = copy_samples_v1(a, ts->samples, ts->n_samples);
        s->n_samples = ts->n_samples;
        s->n_histograms = ts->n_histograms;
        s->n_exemplars = ts->n_exemplars;
        finish_series(out, i, API_RW_SERIES_OK, lim);
    }

    out->n_metadata = wr->n_metadata;
    out->metadata = arena_calloc(a, wr->n_metadata, sizeof *out->metadata);
    for (size_t i = 0; i < wr->n_metadata; i++) {
        const Prometheus__MetricMetadata *m = wr->metadata[i];
        struct api_rw_metadata *md = &out->metadata[i];
        md->family = m->metric_family_name;
        md->family_len = (uint32_t)strlen(m->metric_family_name);
        md->type = type_from_wire(m->type);
        md->help = m->help;
        md->unit = m->unit;
    }
    return 0;
}

/* ---- v1 fast path ------------------------------------------------------
 *
 * protobuf-c spends ~4,000 instructions per series on a v1 body (a generic
 * descriptor-driven walk, one allocation per label, sample and string: 15
 * per series even with the arena), more than the rest of the ingest path
 * together. Prometheus sends v1, so that is the hot path, and the subset it
 * uses is tiny: WriteRequest{timeseries=1, metadata=3}, TimeSeries{labels=1,
 * samples=2}, Label{name=1, value=2}, Sample{value=1 fixed64, timestamp=2
 * varint}, MetricMetadata{type=1, family=2, help=4, unit=5}. This walker
 * handles exactly that subset, each field at most once, and gives up
 * (FAST_FALLBACK) on anything else: exemplars, histograms, unknown or
 * repeated fields, odd wire types, malformed or truncated input. The whole
 * body is then decoded again by protobuf-c, which is the reference: the fuzz
 * target fuzz_rw_v1 compares both on every input the fast path accepts.
 *
 * Strings are copied into the arena, NUL-terminated, and their length is
 * taken up to the first NUL byte, exactly as protobuf-c's char * leaves them.
 */

#define FAST_FALLBACK 1

struct pbr {
    const uint8_t *p, *end;
};

static int pb_varint_slow(struct pbr *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (shift == 63 && b > 1)
                return -1;
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Tags and lengths are one byte almost always: that case is inline. */
static inline int pb_varint(struct pbr *r, uint64_t *v)
{
    if (r->p < r->end && *r->p < 0x80) {
        *v = *r->p++;
        return 0;
    }
    return pb_varint_slow(r, v);
}

/* Tags and length prefixes: protobuf-c reads at most 5 bytes of them and
 * refuses a longer (overlong) encoding, so this walker must not accept one. */
static inline int pb_varint5(struct pbr *r, uint64_t *v)
{
    const uint8_t *start = r->p;
    if (pb_varint(r, v) != 0 || r->p - start > 5)
        return -1;
    return 0;
}

/* Next field: its number, wire type, and for wire type 2 the payload. */
static inline int pb_field(struct pbr *r, uint32_t *field, uint32_t *wt, struct pbr *sub)
{
    uint64_t tag, len;
    if (pb_varint5(r, &tag) != 0 || tag > UINT32_MAX || (tag >> 3) == 0)
        return -1;
    *field = (uint32_t)(tag >> 3);
    *wt = (uint32_t)(tag & 7);
    if (*wt == 2) {
        if (pb_varint5(r, &len) != 0 || len > (uint64_t)(r->end - r->p))
            return -1;
        sub->p = r->p;
        sub->end = r->p + len;
        r->p += len;
    }
    return 0;
}

/* A copy of a string field in a per-series block, cut at the first NUL. */
static const char *fast_str(const struct pbr *s, char **blk, uint32_t *len)
{
    size_t n = (size_t)(s->end - s->p);
    const uint8_t *nul = memchr(s->p, 0, n);
    if (nul)
        n = (size_t)(nul - s->p);
    char *d = *blk;
    memcpy(d, s->p, n);
    d[n] = '\0';
    *blk += n + 1;
    *len = (uint32_t)n;
    return d;
}

static int fast_label(struct pbr r, char **blk, struct api_rw_label *l)
{
    unsigned seen = 0;
    l->name = l->value = "";
    l->name_len = l->value_len = 0;
    while (r.p < r.end) {
        uint32_t f = 0, wt = 0;
        struct pbr sub = {NULL, NULL};
        if (pb_field(&r, &f, &wt, &sub) != 0 || wt != 2 || (f != 1 && f != 2) || (seen & f))
            return FAST_FALLBACK;
        seen |= f;
        if (f == 1)
            l->name = fast_str(&sub, blk, &l->name_len);
        else
            l->value = fast_str(&sub, blk, &l->value_len);
    }
    return 0;
}

static int fast_sample(struct pbr r, struct api_rw_sample *s)
{
    unsigned seen = 0;
    s->value = 0;
    s->timestamp_ms = 0;
    while (r.p < r.end) {
        uint32_t f = 0, wt = 0;
        struct pbr sub = {NULL, NULL};
        if (pb_field(&r, &f, &wt, &sub) != 0 || (seen & (1u << (f & 31))))
            return FAST_FALLBACK;
        seen |= 1u << (f & 31);
        if (f == 1 && wt == 1 && r.end - r.p >= 8) {
            /* fixed64 is little-endian on the wire */
            uint64_t bits;
            memcpy(&bits, r.p, 8);
            bits = le64toh(bits);
            memcpy(&s->value, &bits, 8);
            r.p += 8;
        } else if (f == 2 && wt == 0) {
            uint64_t v;
            if (pb_varint(&r, &v) != 0)
                return FAST_FALLBACK;
            s->timestamp_ms = (int64_t)v;
        } else {
            return FAST_FALLBACK;
        }
    }
    return 0;
}

/* Series with more labels or samples than this (a sender catching up) go to protobuf-c. */
#define FAST_MAX_LABELS  64
#define FAST_MAX_SAMPLES 256

static int fast_series(struct pbr r, const struct dropset *ds, struct arena *a, struct api_rw_series *s)
{
    struct api_rw_label labels[FAST_MAX_LABELS];
    struct api_rw_sample samples[FAST_MAX_SAMPLES];
    /* Every string of the series fits in the series' own bytes plus a NUL
     * each (a label's two strings take at least two bytes of tags). */
    char *blk = arena_alloc(a, (size_t)(r.end - r.p) * 2);
    size_t il = 0, is = 0;
    while (r.p < r.end) {
        uint32_t f = 0, wt = 0;
        struct pbr sub = {NULL, NULL};
        if (pb_field(&r, &f, &wt, &sub) != 0 || wt != 2)
            return FAST_FALLBACK;
        if (f == 1) {
            if (il == FAST_MAX_LABELS || fast_label(sub, &blk, &labels[il]) != 0)
                return FAST_FALLBACK;
            if (!(ds->n && is_dropped(ds, labels[il].name, labels[il].name_len)))
                il++;
        } else if (f == 2) {
            if (is == FAST_MAX_SAMPLES || fast_sample(sub, &samples[is++]) != 0)
                return FAST_FALLBACK;
        } else {
            return FAST_FALLBACK;
        }
    }
    struct api_rw_label *l = arena_alloc(a, il * sizeof *l);
    memcpy(l, labels, il * sizeof *l);
    struct api_rw_sample *sm = arena_alloc(a, is * sizeof *sm);
    memcpy(sm, samples, is * sizeof *sm);
    s->labels = l;
    s->n_labels = il;
    s->samples = sm;
    s->n_samples = is;
    return 0;
}

static int fast_metadata(struct pbr r, struct arena *a, struct api_rw_metadata *md)
{
    unsigned seen = 0;
    char *blk = arena_alloc(a, (size_t)(r.end - r.p) + 3);
    uint32_t unused;
    md->family = md->help = md->unit = "";
    md->family_len = 0;
    md->type = API_RW_TYPE_UNKNOWN;
    while (r.p < r.end) {
        uint32_t f = 0, wt = 0;
        struct pbr sub = {NULL, NULL};
        if (pb_field(&r, &f, &wt, &sub) != 0 || f > 5 || (seen & (1u << f)))
            return FAST_FALLBACK;
        seen |= 1u << f;
        if (f == 1 && wt == 0) {
            uint64_t v;
            if (pb_varint(&r, &v) != 0 || v > API_RW_TYPE_STATESET)
                return FAST_FALLBACK;
            md->type = (enum api_rw_metric_type)v;
        } else if (f == 2 && wt == 2) {
            md->family = fast_str(&sub, &blk, &md->family_len);
        } else if (f == 4 && wt == 2) {
            md->help = fast_str(&sub, &blk, &unused);
        } else if (f == 5 && wt == 2) {
            md->unit = fast_str(&sub, &blk, &unused);
        } else {
            return FAST_FALLBACK;
        }
    }
    return 0;
}

/* 0, a whole-request error the reference would give too, or FAST_FALLBACK. */
static int fast_v1(const uint8_t *pb, size_t len, const struct api_rw_limits *lim, const struct dropset *ds,
                   struct arena *a, struct api_rw_request *out)
{
    struct pbr r = {pb, pb + len};
    size_t nts = 0, nmd = 0;
    while (r.p < r.end) {
        uint32_t f = 0, wt = 0;
        struct pbr sub = {NULL, NULL};
        if (pb_field(&r, &f, &wt, &sub) != 0 || wt != 2 || (f != 1 && f != 3))
            return FAST_FALLBACK;
        if (f == 1)
            nts++;
        else
            nmd++;
    }
    out->version = 1;
    out->series = arena_calloc(a, nts, sizeof *out->series);
    out->metadata = arena_calloc(a, nmd, sizeof *out->metadata);
    r.p = pb;
    while (r.p < r.end) {
        uint32_t f = 0, wt = 0;
        struct pbr sub = {NULL, NULL};
        pb_field(&r, &f, &wt, &sub); /* validated by the scan above */
        if (f == 1) {
            if (fast_series(sub, ds, a, &out->series[out->n_series]) != 0)
                return FAST_FALLBACK;
            out->n_series++;
        } else if (fast_metadata(sub, a, &out->metadata[out->n_metadata++]) != 0) {
            return FAST_FALLBACK;
        }
    }
    /* The same order of whole-request checks as decode_v1. */
    if (nts == 0 && nmd == 0)
        return API_RW_ENOTHING;
    if (lim->max_series_per_request && nts > lim->max_series_per_request)
        return API_RW_ETOO_MANY_SERIES;
    for (size_t i = 0; i < nts; i++)
        finish_series(out, i, API_RW_SERIES_OK, lim);
    return 0;
}

/* ---- v2 -------------------------------------------------------------- */

struct v2_symbols {
    char **str;
    uint32_t *len;
    size_t n;
};

static int sym_ok(const struct v2_symbols *sy, uint32_t ref)
{
    return ref < sy->n;
}

/* Every reference of a series, including exemplars' and metadata's, must be in range. */
static int v2_refs_ok(const Io__Prometheus__Write__V2__TimeSeries *ts, const struct v2_symbols *sy)
{
    if (ts->n_labels_refs % 2)
        return 0;
    for (size_t j = 0; j < ts->n_labels_refs; j++)
        if (!sym_ok(sy, ts->labels_refs[j]))
            return 0;
    for (size_t e = 0; e < ts->n_exemplars; e++) {
        const Io__Prometheus__Write__V2__Exemplar *ex = ts->exemplars[e];
        if (ex->n_labels_refs % 2)
            return 0;
        for (size_t j = 0; j < ex->n_labels_refs; j++)
            if (!sym_ok(sy, ex->labels_refs[j]))
                return 0;
    }
    if (ts->metadata && (!sym_ok(sy, ts->metadata->help_ref) || !sym_ok(sy, ts->metadata->unit_ref)))
        return 0;
    return 1;
}

static void v2_series(struct api_rw_request *out, size_t i, const Io__Prometheus__Write__V2__TimeSeries *ts,
                      const struct v2_symbols *sy, const struct api_rw_limits *lim, const struct dropset *ds,
                      struct arena *a)
{
    struct api_rw_series *s = &out->series[i];
    s->n_histograms = ts->n_histograms;
    s->n_exemplars = ts->n_exemplars;
    s->n_samples = ts->n_samples;
    struct api_rw_sample *smp = arena_alloc(a, ts->n_samples * sizeof *smp);
    for (size_t j = 0; j < ts->n_samples; j++) {
        smp[j].value = ts->samples[j]->value;
        smp[j].timestamp_ms = ts->samples[j]->timestamp;
    }
    s->samples = smp;
    if (!v2_refs_ok(ts, sy)) {
        s->labels = NULL;
        s->n_labels = 0;
        finish_series(out, i, API_RW_SERIES_BAD_SYMBOL_REF, lim);
        return;
    }
    struct api_rw_label *labels = arena_alloc(a, ts->n_labels_refs / 2 * sizeof *labels);
    size_t n = 0;
    for (size_t j = 0; j < ts->n_labels_refs; j += 2) {
        uint32_t nr = ts->labels_refs[j], vr = ts->labels_refs[j + 1];
        if (ds->n && is_dropped(ds, sy->str[nr], sy->len[nr]))
            continue;
        labels[n].name = sy->str[nr];
        labels[n].name_len = sy->len[nr];
        labels[n].value = sy->str[vr];
        labels[n].value_len = sy->len[vr];
        n++;
    }
    s->labels = labels;
    s->n_labels = n;
    if (ts->metadata)
        s->type = type_from_wire(ts->metadata->type);
    finish_series(out, i, API_RW_SERIES_OK, lim);
    if (s->reason == API_RW_SERIES_OK && s->type != API_RW_TYPE_UNKNOWN) {
        struct api_rw_metadata *md = &out->metadata[out->n_metadata++];
        md->family = s->name;
        md->family_len = s->name_len;
        md->type = s->type;
        md->help = sy->str[ts->metadata->help_ref];
        md->unit = sy->str[ts->metadata->unit_ref];
    }
}

static int decode_v2(const uint8_t *pb, size_t len, const struct api_rw_limits *lim, const struct dropset *ds,
                     struct arena *a, struct api_rw_request *out)
{
    Io__Prometheus__Write__V2__Request *rq = io__prometheus__write__v2__request__unpack(&a->pb, len, pb);
    if (!rq)
        return API_RW_EPROTOBUF;
    /* A v1 body read as v2 lands entirely in the reserved fields 1-3: nothing. */
    if (rq->n_timeseries == 0 && rq->n_symbols == 0)
        return API_RW_ENOTHING;
    if (rq->n_symbols == 0 || rq->symbols[0][0] != '\0')
        return API_RW_ESYMBOLS;
    if (lim->max_series_per_request && rq->n_timeseries > lim->max_series_per_request)
        return API_RW_ETOO_MANY_SERIES;

    struct v2_symbols sy = {rq->symbols, arena_alloc(a, rq->n_symbols * sizeof(uint32_t)), rq->n_symbols};
    for (size_t i = 0; i < rq->n_symbols; i++)
        sy.len[i] = (uint32_t)strlen(rq->symbols[i]);

    out->version = 2;
    out->n_series = rq->n_timeseries;
    out->series = arena_calloc(a, rq->n_timeseries, sizeof *out->series);
    out->metadata = arena_calloc(a, rq->n_timeseries, sizeof *out->metadata);
    for (size_t i = 0; i < rq->n_timeseries; i++)
        v2_series(out, i, rq->timeseries[i], &sy, lim, ds, a);
    return 0;
}

/* ---- entry points ---------------------------------------------------- */

/*
 * How many times a top-level field occurs, by walking tags only; SIZE_MAX
 * when the walk hits something it cannot skip (the decoder will reject or
 * handle it). Lets the series-per-request cap act before anything is
 * allocated per series: a body of empty series costs ~50 bytes of arena per
 * byte of input once unpacked.
 */
static size_t count_field(const uint8_t *pb, size_t len, uint32_t want)
{
    struct pbr r = {pb, pb + len};
    size_t n = 0;
    while (r.p < r.end) {
        uint32_t f = 0, wt = 0;
        struct pbr sub = {NULL, NULL};
        uint64_t v;
        if (pb_field(&r, &f, &wt, &sub) != 0)
            return SIZE_MAX;
        if (wt == 0 && pb_varint(&r, &v) != 0)
            return SIZE_MAX;
        if (wt == 1 || wt == 5) {
            size_t w = wt == 1 ? 8 : 4;
            if ((size_t)(r.end - r.p) < w)
                return SIZE_MAX;
            r.p += w;
        }
        if (wt == 3 || wt == 4 || wt > 5)
            return SIZE_MAX;
        n += f == want && wt == 2;
    }
    return n;
}

/* Arena budget for protobuf-c's unpack: bytes per decoded byte, plus a constant. */
#define PB_BUDGET_FACTOR 24
#define PB_BUDGET_EXTRA  ((size_t)1 << 20)

static int decode_pb(const void *pb, size_t len, int version, int fast, const struct api_rw_limits *lim,
                     struct arena *a, struct api_rw_request *out)
{
    if (!lim)
        lim = &default_limits;
    if (lim->max_series_per_request && (version == 1 || version == 2)) {
        size_t n = count_field(pb, len, version == 1 ? 1 : 5);
        if (n != SIZE_MAX && n > lim->max_series_per_request)
            return API_RW_ETOO_MANY_SERIES;
    }
    struct dropset ds;
    dropset_init(&ds, lim);
    struct api_rw_request r;
    memset(&r, 0, sizeof r);
    int rc = FAST_FALLBACK;
    if (version == 1 && fast)
        rc = fast_v1(pb, len, lim, &ds, a, &r);
    if (rc == FAST_FALLBACK) {
        /* What the fast path left in the arena is garbage now; it goes at reset. */
        memset(&r, 0, sizeof r);
        /* protobuf-c turns a 2-byte empty label into ~60 bytes of structs:
         * budget its allocations well above what real bodies need (~6x)
         * so that a crafted body is a 400, not gigabytes. */
        size_t budget = len > (SIZE_MAX - PB_BUDGET_EXTRA) / PB_BUDGET_FACTOR
                            ? SIZE_MAX
                            : len * PB_BUDGET_FACTOR + PB_BUDGET_EXTRA;
        arena_set_limit(a, arena_used(a) > SIZE_MAX - budget ? SIZE_MAX : arena_used(a) + budget);
        if (version == 1)
            rc = decode_v1(pb, len, lim, &ds, a, &r);
        else if (version == 2)
            rc = decode_v2(pb, len, lim, &ds, a, &r);
        else
            rc = API_RW_EMEDIA_TYPE;
        if (rc == API_RW_EPROTOBUF && arena_over_limit(a))
            rc = API_RW_EDECODED_SIZE;
        arena_set_limit(a, 0);
    }
    if (rc == 0)
        *out = r;
    return rc;
}

int api_rw_decode_pb(const void *pb, size_t len, int version, const struct api_rw_limits *lim,
                     struct arena *a, struct api_rw_request *out)
{
    return decode_pb(pb, len, version, 1, lim, a, out);
}

int api_rw_decode_pb_reference(const void *pb, size_t len, int version, const struct api_rw_limits *lim,
                               struct arena *a, struct api_rw_request *out)
{
    return decode_pb(pb, len, version, 0, lim, a, out);
}

int api_rw_decode(const void *body, size_t len, const char *content_type, const struct api_rw_limits *lim,
                  struct arena *a, struct api_rw_request *out)
{
    if (!lim)
        lim = &default_limits;
    int version = api_rw_content_version(content_type);
    if (version < 0)
        return version;
    if (len == 0)
        return API_RW_EEMPTY;
    /* The uncompressed length is the sender's claim: check it against the
     * cap before allocating anything for it. */
    size_t ulen;
    if (snappy_uncompressed_length(body, len, &ulen) != SNAPPY_OK)
        return API_RW_ESNAPPY;
    size_t cap = lim->max_decoded_bytes ? lim->max_decoded_bytes : API_RW_DEFAULT_MAX_DECODED_BYTES;
    if (ulen > cap)
        return API_RW_EDECODED_SIZE;
    char *pb = arena_alloc(a, ulen);
    size_t got = ulen;
    if (snappy_uncompress(body, len, pb, &got) != SNAPPY_OK || got != ulen)
        return API_RW_ESNAPPY;
    return api_rw_decode_pb(pb, ulen, version, lim, a, out);
}

int api_rw_http_status(int err, const struct api_rw_request *req, const char **msg)
{
    switch (err) {
    case API_RW_OK:
        *msg = "";
        return 204;
    case API_RW_EMEDIA_TYPE:
        *msg = "unsupported content type: want application/x-protobuf with proto=prometheus.WriteRequest "
               "or proto=io.prometheus.write.v2.Request";
        return 415;
    case API_RW_EEMPTY:
        *msg = "empty body";
        return 400;
    case API_RW_EDECODED_SIZE:
        *msg = "decoded body too large";
        return 400;
    case API_RW_ESNAPPY:
        *msg = "body is not valid snappy block format";
        return 400;
    case API_RW_EPROTOBUF:
        *msg = "body is not a valid protobuf message of the content type's schema";
        return 400;
    case API_RW_ENOTHING:
        *msg = "request decoded to no series and no metadata (wrong proto in content type?)";
        return 400;
    case API_RW_ETOO_MANY_SERIES:
        *msg = "too many series in one request";
        return 400;
    case API_RW_ESYMBOLS:
        *msg = "invalid symbol table: symbols[0] must be the empty string";
        return 400;
    case API_RW_EINVALID_SERIES:
        if (req && req->n_invalid > 0 && req->first_invalid < req->n_series)
            *msg = req->series[req->first_invalid].reason_msg;
        else
            *msg = "invalid series";
        return 400;
    case API_RW_EMETHOD:
        *msg = "method not allowed: use POST";
        return 405;
    case API_RW_EBODY_TOO_LARGE:
        *msg = "body too large";
        return 413;
    case API_RW_EUNAUTHORIZED:
        *msg = "unauthorized";
        return 401;
    case API_RW_ELIMIT:
        *msg = "series limit reached: new series refused";
        return 400;
    case API_RW_EOVERLOADED:
        *msg = "memory limit reached: retry later";
        return 503;
    default:
        *msg = "internal error";
        return 500;
    }
}
