/*
 * rules_parse: the configuration loader (prometheus-adapter's YAML, the
 * subset described in rules.h).
 *
 * DESIGN
 *
 * libyaml loads the file into a document (a node graph); the loader walks it
 * with a fixed schema and builds rules into the set's arena. Two small
 * parsers do the rest by hand, because they are tiny and no Debian library
 * parses PromQL: one for the seriesQuery (a series selector) and one for the
 * metricsQuery template, which accepts exactly the aggregation shapes the
 * adapter can evaluate from memory and names anything else in its error.
 *
 * Every error goes through fail(), which prefixes the rule ("rules[2]
 * (seriesQuery '...'): ") so that an operator can find the line to fix. The
 * loader stops at the first error and frees everything it built.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "rules_impl.h"

#define MAX_RULES 10000

struct ctx {
    struct rules_set *s;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
    const char *list; /* "rules" or "externalRules", NULL outside a rule */
    size_t index;
    const char *sq; /* the rule's seriesQuery, once known */
};

static int fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct ctx *c, const char *fmt, ...)
{
    char msg[RULES_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->list && c->sq)
        snprintf(c->err, c->errlen, "%s[%zu] (seriesQuery '%.120s'): %s", c->list, c->index, c->sq, msg);
    else if (c->list)
        snprintf(c->err, c->errlen, "%s[%zu]: %s", c->list, c->index, msg);
    else
        snprintf(c->err, c->errlen, "%s", msg);
    return -EINVAL;
}

/* ---- YAML helpers ---- */

static yaml_node_t *node(struct ctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

/* A plain empty or "null"/"~" scalar, as YAML reads it. */
static bool is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t l = n->data.scalar.length;
    return l == 0 || (l == 1 && v[0] == '~') || (l == 4 && strncasecmp(v, "null", 4) == 0);
}

/* A string field: a scalar without NUL bytes (a null reads as ""). */
static int get_str(struct ctx *c, const yaml_node_t *n, const char *what, const char **out)
{
    if (is_null(n)) {
        *out = "";
        return 0;
    }
    if (n->type != YAML_SCALAR_NODE)
        return fail(c, "%s must be a string", what);
    size_t l = n->data.scalar.length;
    if (memchr(n->data.scalar.value, '\0', l))
        return fail(c, "%s contains a NUL byte", what);
    *out = rules__strndup(c->s, (const char *)n->data.scalar.value, l);
    return 0;
}

static int get_bool(struct ctx *c, const yaml_node_t *n, const char *what, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    if (n && n->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)n->data.scalar.value;
        for (int i = 0; i < 3; i++) {
            if (strcasecmp(v, yes[i]) == 0) {
                *out = true;
                return 0;
            }
            if (strcasecmp(v, no[i]) == 0) {
                *out = false;
                return 0;
            }
        }
    }
    return fail(c, "%s must be true or false", what);
}

static const char *key_of(const yaml_node_t *k)
{
    return k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
}

/*
 * Refuse keys outside @allowed and repeated keys in mapping @m: a typo such
 * as "metricQuery" or a second "name:" would otherwise change what the rule
 * means without a word. @where prefixes the message ("resources: ").
 */
static int check_keys(struct ctx *c, const yaml_node_t *m, const char *const *allowed, const char *where)
{
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = key_of(node(c, p->key));
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(k, *a) == 0;
        if (!ok)
            return fail(c, "%sunknown key '%s'", where, k);
        for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++)
            if (strcmp(key_of(node(c, q->key)), k) == 0)
                return fail(c, "%skey '%s' appears twice", where, k);
    }
    return 0;
}

/* ---- series selectors and label matchers ---- */

struct lexer {
    const char *p, *end;
};

static void skip_ws(struct lexer *l)
{
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r'))
        l->p++;
}

static bool ident_start(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':';
}

static bool ident_char(char ch)
{
    return ident_start(ch) || (ch >= '0' && ch <= '9');
}

/* An identifier (metric or label name; label names may not contain ':',
 * which the caller checks where it matters). Returns its length, 0 if none. */
