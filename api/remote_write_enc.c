/*
 * remote_write_enc: build v1/v2 bodies from the neutral representation, for
 * tests, fuzz seeds and the load generator. Everything is encoded exactly as
 * given, invalid series included, so tests can build near-valid payloads.
 * The protobuf-c message tree is built in a scratch arena and packed once.
 */
#include "remote_write.h"

#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "remote_write_v1.pb-c.h"
#include "remote_write_v2.pb-c.h"

static int64_t first_ts(const struct api_rw_series *s)
{
    return s->n_samples ? s->samples[0].timestamp_ms : 0;
}

static int finish(const ProtobufCMessage *msg, unsigned flags, struct buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (flags & API_RW_ENC_RAW) {
        buf_reserve(out, n);
        protobuf_c_message_pack(msg, (uint8_t *)out->data + out->len);
        out->len += n;
        out->data[out->len] = '\0';
        return 0;
    }
    uint8_t *raw = malloc(n ? n : 1);
    if (!raw)
        abort();
    protobuf_c_message_pack(msg, raw);
    size_t clen = snappy_max_compressed_length(n);
    buf_reserve(out, clen);
    snappy_status st = snappy_compress((const char *)raw, n, out->data + out->len, &clen);
    free(raw);
    if (st != SNAPPY_OK)
        return API_RW_EINTERNAL;
    out->len += clen;
    out->data[out->len] = '\0';
    return 0;
}

/* ---- v1 -------------------------------------------------------------- */

static Prometheus__TimeSeries *series_v1(struct arena *a, const struct api_rw_series *s)
{
    Prometheus__TimeSeries *ts = arena_alloc(a, sizeof *ts);
    prometheus__time_series__init(ts);
    ts->n_labels = s->n_labels;
    ts->labels = arena_alloc(a, s->n_labels * sizeof *ts->labels);
    for (size_t j = 0; j < s->n_labels; j++) {
        Prometheus__Label *l = arena_alloc(a, sizeof *l);
        prometheus__label__init(l);
        l->name = arena_strndup(a, s->labels[j].name, s->labels[j].name_len);
        l->value = arena_strndup(a, s->labels[j].value, s->labels[j].value_len);
        ts->labels[j] = l;
    }
    ts->n_samples = s->n_samples;
    ts->samples = arena_alloc(a, s->n_samples * sizeof *ts->samples);
    for (size_t j = 0; j < s->n_samples; j++) {
        Prometheus__Sample *sm = arena_alloc(a, sizeof *sm);
        prometheus__sample__init(sm);
        sm->value = s->samples[j].value;
        sm->timestamp = s->samples[j].timestamp_ms;
        ts->samples[j] = sm;
    }
    ts->n_histograms = s->n_histograms;
    ts->histograms = arena_alloc(a, s->n_histograms * sizeof *ts->histograms);
    for (size_t j = 0; j < s->n_histograms; j++) {
        Prometheus__Histogram *h = arena_alloc(a, sizeof *h);
        prometheus__histogram__init(h);
        h->count_case = PROMETHEUS__HISTOGRAM__COUNT_COUNT_INT;
        h->count_int = 0;
        h->timestamp = first_ts(s);
        ts->histograms[j] = h;
    }
    ts->n_exemplars = s->n_exemplars;
    ts->exemplars = arena_alloc(a, s->n_exemplars * sizeof *ts->exemplars);
    for (size_t j = 0; j < s->n_exemplars; j++) {
        Prometheus__Exemplar *e = arena_alloc(a, sizeof *e);
        prometheus__exemplar__init(e);
        e->timestamp = first_ts(s);
        ts->exemplars[j] = e;
    }
    return ts;
}

