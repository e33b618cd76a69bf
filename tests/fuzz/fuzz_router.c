/*
 * libFuzzer target for the metrics-API path router (adapter/serve.c,
 * serve_path_parse) and the selectors a read carries: any decoded path is
 * classified without overreading, and a path classified as a read yields
 * non-empty segments without '/' that fit the request fields.
 *
 * Input: the path, then optionally '\n' and a selector text.
 */
#include "serve.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "selector.h"

static void check_segment(const char *s)
{
    if (!s)
        return;
    if (!*s || strchr(s, '/') || strlen(s) >= RULES_NAME_MAX)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t plen = nl ? (size_t)(nl - data) : size;
    char *path = malloc(plen + 1);
    memcpy(path, data, plen);
    path[plen] = '\0';

    char buf[SERVE_PATH_MAX];
    struct serve_path p;
    enum serve_route r = serve_path_parse(path, buf, sizeof buf, &p);
    if (r == SERVE_R_CUSTOM || r == SERVE_R_EXTERNAL) {
        check_segment(p.ns);
        check_segment(p.resource);
        check_segment(p.name);
        check_segment(p.metric);
        if (!p.metric || (r == SERVE_R_EXTERNAL && !p.ns) || (r == SERVE_R_CUSTOM && !p.resource))
            abort();
        if (nl) {
            struct sel_selector *sel;
            char err[SEL_ERR_MAX];
            if (sel_parse((const char *)nl + 1, size - plen - 1, &sel, err, sizeof err) == 0)
                sel_free(sel);
        }
    }
    free(path);
    return 0;
}