static size_t lex_ident(struct lexer *l)
{
    const char *s = l->p;
    if (l->p < l->end && ident_start(*l->p))
        while (l->p < l->end && ident_char(*l->p))
            l->p++;
    return (size_t)(l->p - s);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static void put_utf8(char *o, size_t *n, unsigned long cp)
{
    if (cp < 0x80) {
        o[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (char)(0xc0 | (cp >> 6));
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xe0 | (cp >> 12));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        o[(*n)++] = (char)(0xf0 | (cp >> 18));
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

/* A PromQL string literal: "..." or '...' with Go escapes, or `raw`.
 * Returns 0 and an arena copy, or a negative value with *why set. */
static int lex_string(struct ctx *c, struct lexer *l, char **out, const char **why)
{
    if (l->p >= l->end || (*l->p != '"' && *l->p != '\'' && *l->p != '`')) {
        *why = "expected a quoted string";
        return -1;
    }
    char q = *l->p++;
    /* The decoded string is never longer than the source. */
    char *o = rules__alloc(c->s, (size_t)(l->end - l->p) + 1);
    size_t n = 0;
    while (l->p < l->end && *l->p != q) {
        char ch = *l->p++;
        if (ch == '\0' || (ch == '\n' && q != '`')) {
            *why = "string with a NUL or a newline";
            return -1;
        }
        if (ch != '\\' || q == '`') {
            o[n++] = ch;
            continue;
        }
        if (l->p >= l->end)
            break;
        char e = *l->p++;
        int digits = 0;
        switch (e) {
        case 'a':
            o[n++] = '\a';
            break;
        case 'b':
            o[n++] = '\b';
            break;
        case 'f':
            o[n++] = '\f';
            break;
        case 'n':
            o[n++] = '\n';
            break;
        case 'r':
            o[n++] = '\r';
            break;
        case 't':
            o[n++] = '\t';
            break;
        case 'v':
            o[n++] = '\v';
            break;
        case '\\':
        case '"':
        case '\'':
            o[n++] = e;
            break;
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = 4;
            break;
        case 'U':
            digits = 8;
            break;
        default:
            *why = "unsupported escape sequence in string";
            return -1;
        }
        if (digits) {
            unsigned long cp = 0;
            for (int i = 0; i < digits; i++) {
                int h = l->p < l->end ? hexval(*l->p) : -1;
                if (h < 0) {
                    *why = "bad hexadecimal escape in string";
                    return -1;
                }
                cp = cp * 16 + (unsigned long)h;
                l->p++;
            }
            if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) {
                *why = "bad character escape in string";
                return -1;
            }
            if (e == 'x')
                o[n++] = (char)cp;
            else
                put_utf8(o, &n, cp);
        }
    }
    if (l->p >= l->end) {
        *why = "unterminated string";
        return -1;
    }
    l->p++;
    o[n] = '\0';
    *out = o;
    return 0;
}

/* Growable matcher list in the arena. */
struct mlist {
    struct rules_matcher *v;
    size_t n, cap;
};

static struct rules_matcher *mlist_push(struct ctx *c, struct mlist *m)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 8;
        struct rules_matcher *nv = rules__alloc(c->s, cap * sizeof(*nv));
        if (m->n)
            memcpy(nv, m->v, m->n * sizeof(*nv));
        m->v = nv;
        m->cap = cap;
    }
    return &m->v[m->n++];
}

/* One matcher `label op "value"`; the lexer sits on the label name. */
static int parse_matcher(struct ctx *c, struct lexer *l, struct mlist *m, const char *what)
{
    const char *name = l->p;
    size_t nl = lex_ident(l);
    if (nl == 0 || memchr(name, ':', nl))
        return fail(c, "%s: expected a label name at '%.20s'", what, name);
    skip_ws(l);
    enum rules_op op;
    if (l->end - l->p >= 2 && l->p[0] == '=' && l->p[1] == '~')
        op = RULES_OP_RE, l->p += 2;
    else if (l->end - l->p >= 2 && l->p[0] == '!' && l->p[1] == '~')
        op = RULES_OP_NRE, l->p += 2;
    else if (l->end - l->p >= 2 && l->p[0] == '!' && l->p[1] == '=')
        op = RULES_OP_NEQ, l->p += 2;
    else if (l->p < l->end && l->p[0] == '=')
        op = RULES_OP_EQ, l->p += 1;
    else
        return fail(c, "%s: expected =, !=, =~ or !~ after '%.*s'", what, (int)nl, name);
    skip_ws(l);
    char *value;
    const char *why;
    if (lex_string(c, l, &value, &why) < 0)
        return fail(c, "%s: %s for label '%.*s'", what, why, (int)nl, name);
    struct rules_matcher *mt = mlist_push(c, m);
    mt->name = rules__strndup(c->s, name, nl);
    mt->value = value;
    mt->op = op;
    if (op == RULES_OP_RE || op == RULES_OP_NRE) {
        char e[200];
        mt->_re = rules__compile(c->s, value, strlen(value), true, e, sizeof(e));
        if (!mt->_re)
            return fail(c, "%s: bad regex '%s' for label '%s': %s", what, value, mt->name, e);
    }
    return 0;
}

/* seriesQuery: [name] ['{' matchers '}']. */
static int parse_series_query(struct ctx *c, struct rules_rule *r, const char *q)
{
    struct lexer l = {q, q + strlen(q)};
    struct mlist m = {0};
    skip_ws(&l);
    const char *name = l.p;
    size_t nl = lex_ident(&l);
    if (nl) {
        struct rules_matcher *mt = mlist_push(c, &m);
        mt->name = "__name__";
        mt->value = rules__strndup(c->s, name, nl);
        mt->op = RULES_OP_EQ;
        r->_exact_name = mt->value;
    }
    skip_ws(&l);
    if (l.p < l.end && *l.p == '{') {
        l.p++;
        for (;;) {
            skip_ws(&l);
            if (l.p < l.end && *l.p == '}')
                break;
            int rc = parse_matcher(c, &l, &m, "seriesQuery");
            if (rc < 0)
                return rc;
            skip_ws(&l);
            if (l.p < l.end && *l.p == ',') {
                l.p++;
                continue;
            }
            if (l.p >= l.end || *l.p != '}')
                return fail(c, "seriesQuery: expected ',' or '}' at '%.20s'", l.p);
        }
        l.p++;
    }
    skip_ws(&l);
    if (l.p != l.end)
        return fail(c, "seriesQuery: unsupported text '%.30s' (only a series selector is allowed)", l.p);
    if (m.n == 0)
        return fail(c, "seriesQuery: empty selector");
    for (size_t i = 0; i < m.n; i++) {
        if (strcmp(m.v[i].name, "__name__") == 0 && m.v[i].op == RULES_OP_EQ) {
            if (r->_exact_name && strcmp(r->_exact_name, m.v[i].value) != 0)
                return fail(c, "seriesQuery: two different metric names");
            r->_exact_name = m.v[i].value;
        }
    }
    r->_sel = m.v;
    r->_n_sel = m.n;
    return 0;
}