static int encode_v1(const struct api_rw_request *req, unsigned flags, struct buf *out, struct arena *a)
{
    Prometheus__WriteRequest wr = PROMETHEUS__WRITE_REQUEST__INIT;
    wr.n_timeseries = req->n_series;
    wr.timeseries = arena_alloc(a, req->n_series * sizeof *wr.timeseries);
    for (size_t i = 0; i < req->n_series; i++)
        wr.timeseries[i] = series_v1(a, &req->series[i]);
    wr.n_metadata = req->n_metadata;
    wr.metadata = arena_alloc(a, req->n_metadata * sizeof *wr.metadata);
    for (size_t i = 0; i < req->n_metadata; i++) {
        const struct api_rw_metadata *md = &req->metadata[i];
        Prometheus__MetricMetadata *m = arena_alloc(a, sizeof *m);
        prometheus__metric_metadata__init(m);
        m->type = (Prometheus__MetricMetadata__MetricType)md->type;
        m->metric_family_name = arena_strndup(a, md->family, md->family_len);
        m->help = arena_strndup(a, md->help ? md->help : "", md->help ? strlen(md->help) : 0);
        m->unit = arena_strndup(a, md->unit ? md->unit : "", md->unit ? strlen(md->unit) : 0);
        wr.metadata[i] = m;
    }
    return finish(&wr.base, flags, out);
}

/* ---- v2 -------------------------------------------------------------- */

/* A small open-addressing table that de-duplicates symbols (test tool, not network-facing). */
struct symtab {
    char **str;
    size_t n, cap;
    uint32_t *slots; /* index + 1, 0 = empty */
    size_t nslots;
    struct arena *a;
};

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static void symtab_grow(struct symtab *t)
{
    size_t ns = t->nslots ? t->nslots * 2 : 256;
    uint32_t *slots = arena_calloc(t->a, ns, sizeof *slots);
    for (size_t i = 0; i < t->n; i++) {
        size_t k = fnv1a(t->str[i], strlen(t->str[i])) & (ns - 1);
        while (slots[k])
            k = (k + 1) & (ns - 1);
        slots[k] = (uint32_t)i + 1;
    }
    t->slots = slots;
    t->nslots = ns;
}

static uint32_t symtab_ref(struct symtab *t, const char *p, size_t n)
{
    if ((t->n + 1) * 2 > t->nslots)
        symtab_grow(t);
    size_t k = fnv1a(p, n) & (t->nslots - 1);
    while (t->slots[k]) {
        const char *s = t->str[t->slots[k] - 1];
        if (strlen(s) == n && memcmp(s, p, n) == 0)
            return t->slots[k] - 1;
        k = (k + 1) & (t->nslots - 1);
    }
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        char **ns = arena_alloc(t->a, nc * sizeof *ns);
        if (t->n)
            memcpy(ns, t->str, t->n * sizeof *ns);
        t->str = ns;
        t->cap = nc;
    }
    t->str[t->n] = arena_strndup(t->a, p, n);
    t->slots[k] = (uint32_t)t->n + 1;
    return (uint32_t)t->n++;
}

/* The metadata entry whose family is this series' __name__, if the caller gave one. */
static const struct api_rw_metadata *find_metadata(const struct api_rw_request *req,
                                                   const struct api_rw_series *s)
{
    const struct api_rw_label *name = NULL;
    for (size_t j = 0; j < s->n_labels && !name; j++)
        if (s->labels[j].name_len == 8 && memcmp(s->labels[j].name, "__name__", 8) == 0)
            name = &s->labels[j];
    for (size_t i = 0; i < req->n_metadata && name; i++)
        if (req->metadata[i].family_len == name->value_len &&
            memcmp(req->metadata[i].family, name->value, name->value_len) == 0)
            return &req->metadata[i];
    return NULL;
}

