/*
 * rules_promql: the two small PromQL parsers of the rules loader.
 *
 * DESIGN
 *
 * No Debian library parses PromQL, and the adapter needs only two shapes of
 * it: a series selector (seriesQuery) and the aggregation templates it can
 * evaluate from memory (metricsQuery). Both are parsed by hand here, with
 * a lexer that also understands the <<.Field>> template actions. The
 * metricsQuery parser accepts exactly the supported shapes and names what it
 * refuses, because that message is what an operator reads at start-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rules_impl.h"

/* ---- series selectors and label matchers ---- */

static void skip_ws(struct rules__lexer *l)
{
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r'))
        l->p++;
}

/* An identifier (metric or label name; label names may not contain ':',
 * which the caller checks where it matters). Returns its length, 0 if none. */
static size_t lex_ident(struct rules__lexer *l)
{
    const char *s = l->p;
    if (l->p < l->end && rules__ident_start(*l->p))
        while (l->p < l->end && rules__ident_char(*l->p))
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
static int lex_string(struct rules__ctx *c, struct rules__lexer *l, char **out, const char **why)
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

static struct rules_matcher *mlist_push(struct rules__ctx *c, struct mlist *m)
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
static int parse_matcher(struct rules__ctx *c, struct rules__lexer *l, struct mlist *m, const char *what)
{
    const char *name = l->p;
    size_t nl = lex_ident(l);
    if (nl == 0 || memchr(name, ':', nl))
        return rules__fail(c, "%s: expected a label name at '%.20s'", what, name);
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
        return rules__fail(c, "%s: expected =, !=, =~ or !~ after '%.*s'", what, (int)nl, name);
    skip_ws(l);
    char *value;
    const char *why;
    if (lex_string(c, l, &value, &why) < 0)
        return rules__fail(c, "%s: %s for label '%.*s'", what, why, (int)nl, name);
    struct rules_matcher *mt = mlist_push(c, m);
    mt->name = rules__strndup(c->s, name, nl);
    mt->value = value;
    mt->op = op;
    if (op == RULES_OP_RE || op == RULES_OP_NRE) {
        char e[200];
        mt->_re = rules__compile(c->s, value, strlen(value), true, e, sizeof(e));
        if (!mt->_re)
            return rules__fail(c, "%s: bad regex '%s' for label '%s': %s", what, value, mt->name, e);
    }
    return 0;
}

/*
 * Ingest asks every rule about every new series, and most rules refuse most
 * series on their metric name: test __name__ first and string comparisons
 * before regexes. The matchers are ANDed, so their order is free.
 */
static int matcher_cost(const struct rules_matcher *m)
{
    int name = strcmp(m->name, "__name__") == 0 ? 0 : 2;
    return name + (m->op == RULES_OP_RE || m->op == RULES_OP_NRE);
}

static void order_matchers(struct rules_matcher *v, size_t n)
{
    for (size_t i = 1; i < n; i++) { /* insertion sort: stable, and n is a handful */
        struct rules_matcher x = v[i];
        size_t j = i;
        for (; j > 0 && matcher_cost(&v[j - 1]) > matcher_cost(&x); j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

/* seriesQuery: [name] ['{' matchers '}']. */
int rules__parse_series_query(struct rules__ctx *c, struct rules_rule *r, const char *q)
{
    struct rules__lexer l = {q, q + strlen(q)};
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
                return rules__fail(c, "seriesQuery: expected ',' or '}' at '%.20s'", l.p);
        }
        l.p++;
    }
    skip_ws(&l);
    if (l.p != l.end)
        return rules__fail(c, "seriesQuery: unsupported text '%.30s' (only a series selector is allowed)",
                           l.p);
    if (m.n == 0)
        return rules__fail(c, "seriesQuery: empty selector");
    for (size_t i = 0; i < m.n; i++) {
        if (strcmp(m.v[i].name, "__name__") == 0 && m.v[i].op == RULES_OP_EQ) {
            if (r->_exact_name && strcmp(r->_exact_name, m.v[i].value) != 0)
                return rules__fail(c, "seriesQuery: two different metric names");
            r->_exact_name = m.v[i].value;
        }
    }
    order_matchers(m.v, m.n);
    r->_sel = m.v;
    r->_n_sel = m.n;
    return 0;
}

/* ---- metricsQuery ---- */

enum tok { T_EOF, T_IDENT, T_PUNCT, T_STRING, T_ACTION, T_OTHER };

/* Read a template action "<< .Field >>" into *field; false if not one. */
bool rules__lex_action(struct rules__lexer *l, const char **field, size_t *flen)
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

/* The next token, without consuming it when @peek. */
static enum tok next_tok(struct rules__lexer *l, const char **s, size_t *n, bool peek)
{
    struct rules__lexer save = *l;
    skip_ws(l);
    enum tok t;
    *s = l->p;
    if (l->p >= l->end) {
        t = T_EOF;
        *n = 0;
    } else if (rules__ident_start(*l->p)) {
        *n = lex_ident(l);
        t = T_IDENT;
    } else if (rules__lex_action(l, s, n)) {
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

static int expect(struct rules__ctx *c, struct rules__lexer *l, char ch, const char *ctxt)
{
    const char *s;
    size_t n;
    enum tok t = next_tok(l, &s, &n, false);
    if (!punct_is(t, s, ch))
        return rules__fail(c, "metricsQuery: expected '%c' %s, found '%.20s'", ch, ctxt,
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
static int parse_vector(struct rules__ctx *c, struct rules_rule *r, struct rules__lexer *l)
{
    const char *s;
    size_t n;
    enum tok t = next_tok(l, &s, &n, false);
    if (t != T_ACTION || !rules__field_is(s, n, ".Series"))
        return rules__fail(c, "metricsQuery: expected <<.Series>>{<<.LabelMatchers>>...}, found '%.20s'", s);
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
            if (!rules__field_is(s, n, ".LabelMatchers"))
                return rules__fail(c, "metricsQuery: unsupported template field '<<%.*s>>' in the selector",
                                   (int)n, s);
            seen++;
        } else if (t == T_IDENT) {
            skip_ws(l);
            if ((rc = parse_matcher(c, l, &m, "metricsQuery")) < 0)
                return rc;
        } else {
            return rules__fail(c, "metricsQuery: unexpected '%.20s' in the selector", t == T_EOF ? "end" : s);
        }
        t = next_tok(l, &s, &n, true);
        if (punct_is(t, s, '}'))
            break;
        if (!punct_is(t, s, ','))
            return rules__fail(c, "metricsQuery: expected ',' or '}' in the selector, found '%.20s'",
                               t == T_EOF ? "end" : s);
        next_tok(l, &s, &n, false);
    }
    next_tok(l, &s, &n, false); /* the '}' */
    if (seen != 1)
        return rules__fail(c, "metricsQuery: the selector must contain <<.LabelMatchers>> exactly once");
    r->extra = m.v;
    r->n_extra = m.n;
    return 0;
}

/* by (<<.GroupBy>>), or for external rules by (a, b) / by (). */
static int parse_by(struct rules__ctx *c, struct rules_rule *r, struct rules__lexer *l)
{
    int rc = expect(c, l, '(', "after 'by'");
    if (rc < 0)
        return rc;
    const char *s;
    size_t n;
    enum tok t = next_tok(l, &s, &n, true);
    if (t == T_ACTION) {
        next_tok(l, &s, &n, false);
        if (!rules__field_is(s, n, ".GroupBy"))
            return rules__fail(c, "metricsQuery: unsupported template field '<<%.*s>>' in 'by'", (int)n, s);
        return expect(c, l, ')', "after by (<<.GroupBy>> (extra grouping labels are not supported)");
    }
    if (!r->external)
        return rules__fail(c, "metricsQuery: a custom rule must group by (<<.GroupBy>>)");
    const char **v = rules__alloc(c->s, 64 * sizeof(*v));
    size_t k = 0;
    while (!punct_is(t, s, ')')) {
        next_tok(l, &s, &n, false);
        if (t != T_IDENT || memchr(s, ':', n) || k == 64)
            return rules__fail(c, "metricsQuery: expected label names in 'by', found '%.20s'",
                               t == T_EOF ? "end" : s);
        v[k++] = rules__strndup(c->s, s, n);
        t = next_tok(l, &s, &n, true);
        if (punct_is(t, s, ',')) {
            next_tok(l, &s, &n, false);
            t = next_tok(l, &s, &n, true);
        } else if (!punct_is(t, s, ')')) {
            return rules__fail(c, "metricsQuery: expected ',' or ')' in 'by', found '%.20s'",
                               t == T_EOF ? "end" : s);
        }
    }
    next_tok(l, &s, &n, false);
    r->group_by = v;
    r->n_group_by = k;
    return 0;
}

static bool by_keyword(struct rules__lexer *l, struct rules__ctx *c, int *rc)
{
    const char *s;
    size_t n;
    enum tok t = next_tok(l, &s, &n, true);
    *rc = 0;
    if (t != T_IDENT)
        return false;
    if (n == 7 && strncasecmp(s, "without", 7) == 0) {
        *rc = rules__fail(c, "metricsQuery: 'without' is not supported, use by (<<.GroupBy>>)");
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
int rules__parse_metrics_query(struct rules__ctx *c, struct rules_rule *r, const char *q)
{
    static const char *const aggs[] = {"sum", "avg", "max", "min", "count"};
    static const char *const fns[] = {"", "rate", "irate", "increase"};
    struct rules__lexer l = {q, q + strlen(q)};
    const char *s;
    size_t n;
    int rc;
    enum tok t = next_tok(&l, &s, &n, false);
    if (t == T_EOF)
        return rules__fail(c, "metricsQuery is missing");
    if (t != T_IDENT)
        return rules__fail(
            c, "metricsQuery: expected an aggregation (sum, avg, max, min, count), found '%.20s'", s);
    int agg = -1;
    for (int i = 0; i < 5; i++)
        if (strlen(aggs[i]) == n && strncasecmp(s, aggs[i], n) == 0)
            agg = i;
    if (agg < 0)
        return rules__fail(
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
            return rules__fail(
                c, "metricsQuery: unsupported function '%.*s' (supported: rate, irate, increase)", (int)n, s);
        r->fn = (enum rules_fn)fn;
        if ((rc = expect(c, &l, '(', "after the function")) < 0 || (rc = parse_vector(c, r, &l)) < 0 ||
            (rc = expect(c, &l, '[', "(the function needs a range such as [2m])")) < 0)
            return rc;
        const char *w = l.p, *close = memchr(l.p, ']', (size_t)(l.end - l.p));
        if (!close)
            return rules__fail(c, "metricsQuery: unterminated range");
        while (w < close && *w == ' ')
            w++;
        const char *we = close;
        while (we > w && we[-1] == ' ')
            we--;
        if (memchr(w, ':', (size_t)(we - w)))
            return rules__fail(c, "metricsQuery: subqueries are not supported");
        if (!parse_duration(w, (size_t)(we - w), &r->window_ms))
            return rules__fail(c, "metricsQuery: bad range duration '%.*s'", (int)(we - w), w);
        l.p = close + 1;
        t = next_tok(&l, &s, &n, true);
        if (t == T_IDENT && n == 6 && memcmp(s, "offset", 6) == 0)
            return rules__fail(c, "metricsQuery: offset is not supported");
        if ((rc = expect(c, &l, ')', "after the range")) < 0)
            return rc;
    } else {
        r->fn = RULES_FN_NONE;
        if ((rc = parse_vector(c, r, &l)) < 0)
            return rc;
        t = next_tok(&l, &s, &n, true);
        if (punct_is(t, s, '['))
            return rules__fail(c, "metricsQuery: a range needs rate, irate or increase around it");
        if (t == T_IDENT && n == 6 && memcmp(s, "offset", 6) == 0)
            return rules__fail(c, "metricsQuery: offset is not supported");
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
        return rules__fail(c, "metricsQuery: a custom rule must group by (<<.GroupBy>>)");
    t = next_tok(&l, &s, &n, false);
    if (t != T_EOF)
        return rules__fail(
            c,
            "metricsQuery: unsupported '%.30s' after the aggregation (arithmetic, comparisons and "
            "nested functions are not supported)",
            s);
    return 0;
}