/* ---- metricsQuery ---- */

enum tok { T_EOF, T_IDENT, T_PUNCT, T_STRING, T_ACTION, T_OTHER };

/* Read a template action "<< .Field >>" into *field; false if not one. */
static bool lex_action(struct lexer *l, const char **field, size_t *flen)
{
    if (l->end - l->p < 2 || l->p[0] != '<' || l->p[1] != '<')
        return false;
    const char *close = NULL;
    for (const char *p = l->p + 2; p + 1 < l->end; p++)
        if (p[0] == '>' && p[1] == '>') {
            close = p;
            break;
        }
    if (!close)
        return false;
    const char *s = l->p + 2, *e = close;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *field = s;
    *flen = (size_t)(e - s);
    l->p = close + 2;
    return true;
}

static bool field_is(const char *f, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(f, want, n) == 0;
}

/* The next token, without consuming it when @peek. */
static enum tok next_tok(struct lexer *l, const char **s, size_t *n, bool peek)
{
    struct lexer save = *l;
    skip_ws(l);
    enum tok t;
    *s = l->p;
    if (l->p >= l->end) {
        t = T_EOF;
        *n = 0;
    } else if (ident_start(*l->p)) {
        *n = lex_ident(l);
        t = T_IDENT;
    } else if (lex_action(l, s, n)) {
        t = T_ACTION;
    } else if (strchr("(){}[],", *l->p)) {
        *n = 1;
        l->p++;
        t = T_PUNCT;
    } else {
        *n = 1;
        t = T_OTHER;
    }
    if (peek)
        *l = save;
    return t;
}

static bool punct_is(enum tok t, const char *s, char ch)
{
    return t == T_PUNCT && *s == ch;
}

static int expect(struct ctx *c, struct lexer *l, char ch, const char *ctxt)
{
    const char *s;
    size_t n;
    enum tok t = next_tok(l, &s, &n, false);
    if (!punct_is(t, s, ch))
        return fail(c, "metricsQuery: expected '%c' %s, found '%.20s'", ch, ctxt,
                    t == T_EOF ? "end of query" : s);
    return 0;
}

/* PromQL duration: one or more <number><unit>, units ms s m h d w y. */
static bool parse_duration(const char *p, size_t n, int64_t *out)
{
    int64_t total = 0;
    size_t i = 0;
    if (n == 0)
        return false;
    while (i < n) {
        int64_t v = 0;
        size_t d0 = i;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            if (v > INT64_MAX / 10 - 10)
                return false;
            v = v * 10 + (p[i++] - '0');
        }
        if (i == d0 || i == n)
            return false;
        int64_t mul;
        if (n - i >= 2 && p[i] == 'm' && p[i + 1] == 's')
            mul = 1, i += 2;
        else if (p[i] == 's')
            mul = 1000, i++;
        else if (p[i] == 'm')
            mul = 60000, i++;
        else if (p[i] == 'h')
            mul = 3600000, i++;
        else if (p[i] == 'd')
            mul = 86400000, i++;
        else if (p[i] == 'w')
            mul = 7 * 86400000LL, i++;
        else if (p[i] == 'y')
            mul = 365 * 86400000LL, i++;
        else
            return false;
        if (v > (INT64_MAX - total) / mul)
            return false;
        total += v * mul;
    }
    *out = total;
    return total > 0;
}

/* <<.Series>>{<<.LabelMatchers>>, extra...}: the lexer sits on <<.Series>>. */
static int parse_vector(struct ctx *c, struct rules_rule *r, struct lexer *l)
{
    const char *s;
    size_t n;
    enum tok t = next_tok(l, &s, &n, false);
    if (t != T_ACTION || !field_is(s, n, ".Series"))
        return fail(c, "metricsQuery: expected <<.Series>>{<<.LabelMatchers>>...}, found '%.20s'", s);
    int rc = expect(c, l, '{', "after <<.Series>> (the query must select <<.LabelMatchers>>)");
    if (rc < 0)
        return rc;
    struct mlist m = {0};
    int seen = 0;
    for (;;) {
        t = next_tok(l, &s, &n, true);
        if (punct_is(t, s, '}'))
            break;
        if (t == T_ACTION) {
            next_tok(l, &s, &n, false);
            if (!field_is(s, n, ".LabelMatchers"))
                return fail(c, "metricsQuery: unsupported template field '<<%.*s>>' in the selector", (int)n,
                            s);
            seen++;
        } else if (t == T_IDENT) {
            skip_ws(l);
            if ((rc = parse_matcher(c, l, &m, "metricsQuery")) < 0)
                return rc;
        } else {
            return fail(c, "metricsQuery: unexpected '%.20s' in the selector", t == T_EOF ? "end" : s);
        }
        t = next_tok(l, &s, &n, true);
        if (punct_is(t, s, '}'))
            break;
        if (!punct_is(t, s, ','))
            return fail(c, "metricsQuery: expected ',' or '}' in the selector, found '%.20s'",
                        t == T_EOF ? "end" : s);
        next_tok(l, &s, &n, false);
    }
    next_tok(l, &s, &n, false); /* the '}' */
    if (seen != 1)
        return fail(c, "metricsQuery: the selector must contain <<.LabelMatchers>> exactly once");
    r->extra = m.v;
    r->n_extra = m.n;
    return 0;
}