static Io__Prometheus__Write__V2__TimeSeries *
series_v2(struct arena *a, struct symtab *t, const struct api_rw_request *req, const struct api_rw_series *s)
{
    Io__Prometheus__Write__V2__TimeSeries *ts = arena_alloc(a, sizeof *ts);
    io__prometheus__write__v2__time_series__init(ts);
    ts->n_labels_refs = s->n_labels * 2;
    ts->labels_refs = arena_alloc(a, ts->n_labels_refs * sizeof *ts->labels_refs);
    for (size_t j = 0; j < s->n_labels; j++) {
        ts->labels_refs[2 * j] = symtab_ref(t, s->labels[j].name, s->labels[j].name_len);
        ts->labels_refs[2 * j + 1] = symtab_ref(t, s->labels[j].value, s->labels[j].value_len);
    }
    ts->n_samples = s->n_samples;
    ts->samples = arena_alloc(a, s->n_samples * sizeof *ts->samples);
    for (size_t j = 0; j < s->n_samples; j++) {
        Io__Prometheus__Write__V2__Sample *sm = arena_alloc(a, sizeof *sm);
        io__prometheus__write__v2__sample__init(sm);
        sm->value = s->samples[j].value;
        sm->timestamp = s->samples[j].timestamp_ms;
        ts->samples[j] = sm;
    }
    ts->n_histograms = s->n_histograms;
    ts->histograms = arena_alloc(a, s->n_histograms * sizeof *ts->histograms);
    for (size_t j = 0; j < s->n_histograms; j++) {
        Io__Prometheus__Write__V2__Histogram *h = arena_alloc(a, sizeof *h);
        io__prometheus__write__v2__histogram__init(h);
        h->count_case = IO__PROMETHEUS__WRITE__V2__HISTOGRAM__COUNT_COUNT_INT;
        h->timestamp = first_ts(s);
        ts->histograms[j] = h;
    }
    ts->n_exemplars = s->n_exemplars;
    ts->exemplars = arena_alloc(a, s->n_exemplars * sizeof *ts->exemplars);
    for (size_t j = 0; j < s->n_exemplars; j++) {
        Io__Prometheus__Write__V2__Exemplar *e = arena_alloc(a, sizeof *e);
        io__prometheus__write__v2__exemplar__init(e);
        e->timestamp = first_ts(s);
        ts->exemplars[j] = e;
    }
    Io__Prometheus__Write__V2__Metadata *m = arena_alloc(a, sizeof *m);
    io__prometheus__write__v2__metadata__init(m);
    m->type = (Io__Prometheus__Write__V2__Metadata__MetricType)s->type;
    const struct api_rw_metadata *md = find_metadata(req, s);
    if (md && md->help)
        m->help_ref = symtab_ref(t, md->help, strlen(md->help));
    if (md && md->unit)
        m->unit_ref = symtab_ref(t, md->unit, strlen(md->unit));
    ts->metadata = m;
    return ts;
}

static int encode_v2(const struct api_rw_request *req, unsigned flags, struct buf *out, struct arena *a)
{
    struct symtab t = {.a = a};
    symtab_ref(&t, "", 0); /* symbols[0] is always "" */
    Io__Prometheus__Write__V2__Request rq = IO__PROMETHEUS__WRITE__V2__REQUEST__INIT;
    rq.n_timeseries = req->n_series;
    rq.timeseries = arena_alloc(a, req->n_series * sizeof *rq.timeseries);
    for (size_t i = 0; i < req->n_series; i++)
        rq.timeseries[i] = series_v2(a, &t, req, &req->series[i]);
    rq.n_symbols = t.n;
    rq.symbols = t.str;
    return finish(&rq.base, flags, out);
}

int api_rw_encode(const struct api_rw_request *req, int version, unsigned flags, struct buf *out)
{
    struct arena a;
    arena_init(&a, 0);
    int rc = version == 2 ? encode_v2(req, flags, out, &a) : encode_v1(req, flags, out, &a);
    arena_free(&a);
    return rc;
}

int api_rw_encode_v1(const struct api_rw_request *req, struct buf *out)
{
    return api_rw_encode(req, 1, 0, out);
}

int api_rw_encode_v2(const struct api_rw_request *req, struct buf *out)
{
    return api_rw_encode(req, 2, 0, out);
}
