#ifndef ADAPTER_RULES_IMPL_H
#define ADAPTER_RULES_IMPL_H

/*
 * Internals shared by rules.c (the set, defaults, matching, lookup, discovery)
 * and rules_parse.c (the configuration loader). Not for other modules.
 */

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

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
/* Whether @re matches @subject; with @ovec (size 2*@nvec) it receives the offsets. */
bool rules__re_match(const pcre2_code *re, const char *subject, size_t len, size_t *ovec, size_t nvec);

/* The built-in resource table: find by plural or singular name, group "" or
 * NULL matching any group. */
const struct rules_resource *rules__known_resource(const char *group, const char *name);
/* Iterate the table: returns the i-th entry and its singular name, NULL past the end. */
const struct rules_resource *rules__known_at(size_t i, const char **singular);
/* Resolve an override: known resource or a made-up one owned by the set. */
struct rules_resource rules__resolve_resource(struct rules_set *s, const char *group, const char *name);

/* Sort a rule's label -> resource table by label (after building it). */
void rules__sort_res(struct rules_label_res *r, size_t n);

#endif /* ADAPTER_RULES_IMPL_H */
