#ifndef ADAPTER_RULES_IMPL_H
#define ADAPTER_RULES_IMPL_H

/*
 * Internals shared by rules.c (the set, defaults, matching, lookup, discovery),
 * rules_parse.c (the YAML loader) and rules_promql.c (its PromQL parsers).
 * Not for other modules.
 */

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string.h>

#include "rules.h"

/* A series filter: the series name must (is) or must not (isNot) match. */
struct rules_filter {
    pcre2_code *re;
    bool positive;
};

/* A label that names objects of a resource under one rule. */
struct rules_label_res {
    const char *label;
    struct rules_resource res;
};

/*
 * The set owns one arena (every string, array and rule) and the list of
 * compiled regexes; rules_free() releases both, so the whole tree goes at once.
 */
struct rules_chunk;

struct rules_set {
    struct rules_chunk *chunks;
    pcre2_code **codes;
    size_t n_codes, cap_codes;
    struct rules_rule *rules; /* custom rules first, then external */
    size_t n_rules, cap_rules;
    char *warnings; /* arena string or NULL */
    bool config;
};

/* Arena allocation: zeroed, aligned, aborts when memory runs out. */
void *rules__alloc(struct rules_set *s, size_t n);
char *rules__strndup(struct rules_set *s, const char *p, size_t n);
char *rules__strdup(struct rules_set *s, const char *p);
struct rules_set *rules__new_set(bool config);
struct rules_rule *rules__add_rule(struct rules_set *s);
void rules__warn(struct rules_set *s, const char *msg);

/* Compile @re (length @len) with PCRE2 and JIT; the set owns the code.
 * @anchored: PromQL's full anchoring. Returns NULL and fills errbuf on error. */
pcre2_code *rules__compile(struct rules_set *s, const char *re, size_t len, bool anchored, char *err,
                           size_t errlen);
/* Match @re against @subject: -1 when it does not match, else the number of
 * groups (group 0 included, at most @nvec) whose offsets went to @ovec (size
 * 2*@nvec; (size_t)-1 for a group that did not take part). @ovec may be NULL. */
int rules__re_match(const pcre2_code *re, const char *subject, size_t len, size_t *ovec, size_t nvec);

/* The built-in resource table: find by plural or singular name, group "" or
 * NULL matching any group. */
const struct rules_resource *rules__known_resource(const char *group, const char *name);
/* Iterate the table: returns the i-th entry and its singular name, NULL past the end. */
const struct rules_resource *rules__known_at(size_t i, const char **singular);
/* Resolve an override: known resource or a made-up one owned by the set. */
struct rules_resource rules__resolve_resource(struct rules_set *s, const char *group, const char *name);

/* Sort a rule's label -> resource table by label (after building it). */
void rules__sort_res(struct rules_label_res *r, size_t n);

/* ---- the loader (rules_parse.c, rules_promql.c) ---- */

struct yaml_document_s;

/* Where the loader is, for messages: "rules[2] (seriesQuery '...'): ...". */
struct rules__ctx {
    struct rules_set *s;
    struct yaml_document_s *doc;
    char *err;
    size_t errlen;
    const char *list; /* "rules" or "externalRules", NULL outside a rule */
    size_t index;
    const char *sq; /* the rule's seriesQuery, once known */
};

/* Write the message, prefixed with the rule, to c->err; returns -EINVAL. */
int rules__fail(struct rules__ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct rules__lexer {
    const char *p, *end;
};

static inline bool rules__ident_start(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':';
}

static inline bool rules__ident_char(char ch)
{
    return rules__ident_start(ch) || (ch >= '0' && ch <= '9');
}

static inline bool rules__field_is(const char *f, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(f, want, n) == 0;
}

/* Read a template action "<< .Field >>" at l->p into *field (trimmed). */
bool rules__lex_action(struct rules__lexer *l, const char **field, size_t *flen);
/* seriesQuery into r->_sel / r->_exact_name. */
int rules__parse_series_query(struct rules__ctx *c, struct rules_rule *r, const char *q);
/* metricsQuery into agg, fn, window_ms, extra, group_by. */
int rules__parse_metrics_query(struct rules__ctx *c, struct rules_rule *r, const char *q);

#endif /* ADAPTER_RULES_IMPL_H */
