/*
 * Golden-file test of api/k8s_json: each encoder's body for fixed inputs is
 * compared byte for byte with tests/api/golden/<name>.json (the body plus one
 * trailing newline). Usage: test_k8s_json GOLDEN_DIR [--update]; --update
 * rewrites the files (review the diff before committing it).
 */
#include "k8s_json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static const char *golden_dir;
static int update;

#define FAIL(...)                                                                                            \
    do {                                                                                                     \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                      \
        fprintf(stderr, __VA_ARGS__);                                                                        \
        fputc('\n', stderr);                                                                                 \
        failures++;                                                                                          \
    } while (0)

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b = BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    return buf_steal(&b, len);
}

/* Compares body with golden/<name>.json, or writes it with --update. */
static void golden(int line, const char *name, struct buf *body)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s.json", golden_dir, name);
    buf_putc(body, '\n');
    if (update) {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(body->data, 1, body->len, f) != body->len || fclose(f) != 0) {
            fprintf(stderr, "%s:%d: cannot write %s\n", __FILE__, line, path);
            failures++;
        }
        buf_free(body);
        return;
    }
    size_t len = 0;
    char *want = read_file(path, &len);
    if (!want) {
        fprintf(stderr, "%s:%d: cannot read %s\n", __FILE__, line, path);
        failures++;
    } else if (len != body->len || memcmp(want, body->data, len) != 0) {
        fprintf(stderr, "%s:%d: %s differs\n  got:  %.*s  want: %.*s", __FILE__, line, name, (int)body->len,
                body->data, (int)len, want);
        failures++;
    }
    free(want);
    buf_free(body);
}
#define GOLDEN(name, body) golden(__LINE__, name, body)

/* 2024-05-01T12:00:00.750Z */
#define TS 1714564800750LL

static const char *const sel_keys[] = {"tier", "app"};
static const char *const sel_vals[] = {"frontend", "web"};
static const char *const env_vals[] = {"prod", "staging"};
static const char *const canary_vals[] = {"true"};
static const struct api_label_selector_expr sel_exprs[] = {
    {"canary", "NotIn", canary_vals, 1},
    {"env", "In", env_vals, 2},
    {"legacy", "DoesNotExist", NULL, 0},
};
static const struct api_label_selector selector = {sel_keys, sel_vals, 2, sel_exprs, 3};

static const struct api_metric_value pods[] = {
    {{"Pod", "shop", "web-7d4b9c-abcde", "/v1"}, "http_requests", TS, 120, 1.5},
    {{"Pod", "shop", "web-7d4b9c-fghij", "/v1"}, "http_requests", TS - 15000, 120, 2000},
};
static const struct api_metric_value ns_item = {
    {"Namespace", NULL, "shop", "/v1"}, "queue_depth", TS, -1, 0.1};
static const struct api_metric_value deploy_item = {
    {"Deployment", "shop", "web", "apps/v1"}, "http_requests", TS, 60, 1536};

static void test_metric_lists(void)
{
    struct buf b = BUF_INIT;
    if (api_json_metric_value_list(&b, API_CM_V1BETA1, pods, 2, &selector) != 0)
        FAIL("v1beta1 pods refused");
    GOLDEN("metric_value_list_v1beta1_pods", &b);
    if (api_json_metric_value_list(&b, API_CM_V1BETA2, pods, 2, &selector) != 0)
        FAIL("v1beta2 pods refused");
    GOLDEN("metric_value_list_v1beta2_pods", &b);

    api_json_metric_value_list(&b, API_CM_V1BETA1, &ns_item, 1, NULL);
    GOLDEN("metric_value_list_v1beta1_namespace", &b);
    api_json_metric_value_list(&b, API_CM_V1BETA2, &ns_item, 1, NULL);
    GOLDEN("metric_value_list_v1beta2_namespace", &b);

    api_json_metric_value_list(&b, API_CM_V1BETA2, &deploy_item, 1, NULL);
    GOLDEN("metric_value_list_v1beta2_object", &b);

    api_json_metric_value_list(&b, API_CM_V1BETA2, NULL, 0, NULL);
    GOLDEN("metric_value_list_v1beta2_empty", &b);

    /* An empty but present selector is written as {} (not null). */
    struct api_label_selector none = {0};
    api_json_metric_value_list(&b, API_CM_V1BETA1, &deploy_item, 1, &none);
    if (!strstr(b.data, "\"selector\":{}}"))
        FAIL("empty selector: %s", b.data);
    buf_free(&b);

    /* A non-finite value refuses the whole body and leaves b as it was. */
    struct api_metric_value bad[2] = {pods[0], pods[1]};
    buf_puts(&b, "prefix");
    double nonfinite[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        bad[1].value = nonfinite[i];
        int rc = api_json_metric_value_list(&b, API_CM_V1BETA2, bad, 2, NULL);
        if (rc != -EDOM || b.len != 6 || strcmp(b.data, "prefix") != 0)
            FAIL("non-finite value %g: rc %d, buffer \"%s\"", nonfinite[i], rc, b.data);
    }
    buf_free(&b);
}

