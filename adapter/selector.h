#ifndef ADAPTER_SELECTOR_H
#define ADAPTER_SELECTOR_H

/*
 * selector: Kubernetes label selectors (the labelSelector and
 * metricLabelSelector query parameters), parsed and matched.
 *
 * Syntax and validation follow k8s.io/apimachinery/pkg/labels/selector.go:
 *
 *   k=v  k==v  k!=v  k in (a,b)  k notin (a)  k  !k  k>5  k<5
 *
 * requirements joined by commas (AND); spaces, tabs and newlines allowed
 * between tokens; "in"/"notin" are operators only after a key; "k=" means
 * the value ""; "k in ()" means k in (""). Keys are qualified names
 * (an optional DNS-1123 subdomain prefix and '/', then a name of at most 63
 * characters [A-Za-z0-9][-A-Za-z0-9_.]* ending alphanumeric); values are
 * empty or such a name; > and < take a decimal integer. The empty selector
 * matches everything.
 *
 * Matching (Requirement.Matches): = == in need the label present with a
 * listed value; != notin match when the label is absent or its value is not
 * listed; k / !k test presence; > < need the label present and an integer
 * value strictly greater / less.
 *
 * Labels come through a callback, so the same selector matches series
 * labels, pod labels from a cache, or anything else.
 *
 * Thread-safety: a parsed selector is immutable; sel_matches and the
 * accessors may run on any number of threads at once.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "k8s_json.h" /* struct api_label_selector */

/* Selectors longer than this are refused (-E2BIG) before parsing. */
#define SEL_TEXT_MAX 16384
/* A good size for the error buffer. */
#define SEL_ERR_MAX 256

enum sel_op {
    SEL_OP_EQUALS,         /* k=v */
    SEL_OP_DOUBLE_EQUALS,  /* k==v */
    SEL_OP_NOT_EQUALS,     /* k!=v */
    SEL_OP_IN,             /* k in (a,b) */
    SEL_OP_NOT_IN,         /* k notin (a,b) */
    SEL_OP_EXISTS,         /* k */
    SEL_OP_DOES_NOT_EXIST, /* !k */
    SEL_OP_GT,             /* k>5 */
    SEL_OP_LT,             /* k<5 */
};

/* One requirement, read-only for callers. */
struct sel_requirement {
    const char *key; /* NUL-terminated */
    size_t key_len;
    enum sel_op op;
    const char *const *values; /* sorted, without duplicates, NUL-terminated */
    size_t nvalues;            /* 1 for = == != > <, >= 1 for in/notin, 0 for k/!k */
    int64_t number;            /* the integer of > and < */
};

struct sel_selector; /* opaque */

/*
 * sel_lookup_fn: the value of label `name` for the object being matched.
 * Returns a pointer to the value's bytes and sets *value_len, or NULL when
 * the object has no such label. The value need not be NUL-terminated.
 */
typedef const char *(*sel_lookup_fn)(void *ctx, const char *name, size_t name_len, size_t *value_len);

/*
 * sel_parse: parse a selector.
 * @text, @len: the selector (already percent-decoded); NUL bytes are refused;
 *        (NULL, 0) is the empty selector.
 * @out: the parsed selector on success; free it with sel_free.
 * @err, @errlen: on failure, a message naming the problem, fit for a 400
 *        BadRequest Status (may be NULL/0).
 * Returns 0; -EINVAL for a malformed selector; -E2BIG when len > SEL_TEXT_MAX.
 * Requirements are kept sorted by key (stable), as labels.Parse sorts them.
 */
int sel_parse(const char *text, size_t len, struct sel_selector **out, char *err, size_t errlen);

void sel_free(struct sel_selector *s);

/* True when the selector has no requirement (matches everything). */
bool sel_empty(const struct sel_selector *s);

/* Number of requirements and the i-th one (i < sel_count(s)). */
size_t sel_count(const struct sel_selector *s);
const struct sel_requirement *sel_get(const struct sel_selector *s, size_t i);

/* True when every requirement holds for the labels lookup() reports. */
bool sel_matches(const struct sel_selector *s, sel_lookup_fn lookup, void *ctx);

/* sel_requirement_matches: one requirement, same semantics. */
bool sel_requirement_matches(const struct sel_requirement *r, sel_lookup_fn lookup, void *ctx);

/*
 * sel_label_selector: the selector as a metav1.LabelSelector for the
 * metric-value encoders, as metav1.ParseToLabelSelector(selector.String())
 * builds it: = and == become matchLabels, != becomes NotIn with one value,
 * in/notin/k/!k become matchExpressions in key order. Returns NULL for the
 * empty selector and for selectors with > or < (which LabelSelector cannot
 * express). The pointer is owned by the selector.
 */
const struct api_label_selector *sel_label_selector(const struct sel_selector *s);

/*
 * sel_format: append the canonical text of the selector to b, as Go's
 * labels.Selector.String() writes it: requirements in key order joined by
 * ",", values sorted ("a=1,b in (x,y),!c"). Parsing the result gives the
 * same selector.
 */
void sel_format(const struct sel_selector *s, struct buf *b);

/* sel_op_name: "=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt". */
const char *sel_op_name(enum sel_op op);

#endif /* ADAPTER_SELECTOR_H */