/* by (<<.GroupBy>>), or for external rules by (a, b) / by (). */
static int parse_by(struct ctx *c, struct rules_rule *r, struct lexer *l)
{
    int rc = expect(c, l, '(', "after 'by'");
    if (rc < 0)
        return rc;
    const char *s;
    size_t n;
    enum tok t = next_tok(l, &s, &n, true);
    if (t == T_ACTION) {
        next_tok(l, &s, &n, false);
        if (!field_is(s, n, ".GroupBy"))
            return fail(c, "metricsQuery: unsupported template field '<<%.*s>>' in 'by'", (int)n, s);
        return expect(c, l, ')', "after by (<<.GroupBy>> (extra grouping labels are not supported)");
    }
    if (!r->external)
        return fail(c, "metricsQuery: a custom rule must group by (<<.GroupBy>>)");
    const char **v = rules__alloc(c->s, 64 * sizeof(*v));
    size_t k = 0;
    while (!punct_is(t, s, ')')) {
        next_tok(l, &s, &n, false);
        if (t != T_IDENT || memchr(s, ':', n) || k == 64)
            return fail(c, "metricsQuery: expected label names in 'by', found '%.20s'",
                        t == T_EOF ? "end" : s);
        v[k++] = rules__strndup(c->s, s, n);
        t = next_tok(l, &s, &n, true);
        if (punct_is(t, s, ',')) {
            next_tok(l, &s, &n, false);
            t = next_tok(l, &s, &n, true);
        } else if (!punct_is(t, s, ')')) {
            return fail(c, "metricsQuery: expected ',' or ')' in 'by', found '%.20s'",
                        t == T_EOF ? "end" : s);
        }
    }
    next_tok(l, &s, &n, false);
    r->group_by = v;
    r->n_group_by = k;
    return 0;
}

static bool by_keyword(struct lexer *l, struct ctx *c, int *rc)
{
    const char *s;
    size_t n;
    enum tok t = next_tok(l, &s, &n, true);
    *rc = 0;
    if (t != T_IDENT)
        return false;
    if (n == 7 && strncasecmp(s, "without", 7) == 0) {
        *rc = fail(c, "metricsQuery: 'without' is not supported, use by (<<.GroupBy>>)");
        return false;
    }
    if (n != 2 || strncasecmp(s, "by", 2) != 0)
        return false;
    next_tok(l, &s, &n, false);
    return true;
}

/*
 * The whole metricsQuery: AGG [by (..)] ( [FN (] vector [[W] )] ) [by (..)].
 * The grammar is small enough to walk by hand; each branch names what it
 * refuses, because that message is what an operator reads at start-up.
 */