static void test_external(void)
{
    static const char *const names[] = {"queue", "cluster", "env"};
    static const char *const values[] = {"orders", "eu-1", "prod"};
    struct api_external_value items[] = {
        {"queue_length", names, values, 3, TS, -1, 42},
        {"queue_length", NULL, NULL, 0, TS - 1000, 120, 0.0001},
    };
    struct buf b = BUF_INIT;
    if (api_json_external_value_list(&b, items, 2) != 0)
        FAIL("external refused");
    GOLDEN("external_metric_value_list", &b);
    items[0].value = NAN;
    if (api_json_external_value_list(&b, items, 2) != -EDOM || b.len != 0)
        FAIL("external NaN accepted");
    buf_free(&b);
}

static void test_status(void)
{
    struct buf b = BUF_INIT;
    api_json_status(&b, 404, "NotFound",
                    "the server could not find the metric http_requests for pods web-7d4b9c-abcde");
    GOLDEN("status_404", &b);
    api_json_status(&b, 400, "BadRequest",
                    "invalid labelSelector \"app in (web\": found '', expected: ',' or ')'");
    GOLDEN("status_400", &b);
    /* Escaping: quotes, backslash, control characters, HTML characters,
     * U+2028, valid multi-byte UTF-8, and invalid bytes (a lone
     * continuation byte, a truncated sequence, an overlong '/', a surrogate). */
    const char msg[] =
        "q\"b\\n\n\r\t\x01\x1f<>& \xe2\x80\xa8 \xc3\xa9 \xf0\x9f\x98\x80 \x80 \xe2\x82 \xc0\xaf "
        "\xed\xa0\x80 end";
    api_json_status(&b, 500, "InternalError", msg);
    GOLDEN("status_escaping", &b);
}

static void test_discovery(void)
{
    struct buf b = BUF_INIT;
    const struct api_resource custom[] = {
        {"pods/http_requests", true, "MetricValueList"},
        {"namespaces/http_requests", false, "MetricValueList"},
        {"nodes/node_load1", false, "MetricValueList"},
    };
    api_json_resource_list(&b, "custom.metrics.k8s.io/v1beta2", custom, 3);
    GOLDEN("api_resource_list_custom", &b);
    const struct api_resource external[] = {{"queue_length", true, "ExternalMetricValueList"}};
    api_json_resource_list(&b, "external.metrics.k8s.io/v1beta1", external, 1);
    GOLDEN("api_resource_list_external", &b);

    static const char *const cm_versions[] = {"v1beta2", "v1beta1"};
    static const char *const em_versions[] = {"v1beta1"};
    const struct api_group groups[] = {
        {"custom.metrics.k8s.io", cm_versions, 2, "v1beta2"},
        {"external.metrics.k8s.io", em_versions, 1, "v1beta1"},
    };
    api_json_group_list(&b, groups, 2);
    GOLDEN("api_group_list", &b);
    api_json_group(&b, &groups[0]);
    GOLDEN("api_group_custom", &b);
    api_json_api_versions(&b, NULL, 0);
    GOLDEN("api_versions", &b);

    const struct api_version_info info = {
        "0", "1", "v0.1.0", "abc123", "clean", "2024-05-01T12:00:00Z", NULL, "gcc", "linux/amd64"};
    api_json_version_info(&b, &info);
    GOLDEN("version", &b);
}

static void test_time(void)
{
    static const struct {
        long long ms;
        const char *want;
    } cases[] = {
        {0, "\"1970-01-01T00:00:00Z\""},
        {999, "\"1970-01-01T00:00:00Z\""},
        {-1, "\"1969-12-31T23:59:59Z\""},
        {TS, "\"2024-05-01T12:00:00Z\""},
        {951782400000LL, "\"2000-02-29T00:00:00Z\""},
        {4102444799999LL, "\"2099-12-31T23:59:59Z\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b = BUF_INIT;
        api_json_time(&b, cases[i].ms);
        if (strcmp(b.data, cases[i].want) != 0)
            FAIL("time %lld: got %s, want %s", cases[i].ms, b.data, cases[i].want);
        buf_free(&b);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s GOLDEN_DIR [--update]\n", argv[0]);
        return 2;
    }
    golden_dir = argv[1];
    update = argc > 2 && strcmp(argv[2], "--update") == 0;
    test_metric_lists();
    test_external();
    test_status();
    test_discovery();
    test_time();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_k8s_json: %s\n", update ? "golden files written" : "ok");
    return 0;
}
