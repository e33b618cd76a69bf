/*
 * libFuzzer target for adapter/selector: any input either parses or fails
 * with a message; a parsed selector's canonical form parses back to the same
 * canonical form; matching and the LabelSelector view never misbehave.
 */
#include "selector.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Label set for matching: the bytes of the input split on ';' as k=v pairs
 * would be too random to ever match; use a fixed, plausible set instead. */
static const char *const names[] = {"app", "x", "tier", "in", "example.com/app", "n"};
static const char *const values[] = {"web", "a", "", "in", "web", "42"};

static const char *lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i]) == name_len && memcmp(names[i], name, name_len) == 0) {
            *value_len = strlen(values[i]);
            return values[i];
        }
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sel_selector *s = NULL;
    char err[SEL_ERR_MAX];
    int rc = sel_parse((const char *)data, size, &s, err, sizeof(err));
    if (rc != 0) {
        if (err[0] == '\0')
            abort(); /* every refusal names its reason */
        return 0;
    }
    struct buf canon = BUF_INIT, again = BUF_INIT;
    sel_format(s, &canon);
    struct sel_selector *s2 = NULL;
    if (sel_parse(canon.data ? canon.data : "", canon.len, &s2, err, sizeof(err)) != 0) {
        fprintf(stderr, "canonical form \"%s\" does not parse: %s\n", canon.data, err);
        abort();
    }
    sel_format(s2, &again);
    if (canon.len != again.len || (canon.len && memcmp(canon.data, again.data, canon.len) != 0)) {
        fprintf(stderr, "canonical form not stable: \"%s\" -> \"%s\"\n", canon.data, again.data);
        abort();
    }
    if (sel_matches(s, lookup, NULL) != sel_matches(s2, lookup, NULL))
        abort();
    const struct api_label_selector *ls = sel_label_selector(s);
    if (ls) {
        struct buf json = BUF_INIT;
        struct api_metric_value item = {{"Pod", "ns", "p", "/v1"}, "m", 0, 60, 1.5};
        if (api_json_metric_value_list(&json, API_CM_V1BETA2, &item, 1, ls) != 0)
            abort();
        buf_free(&json);
    }
    buf_free(&canon);
    buf_free(&again);
    sel_free(s2);
    sel_free(s);
    return 0;
}