static int parse_metrics_query(struct ctx *c, struct rules_rule *r, const char *q)
{
    static const char *const aggs[] = {"sum", "avg", "max", "min", "count"};
    static const char *const fns[] = {"", "rate", "irate", "increase"};
    struct lexer l = {q, q + strlen(q)};
    const char *s;
    size_t n;
    int rc;
    enum tok t = next_tok(&l, &s, &n, false);
    if (t == T_EOF)
        return fail(c, "metricsQuery is missing");
    if (t != T_IDENT)
        return fail(c, "metricsQuery: expected an aggregation (sum, avg, max, min, count), found '%.20s'", s);
    int agg = -1;
    for (int i = 0; i < 5; i++)
        if (strlen(aggs[i]) == n && strncasecmp(s, aggs[i], n) == 0)
            agg = i;
    if (agg < 0)
        return fail(
            c,
            "metricsQuery: unsupported aggregation or function '%.*s' (supported: sum, avg, max, min, "
            "count over rate, irate, increase or a plain selector)",
            (int)n, s);
    r->agg = (enum rules_agg)agg;
    bool by = by_keyword(&l, c, &rc);
    if (rc < 0)
        return rc;
    if (by && (rc = parse_by(c, r, &l)) < 0)
        return rc;
    if ((rc = expect(c, &l, '(', "after the aggregation")) < 0)
        return rc;
    t = next_tok(&l, &s, &n, true);
    if (t == T_IDENT) {
        next_tok(&l, &s, &n, false);
        int fn = -1;
        for (int i = 1; i < 4; i++)
            if (strlen(fns[i]) == n && memcmp(s, fns[i], n) == 0)
                fn = i;
        if (fn < 0)
            return fail(c, "metricsQuery: unsupported function '%.*s' (supported: rate, irate, increase)",
                        (int)n, s);
        r->fn = (enum rules_fn)fn;
        if ((rc = expect(c, &l, '(', "after the function")) < 0 || (rc = parse_vector(c, r, &l)) < 0 ||
            (rc = expect(c, &l, '[', "(the function needs a range such as [2m])")) < 0)
            return rc;
        const char *w = l.p, *close = memchr(l.p, ']', (size_t)(l.end - l.p));
        if (!close)
            return fail(c, "metricsQuery: unterminated range");
        while (w < close && *w == ' ')
            w++;
        const char *we = close;
        while (we > w && we[-1] == ' ')
            we--;
        if (memchr(w, ':', (size_t)(we - w)))
            return fail(c, "metricsQuery: subqueries are not supported");
        if (!parse_duration(w, (size_t)(we - w), &r->window_ms))
            return fail(c, "metricsQuery: bad range duration '%.*s'", (int)(we - w), w);
        l.p = close + 1;
        t = next_tok(&l, &s, &n, true);
        if (t == T_IDENT && n == 6 && memcmp(s, "offset", 6) == 0)
            return fail(c, "metricsQuery: offset is not supported");
        if ((rc = expect(c, &l, ')', "after the range")) < 0)
            return rc;
    } else {
        r->fn = RULES_FN_NONE;
        if ((rc = parse_vector(c, r, &l)) < 0)
            return rc;
        t = next_tok(&l, &s, &n, true);
        if (punct_is(t, s, '['))
            return fail(c, "metricsQuery: a range needs rate, irate or increase around it");
        if (t == T_IDENT && n == 6 && memcmp(s, "offset", 6) == 0)
            return fail(c, "metricsQuery: offset is not supported");
    }
    if ((rc = expect(c, &l, ')', "closing the aggregation (arithmetic is not supported)")) < 0)
        return rc;
    if (!by) {
        by = by_keyword(&l, c, &rc);
        if (rc < 0)
            return rc;
        if (by && (rc = parse_by(c, r, &l)) < 0)
            return rc;
    }
    if (!by && !r->external)
        return fail(c, "metricsQuery: a custom rule must group by (<<.GroupBy>>)");
    t = next_tok(&l, &s, &n, false);
    if (t != T_EOF)
        return fail(c,
                    "metricsQuery: unsupported '%.30s' after the aggregation (arithmetic, comparisons and "
                    "nested functions are not supported)",
                    s);
    return 0;
}

/* ---- resources ---- */

struct rlist {
    struct rules_label_res *v;
    size_t n, cap;
};

/* Add label -> resource unless the label is already mapped (overrides win). */
static void rlist_add(struct ctx *c, struct rlist *rl, const char *label, struct rules_resource res)
{
    for (size_t i = 0; i < rl->n; i++)
        if (strcmp(rl->v[i].label, label) == 0)
            return;
    if (rl->n == rl->cap) {
        size_t cap = rl->cap ? 2 * rl->cap : 8;
        struct rules_label_res *nv = rules__alloc(c->s, cap * sizeof(*nv));
        if (rl->n)
            memcpy(nv, rl->v, rl->n * sizeof(*nv));
        rl->v = nv;
        rl->cap = cap;
    }
    rl->v[rl->n].label = label;
    rl->v[rl->n].res = res;
    rl->n++;
}

/* Render a resource template for one known resource: <<.Group>> with dots and
 * dashes made underscores, <<.Resource>> singular, as prometheus-adapter does. */
static int render_template(struct ctx *c, const char *tpl, const struct rules_resource *res,
                           const char *singular, char *out, size_t outlen)
{
    struct lexer l = {tpl, tpl + strlen(tpl)};
    size_t n = 0;
    while (l.p < l.end) {
        const char *f;
        size_t fl;
        const char *add;
        size_t al;
        char group[64];
        if (lex_action(&l, &f, &fl)) {
            if (field_is(f, fl, ".Resource")) {
                add = singular;
            } else if (field_is(f, fl, ".Group")) {
                snprintf(group, sizeof(group), "%s", res->group);
                for (char *g = group; *g; g++)
                    if (*g == '.' || *g == '-')
                        *g = '_';
                add = group;
            } else {
                return fail(c, "resources.template: unsupported template field '<<%.*s>>'", (int)fl, f);
            }
            al = strlen(add);
        } else {
            add = l.p++;
            al = 1;
        }
        if (n + al >= outlen)
            return fail(c, "resources.template: too long");
        memcpy(out + n, add, al);
        n += al;
    }
    out[n] = '\0';
    return 0;
}

