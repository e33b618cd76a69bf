/*
 * libFuzzer target for the rules loader: any bytes as a configuration file.
 * A set that loads is then queried the way ingest, discovery and reads do,
 * so that whatever the loader accepted is also safe to use.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rules.h"

static void exercise(const struct rules_set *s)
{
    static const struct rules_label series[][4] = {
        {{"__name__", "http_requests_total"}, {"container", "app"}, {"namespace", "ns"}, {"pod", "p1"}},
        {{"__name__", "container_cpu_usage_seconds_total"},
         {"namespace", "ns"},
         {"node", "n1"},
         {"pod", "p"}},
        {{"__name__", "queue_length"}, {"kube_apps_deployment", "web"}, {"name", "q"}, {"queue", "q"}},
    };
    struct rules_use uses[4];
    struct rules_disc *d = rules_disc_new(s);
    for (size_t i = 0; i < 3; i++) {
        size_t n = rules_series_uses(s, series[i], 4, (enum rules_type)(i % 3), uses, 4);
        for (size_t u = 0; u < n && u < 4; u++) {
            struct rules_target t[4];
            size_t nt = rules_lookup_custom(s, "pods", uses[u].metric, t, 4);
            for (size_t k = 0; k < nt && k < 4; k++) {
                (void)rules_name_serves(t[k].rule, t[k].source, RULES_TYPE_UNKNOWN, uses[u].metric);
                (void)rules_series_selected(&t[k], series[i], 4, "ns", NULL);
            }
            nt = rules_lookup_external(s, uses[u].metric, t, 4);
            for (size_t k = 0; k < nt && k < 4; k++)
                (void)rules_series_selected(&t[k], series[i], 4, "ns", NULL);
            (void)rules_object_label(uses[u].rule, "deployments.apps");
        }
        rules_disc_add(d, series[i], 4, RULES_TYPE_UNKNOWN);
    }
    const struct rules_served *v;
    (void)rules_disc_result(d, &v);
    rules_disc_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rules_set *s = NULL;
    char err[RULES_ERR_MAX];
    if (rules_load_buffer((const char *)data, size, &s, err, sizeof(err)) == 0) {
        exercise(s);
        rules_free(s);
    } else if (err[0] == '\0') {
        __builtin_trap(); /* every failure must say why */
    }
    return 0;
}
