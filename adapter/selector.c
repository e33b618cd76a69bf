/*
 * selector: label-selector parser and matcher.
 *
 * DESIGN. The parser is a transcription of apimachinery's labels.Parser, so
 * that every selector kubectl or the HPA accepts is accepted here and every
 * one they refuse is refused with a comparable message:
 *
 *   - the lexer splits the text into identifiers (maximal runs of bytes that
 *     are neither whitespace nor one of = ! ( ) , > <) and operators (the
 *     longest run of those symbols that is a known operator: "==" then "=",
 *     "!=" or "!"); "in" and "notin" are keywords only where an operator is
 *     expected, elsewhere they are plain identifiers (a key may be "in");
 *   - the parser reads requirements separated by commas; each is
 *     [!]key [op values], the values being one identifier, nothing (the
 *     empty string) or a parenthesised list;
 *   - each requirement is validated as NewRequirement does (key, operator
 *     arity, values) before it is kept.
 *
 * Everything is tokenized first (as the Go parser does), which makes the
 * parser's one-token lookahead trivial. A parsed selector owns copies of its
 * keys and values; matching never allocates, so it can run inside an RCU
 * read-side critical section.
 */
#include "selector.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok {
    T_END,
    T_IDENT,
    T_IN,
    T_NOTIN,
    T_EQ,
    T_DEQ,
    T_NEQ,
    T_NOT,
    T_GT,
    T_LT,
    T_OPEN,
    T_CLOSE,
    T_COMMA,
};

struct token {
    enum tok t;
    const char *s; /* literal, into the selector text */
    size_t n;
};

struct sel_selector {
    struct sel_requirement *reqs;
    size_t nreqs;
    /* the metav1.LabelSelector view, built once at parse time */
    struct api_label_selector ls;
    bool has_ls;
};