static int parse_override(struct ctx *c, struct rlist *rl, const char *label, const yaml_node_t *v)
{
    if (!v || v->type != YAML_MAPPING_NODE)
        return fail(c, "resources.overrides.%s must be a mapping {group, resource}", label);
    static const char *const keys[] = {"group", "resource", NULL};
    char where[160];
    snprintf(where, sizeof(where), "resources.overrides.%.100s: ", label);
    int rc = check_keys(c, v, keys, where);
    if (rc < 0)
        return rc;
    const char *group = "", *res = "";
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        const char *k = key_of(node(c, p->key));
        if (strcmp(k, "group") == 0)
            rc = get_str(c, node(c, p->value), "resources.overrides group", &group);
        else if (strcmp(k, "resource") == 0)
            rc = get_str(c, node(c, p->value), "resources.overrides resource", &res);
        if (rc < 0)
            return rc;
    }
    if (!*res)
        return fail(c, "resources.overrides.%s has no resource", label);
    if (!ident_start(label[0]) || strchr(label, ':'))
        return fail(c, "resources.overrides: '%s' is not a label name", label);
    rlist_add(c, rl, label, rules__resolve_resource(c->s, group, res));
    return 0;
}

static int parse_resources(struct ctx *c, struct rules_rule *r, const yaml_node_t *v, bool *namespaced_set,
                           bool *namespaced)
{
    struct rlist rl = {0};
    const char *tpl = NULL;
    if (!is_null(v)) {
        if (v->type != YAML_MAPPING_NODE)
            return fail(c, "resources must be a mapping");
        static const char *const keys[] = {"overrides", "template", "namespaced", NULL};
        int rc = check_keys(c, v, keys, "resources: ");
        if (rc < 0)
            return rc;
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
            const char *k = key_of(node(c, p->key));
            yaml_node_t *val = node(c, p->value);
            if (strcmp(k, "overrides") == 0) {
                if (is_null(val))
                    continue;
                if (val->type != YAML_MAPPING_NODE)
                    return fail(c, "resources.overrides must be a mapping");
                for (yaml_node_pair_t *o = val->data.mapping.pairs.start; o < val->data.mapping.pairs.top;
                     o++) {
                    const char *label;
                    if ((rc = get_str(c, node(c, o->key), "resources.overrides label", &label)) < 0 ||
                        (rc = parse_override(c, &rl, label, node(c, o->value))) < 0)
                        return rc;
                }
            } else if (strcmp(k, "template") == 0) {
                rc = get_str(c, val, "resources.template", &tpl);
            } else if (strcmp(k, "namespaced") == 0) {
                *namespaced_set = true;
                rc = get_bool(c, val, "resources.namespaced", namespaced);
            }
            if (rc < 0)
                return rc;
        }
    }
    if (tpl && *tpl) {
        const char *singular;
        const struct rules_resource *k;
        for (size_t i = 0; (k = rules__known_at(i, &singular)) != NULL; i++) {
            char label[256];
            int rc = render_template(c, tpl, k, singular, label, sizeof(label));
            if (rc < 0)
                return rc;
            if (*label && ident_start(label[0]))
                rlist_add(c, &rl, rules__strdup(c->s, label), *k);
        }
    }
    rules__sort_res(rl.v, rl.n);
    r->_res = rl.v;
    r->_n_res = rl.n;
    return 0;
}

/* ---- name ---- */

static bool literal_char(char ch)
{
    return ident_char(ch);
}

static size_t literal_span(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && literal_char(p[i]))
        i++;
    return i;
}

/* Split `as` into A <ref> B with at most one reference; returns the group
 * number (-1: no reference, -2: anything more complex). */
static int split_as(const char *as, size_t *a_len, const char **b)
{
    const char *d = strchr(as, '$');
    if (!d) {
        *a_len = strlen(as);
        *b = as + *a_len;
        return -1;
    }
    const char *p = d + 1;
    bool brace = *p == '{';
    if (brace)
        p++;
    size_t k = 0;
    while (p[k] >= '0' && p[k] <= '9' && k < 3)
        k++;
    if (k == 0)
        return -2;
    const char *end = p + k;
    if (brace) {
        if (*end != '}')
            return -2;
        end++;
    } else if (ident_char(*end) && *end != ':') {
        return -2; /* "$1x" names group "1x" in Go's syntax */
    }
    if (strchr(end, '$'))
        return -2;
    *a_len = (size_t)(d - as);
    *b = end;
    return atoi(p);
}

/*
 * Work out how to go from a served metric name back to its source series
 * name, for the common shapes; everything else is left to name scans. The
 * result is always checked with rules_name_serves() before use, so a shape
 * misread here can cost a lookup miss, never a wrong series.
 */
static void analyse_name(struct ctx *c, struct rules_rule *r, const char *matches)
{
    size_t a_len;
    const char *b;
    int g = split_as(r->_name_as, &a_len, &b);
    if (r->_exact_name) {
        r->_inv_kind = 1;
        r->_inv_src = r->_exact_name;
        return;
    }
    if (g == -2)
        return;
    const char *m = matches;
    size_t ml = strlen(m);
    bool caret = ml && m[0] == '^', dollar = ml && m[ml - 1] == '$';
    const char *body = m + caret;
    size_t bl = ml - caret - dollar;
    size_t pl = literal_span(body, bl);
    if (ml == 0) {
        if (g != 0)
            return;
        pl = 0; /* ".*": the whole name */
    } else if (pl == bl) {
        /* ^literal$: the only name that can match */
        if (caret && dollar) {
            r->_inv_kind = 1;
            r->_inv_src = rules__strndup(c->s, body, bl);
        }
        return;
    } else {
        const char *grp = body + pl;
        size_t rest = bl - pl;
        if (rest < 4 || (memcmp(grp, "(.*)", 4) != 0 && memcmp(grp, "(.+)", 4) != 0))
            return;
        size_t sl = literal_span(grp + 4, rest - 4);
        if (sl != rest - 4 || (!caret && pl) || (!dollar && sl) || g != 1)
            return;
        r->_inv_p = rules__strndup(c->s, body, pl);
        r->_inv_s = rules__strndup(c->s, grp + 4, sl);
    }
    if (!r->_inv_p) {
        r->_inv_p = "";
        r->_inv_s = "";
    }
    r->_inv_kind = 2;
    r->_inv_a = rules__strndup(c->s, r->_name_as, a_len);
    r->_inv_b = rules__strdup(c->s, b);
}

static int parse_name(struct ctx *c, struct rules_rule *r, const yaml_node_t *v)
{
    const char *matches = "", *as = "";
    if (!is_null(v)) {
        if (v->type != YAML_MAPPING_NODE)
            return fail(c, "name must be a mapping {matches, as}");
        static const char *const keys[] = {"matches", "as", NULL};
        int rc = check_keys(c, v, keys, "name: ");
        if (rc < 0)
            return rc;
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
            const char *k = key_of(node(c, p->key));
            if (strcmp(k, "matches") == 0)
                rc = get_str(c, node(c, p->value), "name.matches", &matches);
            else
                rc = get_str(c, node(c, p->value), "name.as", &as);
            if (rc < 0)
                return rc;
        }
    }
    uint32_t groups = 0;
    if (*matches) {
        char e[200];
        r->_name_re = rules__compile(c->s, matches, strlen(matches), false, e, sizeof(e));
        if (!r->_name_re)
            return fail(c, "name.matches: bad regex '%s': %s", matches, e);
        pcre2_pattern_info(r->_name_re, PCRE2_INFO_CAPTURECOUNT, &groups);
    }
    if (!*as) {
        /* prometheus-adapter's default: the whole match, or the only group. */
        if (groups > 1)
            return fail(c, "name: 'as' is required when name.matches '%s' has %u capture groups", matches,
                        groups);
        as = groups ? "$1" : "$0";
    }
    r->_name_as = as;
    analyse_name(c, r, matches);
    return 0;
}

static int parse_filters(struct ctx *c, struct rules_rule *r, const yaml_node_t *v)
{
    if (is_null(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, "seriesFilters must be a list");
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    struct rules_filter *f = rules__alloc(c->s, (n ? n : 1) * sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = node(c, v->data.sequence.items.start[i]);
        if (!it || it->type != YAML_MAPPING_NODE)
            return fail(c, "seriesFilters[%zu] must be a mapping {is} or {isNot}", i);
        static const char *const keys[] = {"is", "isNot", NULL};
        char where[64];
        snprintf(where, sizeof(where), "seriesFilters[%zu]: ", i);
        int rc = check_keys(c, it, keys, where);
        if (rc < 0)
            return rc;
        const char *re = NULL;
        int seen = 0;
        for (yaml_node_pair_t *p = it->data.mapping.pairs.start; p < it->data.mapping.pairs.top; p++) {
            const char *k = key_of(node(c, p->key));
            const char *val;
            if ((rc = get_str(c, node(c, p->value), "seriesFilters value", &val)) < 0)
                return rc;
            if (*val) {
                re = val;
                f[i].positive = k[2] == '\0';
                seen++;
            }
        }
        if (seen != 1)
            return fail(c, "seriesFilters[%zu] must have exactly one of 'is' and 'isNot'", i);
        char e[200];
        f[i].re = rules__compile(c->s, re, strlen(re), false, e, sizeof(e));
        if (!f[i].re)
            return fail(c, "seriesFilters[%zu]: bad regex '%s': %s", i, re, e);
    }
    r->_filters = f;
    r->_n_filters = n;
    return 0;
}

/* ---- rules ---- */

static const yaml_node_t *field(struct ctx *c, const yaml_node_t *m, const char *name)
{
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
        if (strcmp(key_of(node(c, p->key)), name) == 0)
            return node(c, p->value);
    return NULL;
}

static int parse_rule(struct ctx *c, const yaml_node_t *m, bool external)
{
    static const char *const keys[] = {"seriesQuery", "seriesFilters", "resources",
                                       "name",        "metricsQuery",  NULL};
    if (!m || m->type != YAML_MAPPING_NODE)
        return fail(c, "a rule must be a mapping");
    const char *sq = NULL;
    int rc = get_str(c, field(c, m, "seriesQuery"), "seriesQuery", &sq);
    if (rc < 0)
        return rc;
    if (!*sq)
        return fail(c, "seriesQuery is missing");
    c->sq = sq;
    if (field(c, m, "labelValueReplacements"))
        return fail(c, "labelValueReplacements is not supported");
    if ((rc = check_keys(c, m, keys, "")) < 0)
        return rc;
    struct rules_rule *r = rules__add_rule(c->s);
    r->index = (unsigned)c->index;
    r->external = external;
    r->series_query = sq;
    bool ns_set = false, namespaced = true;
    if ((rc = parse_series_query(c, r, sq)) < 0 ||
        (rc = parse_filters(c, r, field(c, m, "seriesFilters"))) < 0 ||
        (rc = parse_resources(c, r, field(c, m, "resources"), &ns_set, &namespaced)) < 0 ||
        (rc = parse_name(c, r, field(c, m, "name"))) < 0 ||
        (rc = get_str(c, field(c, m, "metricsQuery"), "metricsQuery", &r->query)) < 0 ||
        (rc = parse_metrics_query(c, r, r->query)) < 0)
        return rc;
    for (size_t i = 0; i < r->_n_res; i++)
        if (strcmp(r->_res[i].res.resource, "namespaces") == 0 && !*r->_res[i].res.group)
            r->namespace_label = r->_res[i].label;
    if (external) {
        if (ns_set && !namespaced) {
            r->ns_mode = RULES_NS_NONE;
            r->namespace_label = NULL;
        } else if (r->namespace_label) {
            r->ns_mode = RULES_NS_EQUAL;
        } else {
            return fail(c, "no label maps to the namespace resource: add resources.overrides for it (e.g. "
                           "namespace: {resource: namespace}) or set resources.namespaced: false");
        }
    } else {
        r->ns_mode = RULES_NS_EQUAL;
        if (r->_n_res == 0)
            return fail(c, "resources maps no label to a Kubernetes resource, so the rule can serve nothing");
    }
    return 0;
}

static int parse_list(struct ctx *c, const yaml_node_t *v, const char *list, bool external)
{
    if (is_null(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, "%s must be a list", list);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        c->list = list;
        c->index = (size_t)(it - v->data.sequence.items.start);
        c->sq = NULL;
        if (c->s->n_rules >= MAX_RULES)
            return fail(c, "more than %d rules", MAX_RULES);
        int rc = parse_rule(c, node(c, *it), external);
        if (rc < 0)
            return rc;
    }
    c->list = NULL;
    return 0;
}

/* Custom rules come first in the set, then external ones: load both lists in
 * that order whatever their order in the file. */
static int parse_root(struct ctx *c)
{
    yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (!root || is_null(root))
        return fail(c, "the configuration is empty");
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, "the configuration must be a mapping with 'rules' and/or 'externalRules'");
    static const char *const keys[] = {"rules", "externalRules", "resourceRules", NULL};
    int rc = check_keys(c, root, keys, "top level: ");
    if (rc < 0)
        return rc;
    if (field(c, root, "resourceRules"))
        rules__warn(c->s, "resourceRules ignored: the adapter does not serve the resource metrics API");
    rc = parse_list(c, field(c, root, "rules"), "rules", false);
    if (rc < 0)
        return rc;
    if ((rc = parse_list(c, field(c, root, "externalRules"), "externalRules", true)) < 0)
        return rc;
    if (c->s->n_rules == 0)
        return fail(c, "the configuration has no rules");
    return 0;
}