struct parser {
    struct token *toks;
    size_t ntoks, pos;
    char *err;
    size_t errlen;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "fatal: out of memory (selector)\n");
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xcalloc(n + 1, 1);
    memcpy(p, s, n);
    return p;
}

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parser *p, const char *fmt, ...)
{
    if (p->err && p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* ---- lexer --------------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_symbol(char c)
{
    return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

static bool symbol_token(const char *s, size_t n, enum tok *t)
{
    static const struct {
        const char *s;
        enum tok t;
    } ops[] = {{"=", T_EQ}, {"==", T_DEQ}, {"!=", T_NEQ},  {"!", T_NOT},  {">", T_GT},
               {"<", T_LT}, {"(", T_OPEN}, {")", T_CLOSE}, {",", T_COMMA}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strlen(ops[i].s) == n && memcmp(ops[i].s, s, n) == 0) {
            *t = ops[i].t;
            return true;
        }
    }
    return false;
}

/* Splits text into tokens, the last one T_END. Never fails: every symbol
 * byte is an operator on its own. */
static struct token *lex(const char *text, size_t len, size_t *ntoks)
{
    struct token *toks = xcalloc(len + 1, sizeof(*toks)); /* at most one token per byte, plus T_END */
    size_t n = 0, i = 0;
    for (;;) {
        while (i < len && is_space(text[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        if (is_symbol(text[i])) {
            /* longest run of symbols that is still an operator */
            enum tok t = T_END, cand;
            size_t end = i;
            while (i < len && is_symbol(text[i]) && symbol_token(text + start, i - start + 1, &cand)) {
                t = cand;
                end = ++i;
            }
            toks[n++] = (struct token){t, text + start, end - start};
            continue;
        }
        while (i < len && !is_space(text[i]) && !is_symbol(text[i]))
            i++;
        enum tok t = T_IDENT;
        if (i - start == 2 && memcmp(text + start, "in", 2) == 0)
            t = T_IN;
        else if (i - start == 5 && memcmp(text + start, "notin", 5) == 0)
            t = T_NOTIN;
        toks[n++] = (struct token){t, text + start, i - start};
    }
    toks[n++] = (struct token){T_END, text + len, 0};
    *ntoks = n;
    return toks;
}

/* Where values are expected, "in" and "notin" are identifiers (Go's
 * consume/lookahead in the Values context). */
static struct token peek(struct parser *p, bool values)
{
    struct token t = p->toks[p->pos];
    if (values && (t.t == T_IN || t.t == T_NOTIN))
        t.t = T_IDENT;
    return t;
}

static struct token next(struct parser *p, bool values)
{
    struct token t = peek(p, values);
    if (t.t != T_END)
        p->pos++;
    return t;
}

/* ---- validation (k8s.io/apimachinery/pkg/util/validation) -------------- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] */
static bool is_label_name(const char *s, size_t n)
{
    if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)* of at most 253 */
static bool is_dns1123_subdomain(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t label_start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (i == label_start)
                return false; /* empty label */
            for (size_t j = label_start; j < i; j++) {
                char c = s[j];
                bool lower_alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
                if (!lower_alnum && !(c == '-' && j != label_start && j != i - 1))
                    return false;
            }
            label_start = i + 1;
        }
    }
    return true;
}

static int validate_key(struct parser *p, const char *k, size_t n)
{
    const char *slash = memchr(k, '/', n);
    const char *name = k;
    size_t name_len = n;
    if (slash) {
        size_t prefix_len = (size_t)(slash - k);
        name = slash + 1;
        name_len = n - prefix_len - 1;
        if (memchr(name, '/', name_len))
            return fail(p,
                        "invalid label key \"%.*s\": a qualified name must be a name with an optional "
                        "DNS subdomain prefix and '/'",
                        (int)n, k);
        if (prefix_len == 0)
            return fail(p, "invalid label key \"%.*s\": prefix part must be non-empty", (int)n, k);
        if (!is_dns1123_subdomain(k, prefix_len))
            return fail(p,
                        "invalid label key \"%.*s\": prefix part must be a lowercase DNS-1123 subdomain "
                        "of at most 253 characters",
                        (int)n, k);
    }
    if (name_len == 0)
        return fail(p, "invalid label key \"%.*s\": name part must be non-empty", (int)n, k);
    if (name_len > 63)
        return fail(p, "invalid label key \"%.*s\": name part must be no more than 63 characters", (int)n, k);
    if (!is_label_name(name, name_len))
        return fail(p,
                    "invalid label key \"%.*s\": name part must consist of alphanumeric characters, '-', "
                    "'_' or '.', and must start and end with an alphanumeric character",
                    (int)n, k);
    return 0;
}

static int validate_value(struct parser *p, const char *v, size_t n)
{
    if (n > 63)
        return fail(p, "invalid label value \"%.*s\": must be no more than 63 characters", (int)n, v);
    if (n > 0 && !is_label_name(v, n))
        return fail(p,
                    "invalid label value \"%.*s\": a valid label value must be empty or consist of "
                    "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                    (int)n, v);
    return 0;
}

/* strconv.ParseInt(s, 10, 64): optional sign, decimal digits, no overflow. */
static bool parse_int64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* ---- parser ----------------------------------------------------------------- */

/* A growing list of value literals for one requirement. */
struct vals {
    struct token *v;
    size_t n, cap;
};

static void vals_add(struct vals *vs, const char *s, size_t n)
{
    if (vs->n == vs->cap) {
        vs->cap = vs->cap ? vs->cap * 2 : 4;
        struct token *g = realloc(vs->v, vs->cap * sizeof(*g));
        if (!g) {
            fprintf(stderr, "fatal: out of memory (selector)\n");
            abort();
        }
        vs->v = g;
    }
    vs->v[vs->n++] = (struct token){T_IDENT, s, n};
}

static const char *lit(struct token t)
{
    return t.t == T_END ? "" : t.s;
}

/* parseIdentifiersList, after "(" and a lookahead of identifier or ",". */
static int parse_identifiers_list(struct parser *p, struct vals *vs)
{
    for (;;) {
        struct token t = next(p, true);
        if (t.t == T_IDENT) {
            vals_add(vs, t.s, t.n);
            struct token t2 = peek(p, true);
            if (t2.t == T_COMMA)
                continue;
            if (t2.t == T_CLOSE)
                return 0;
            return fail(p, "found '%.*s', expected: ',' or ')'", (int)t2.n, lit(t2));
        } else if (t.t == T_COMMA) {
            /* "(,", ",)" and ",," stand for empty values */
            if (vs->n == 0)
                vals_add(vs, "", 0);
            struct token t2 = peek(p, true);
            if (t2.t == T_CLOSE) {
                vals_add(vs, "", 0);
                return 0;
            }
            if (t2.t == T_COMMA) {
                next(p, true);
                vals_add(vs, "", 0);
            }
        } else {
            return fail(p, "found '%.*s', expected: ',', or identifier", (int)t.n, lit(t));
        }
    }
}

/* parseValues: "(" list ")". */
static int parse_values(struct parser *p, struct vals *vs)
{
    struct token t = next(p, true);
    if (t.t != T_OPEN)
        return fail(p, "found '%.*s' expected: '('", (int)t.n, lit(t));
    t = peek(p, true);
    if (t.t == T_IDENT || t.t == T_COMMA) {
        int rc = parse_identifiers_list(p, vs);
        if (rc)
            return rc;
        t = next(p, true);
        if (t.t != T_CLOSE)
            return fail(p, "found '%.*s', expected: ')'", (int)t.n, lit(t));
        return 0;
    }
    if (t.t == T_CLOSE) { /* "()" is the set {""} */
        next(p, true);
        vals_add(vs, "", 0);
        return 0;
    }
    return fail(p, "found '%.*s', expected: ',', ')' or identifier", (int)t.n, lit(t));
}

/* parseExactValue: one identifier, or nothing for "". */
static int parse_exact_value(struct parser *p, struct vals *vs)
{
    struct token t = peek(p, true);
    if (t.t == T_END || t.t == T_COMMA) {
        vals_add(vs, "", 0);
        return 0;
    }
    t = next(p, true);
    if (t.t == T_IDENT) {
        vals_add(vs, t.s, t.n);
        return 0;
    }
    return fail(p, "found '%.*s', expected: identifier", (int)t.n, lit(t));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* NewRequirement's checks, then the copy the selector keeps. */
static int new_requirement(struct parser *p, struct token key, enum sel_op op, struct vals *vs,
                           struct sel_requirement *r)
{
    int rc = validate_key(p, key.s, key.n);
    if (rc)
        return rc;
    int64_t number = 0;
    if (op == SEL_OP_GT || op == SEL_OP_LT) {
        if (!parse_int64(vs->v[0].s, vs->v[0].n, &number))
            return fail(p, "invalid value \"%.*s\" for '%s': the value must be an integer", (int)vs->v[0].n,
                        vs->v[0].s, sel_op_name(op));
    }
    for (size_t i = 0; i < vs->n; i++) {
        rc = validate_value(p, vs->v[i].s, vs->v[i].n);
        if (rc)
            return rc;
    }
    char **values = xcalloc(vs->n, sizeof(*values));
    for (size_t i = 0; i < vs->n; i++)
        values[i] = xstrndup(vs->v[i].s, vs->v[i].n);
    qsort(values, vs->n, sizeof(*values), cmp_str);
    size_t uniq = 0;
    for (size_t i = 0; i < vs->n; i++) {
        if (uniq && strcmp(values[uniq - 1], values[i]) == 0)
            free(values[i]);
        else
            values[uniq++] = values[i];
    }
    *r = (struct sel_requirement){xstrndup(key.s, key.n),      key.n, op,
                                  (const char *const *)values, uniq,  number};
    return 0;
}

/* parseRequirement: [!]key [op values]. */
static int parse_requirement(struct parser *p, struct sel_requirement *r)
{
    bool does_not_exist = false;
    struct token t = next(p, true);
    if (t.t == T_NOT) {
        does_not_exist = true;
        t = next(p, true);
    }
    if (t.t != T_IDENT)
        return fail(p, "found '%.*s', expected: identifier", (int)t.n, lit(t));
    struct token key = t;
    struct vals vs = {0};
    int rc;
    struct token la = peek(p, true);
    if (does_not_exist || la.t == T_END || la.t == T_COMMA) {
        rc = new_requirement(p, key, does_not_exist ? SEL_OP_DOES_NOT_EXIST : SEL_OP_EXISTS, &vs, r);
        free(vs.v);
        return rc;
    }
    enum sel_op op;
    t = next(p, false);
    switch (t.t) {
    case T_IN:
        op = SEL_OP_IN;
        break;
    case T_NOTIN:
        op = SEL_OP_NOT_IN;
        break;
    case T_EQ:
        op = SEL_OP_EQUALS;
        break;
    case T_DEQ:
        op = SEL_OP_DOUBLE_EQUALS;
        break;
    case T_NEQ:
        op = SEL_OP_NOT_EQUALS;
        break;
    case T_GT:
        op = SEL_OP_GT;
        break;
    case T_LT:
        op = SEL_OP_LT;
        break;
    default:
        return fail(p, "found '%.*s', expected: in, notin, =, ==, !=, gt, lt", (int)t.n, lit(t));
    }
    rc = op == SEL_OP_IN || op == SEL_OP_NOT_IN ? parse_values(p, &vs) : parse_exact_value(p, &vs);
    if (rc == 0)
        rc = new_requirement(p, key, op, &vs, r);
    free(vs.v);
    return rc;
}

static void free_requirement(struct sel_requirement *r)
{
    for (size_t i = 0; i < r->nvalues; i++)
        free((char *)r->values[i]);
    free((void *)r->values);
    free((char *)r->key);
}

static int cmp_req(const struct sel_requirement *x, const struct sel_requirement *y)
{
    return strcmp(x->key, y->key);
}

/* ParseToLabelSelector's view: = and == into matchLabels (a repeated key
 * goes to matchExpressions as In, keeping the semantics and valid JSON),
 * the rest into matchExpressions; > and < make it unrepresentable. */
static void build_label_selector(struct sel_selector *s)
{
    s->has_ls = false;
    if (s->nreqs == 0)
        return;
    for (size_t i = 0; i < s->nreqs; i++)
        if (s->reqs[i].op == SEL_OP_GT || s->reqs[i].op == SEL_OP_LT)
            return;
    const char **keys = xcalloc(s->nreqs, sizeof(*keys));
    const char **values = xcalloc(s->nreqs, sizeof(*values));
    struct api_label_selector_expr *exprs = xcalloc(s->nreqs, sizeof(*exprs));
    size_t nmatch = 0, nexprs = 0;
    for (size_t i = 0; i < s->nreqs; i++) {
        const struct sel_requirement *r = &s->reqs[i];
        bool eq = r->op == SEL_OP_EQUALS || r->op == SEL_OP_DOUBLE_EQUALS;
        bool repeated = false;
        for (size_t j = 0; eq && j < nmatch; j++)
            repeated |= strcmp(keys[j], r->key) == 0;
        if (eq && !repeated) {
            keys[nmatch] = r->key;
            values[nmatch++] = r->values[0];
            continue;
        }
        const char *op = "In";
        switch (r->op) {
        case SEL_OP_NOT_EQUALS:
        case SEL_OP_NOT_IN:
            op = "NotIn";
            break;
        case SEL_OP_EXISTS:
            op = "Exists";
            break;
        case SEL_OP_DOES_NOT_EXIST:
            op = "DoesNotExist";
            break;
        default:
            break;
        }
        exprs[nexprs++] = (struct api_label_selector_expr){r->key, op, r->values, r->nvalues};
    }
    s->ls = (struct api_label_selector){keys, values, nmatch, exprs, nexprs};
    s->has_ls = true;
}

int sel_parse(const char *text, size_t len, struct sel_selector **out, char *err, size_t errlen)
{
    struct parser p = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (len > SEL_TEXT_MAX) {
        fail(&p, "selector longer than %d bytes", SEL_TEXT_MAX);
        return -E2BIG;
    }
    if (!text)
        text = ""; /* (NULL, 0) is the empty selector */
    if (memchr(text, '\0', len))
        return fail(&p, "selector contains a NUL byte");

    p.toks = lex(text, len, &p.ntoks);
    struct sel_selector *s = xcalloc(1, sizeof(*s));
    s->reqs = xcalloc(p.ntoks, sizeof(*s->reqs)); /* fewer requirements than tokens */
    int rc = 0;
    for (;;) {
        struct token t = peek(&p, true);
        if (t.t == T_END)
            break;
        if (t.t != T_IDENT && t.t != T_NOT) {
            rc = fail(&p, "found '%.*s', expected: !, identifier, or 'end of string'", (int)t.n, lit(t));
            break;
        }
        rc = parse_requirement(&p, &s->reqs[s->nreqs]);
        if (rc)
            break;
        s->nreqs++;
        t = next(&p, true);
        if (t.t == T_END)
            break;
        if (t.t != T_COMMA) {
            rc = fail(&p, "found '%.*s', expected: ',' or 'end of string'", (int)t.n, lit(t));
            break;
        }
        struct token t2 = peek(&p, true);
        if (t2.t != T_IDENT && t2.t != T_NOT) {
            rc = fail(&p, "found '%.*s', expected: identifier after ','", (int)t2.n, lit(t2));
            break;
        }
    }
    free(p.toks);
    if (rc) {
        sel_free(s);
        return rc;
    }
    /* insertion sort by key: stable, and selectors are short */
    for (size_t i = 1; i < s->nreqs; i++) {
        struct sel_requirement r = s->reqs[i];
        size_t j = i;
        for (; j > 0 && cmp_req(&s->reqs[j - 1], &r) > 0; j--)
            s->reqs[j] = s->reqs[j - 1];
        s->reqs[j] = r;
    }
    build_label_selector(s);
    *out = s;
    return 0;
}

void sel_free(struct sel_selector *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nreqs; i++)
        free_requirement(&s->reqs[i]);
    free(s->reqs);
    if (s->has_ls) {
        free((void *)s->ls.match_keys);
        free((void *)s->ls.match_values);
        free((void *)s->ls.exprs);
    }
    free(s);
}

bool sel_empty(const struct sel_selector *s)
{
    return s->nreqs == 0;
}

size_t sel_count(const struct sel_selector *s)
{
    return s->nreqs;
}

const struct sel_requirement *sel_get(const struct sel_selector *s, size_t i)
{
    return i < s->nreqs ? &s->reqs[i] : NULL;
}

const struct api_label_selector *sel_label_selector(const struct sel_selector *s)
{
    return s->has_ls ? &s->ls : NULL;
}

/* ---- matching ------------------------------------------------------------ */

static bool has_value(const struct sel_requirement *r, const char *v, size_t n)
{
    /* values are sorted: binary search on (bytes, length) order = strcmp order */
    size_t lo = 0, hi = r->nvalues;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *x = r->values[mid];
        size_t xn = strlen(x);
        int c = memcmp(x, v, xn < n ? xn : n);
        if (c == 0)
            c = xn < n ? -1 : xn > n;
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

bool sel_requirement_matches(const struct sel_requirement *r, sel_lookup_fn lookup, void *ctx)
{
    size_t vn = 0;
    const char *v = lookup(ctx, r->key, r->key_len, &vn);
    switch (r->op) {
    case SEL_OP_EQUALS:
    case SEL_OP_DOUBLE_EQUALS:
    case SEL_OP_IN:
        return v && has_value(r, v, vn);
    case SEL_OP_NOT_EQUALS:
    case SEL_OP_NOT_IN:
        return !v || !has_value(r, v, vn);
    case SEL_OP_EXISTS:
        return v != NULL;
    case SEL_OP_DOES_NOT_EXIST:
        return v == NULL;
    case SEL_OP_GT:
    case SEL_OP_LT: {
        int64_t x;
        if (!v || !parse_int64(v, vn, &x))
            return false;
        return r->op == SEL_OP_GT ? x > r->number : x < r->number;
    }
    }
    return false;
}

bool sel_matches(const struct sel_selector *s, sel_lookup_fn lookup, void *ctx)
{
    for (size_t i = 0; i < s->nreqs; i++)
        if (!sel_requirement_matches(&s->reqs[i], lookup, ctx))
            return false;
    return true;
}

const char *sel_op_name(enum sel_op op)
{
    static const char *const names[] = {"=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"};
    return (unsigned)op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

void sel_format(const struct sel_selector *s, struct buf *b)
{
    for (size_t i = 0; i < s->nreqs; i++) {
        const struct sel_requirement *r = &s->reqs[i];
        if (i)
            buf_putc(b, ',');
        if (r->op == SEL_OP_DOES_NOT_EXIST)
            buf_putc(b, '!');
        buf_puts(b, r->key);
        switch (r->op) {
        case SEL_OP_IN:
        case SEL_OP_NOT_IN:
            buf_puts(b, r->op == SEL_OP_IN ? " in (" : " notin (");
            for (size_t j = 0; j < r->nvalues; j++) {
                if (j)
                    buf_putc(b, ',');
                buf_puts(b, r->values[j]);
            }
            buf_putc(b, ')');
            break;
        case SEL_OP_EXISTS:
        case SEL_OP_DOES_NOT_EXIST:
            break;
        case SEL_OP_GT:
        case SEL_OP_LT:
            buf_putc(b, r->op == SEL_OP_GT ? '>' : '<');
            buf_puts(b, r->values[0]);
            break;
        default:
            buf_puts(b, sel_op_name(r->op));
            buf_puts(b, r->values[0]);
            break;
        }
    }
}