int rules_load_buffer(const char *data, size_t len, struct rules_set **out, char *errbuf, size_t errlen)
{
    char scratch[8];
    if (!errbuf || errlen == 0) {
        errbuf = scratch;
        errlen = sizeof(scratch);
    }
    errbuf[0] = '\0';
    if (len > RULES_FILE_MAX) {
        snprintf(errbuf, errlen, "configuration larger than %u bytes", RULES_FILE_MAX);
        return -E2BIG;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        fprintf(stderr, "rules: out of memory\n");
        abort();
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(errbuf, errlen, "bad YAML at line %zu column %zu: %s%s%s", parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "error",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    struct ctx c = {rules__new_set(true), &doc, errbuf, errlen, NULL, 0, NULL};
    int rc = parse_root(&c);
    /* A second document in the stream would be silently ignored: refuse it. */
    if (rc == 0) {
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
            rc = fail(&c, "bad YAML after the first document: %s", parser.problem ? parser.problem : "error");
        } else {
            if (yaml_document_get_root_node(&next))
                rc = fail(&c, "the file holds more than one YAML document");
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc < 0) {
        rules_free(c.s);
        return rc;
    }
    *out = c.s;
    return 0;
}

int rules_load_file(const char *path, struct rules_set **out, char *errbuf, size_t errlen)
{
    char scratch[8];
    if (!errbuf || errlen == 0) {
        errbuf = scratch;
        errlen = sizeof(scratch);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    int e = fstat(fd, &st) < 0 ? errno : st.st_size > (off_t)RULES_FILE_MAX ? E2BIG : 0;
    if (e) {
        snprintf(errbuf, errlen, "%s: %s", path, e == E2BIG ? "file too large" : strerror(e));
        close(fd);
        return -e;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fprintf(stderr, "rules: out of memory\n");
        abort();
    }
    for (;;) {
        if (len == cap) {
            if (cap > RULES_FILE_MAX) {
                snprintf(errbuf, errlen, "%s: file too large", path);
                free(buf);
                close(fd);
                return -E2BIG;
            }
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                fprintf(stderr, "rules: out of memory\n");
                abort();
            }
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
            free(buf);
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    char msg[RULES_ERR_MAX];
    int rc = rules_load_buffer(buf, len, out, msg, sizeof(msg));
    free(buf);
    if (rc < 0)
        snprintf(errbuf, errlen, "%s: %s", path, msg);
    return rc;
}
