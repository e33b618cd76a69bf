/*
 * Unit tests of auth's pure parts: kube-apiserver's request attributes for
 * a path, the Authorization header, extra keys, and the front-proxy header
 * collection. The chain itself (certificates, reviews, cache) is exercised
 * end to end by tests/integration/test_auth.py.
 */
#include <errno.h>

#include "auth.h"
#include "check.h"

static char buf[8192];

static void attrs(const char *method, const char *path, struct kube_attrs *a)
{
    CHECK_EQ(auth_request_attrs(method, path, a, buf, sizeof(buf)), 0);
}

#define CHECK_OPT(a, b) CHECK_STR((a) ? (a) : "(none)", (b))

static void test_attrs(void)
{
    struct kube_attrs a;

    /* DESIGN 6's three examples. */
    attrs("GET", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/m", &a);
    CHECK_EQ(a.is_resource, 1);
    CHECK_STR(a.verb, "get");
    CHECK_STR(a.group, "custom.metrics.k8s.io");
    CHECK_STR(a.version, "v1beta2");
    CHECK_STR(a.ns, "ns");
    CHECK_STR(a.resource, "pods");
    CHECK_STR(a.name, "*");
    CHECK_STR(a.subresource, "m");

    attrs("GET", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/m", &a);
    CHECK_STR(a.resource, "metrics");
    CHECK_STR(a.name, "m");
    CHECK_OPT(a.subresource, "(none)");
    CHECK_STR(a.verb, "get");

    attrs("GET", "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/m", &a);
    CHECK_STR(a.verb, "list");
    CHECK_STR(a.group, "external.metrics.k8s.io");
    CHECK_STR(a.ns, "ns");
    CHECK_STR(a.resource, "m");
    CHECK_OPT(a.name, "(none)");

    /* Root-scoped objects (nodes) and resources with a group suffix. */
    attrs("GET", "/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/cpu", &a);
    CHECK_OPT(a.ns, "(none)");
    CHECK_STR(a.resource, "nodes");
    CHECK_STR(a.name, "n1");
    CHECK_STR(a.subresource, "cpu");
    attrs("GET", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/deployments.apps/web/m", &a);
    CHECK_STR(a.resource, "deployments.apps");

    /* Discovery and everything outside /api and /apis: non-resource. */
    const char *nonres[] = {"/apis/custom.metrics.k8s.io/v1beta2",
                            "/apis/custom.metrics.k8s.io",
                            "/apis",
                            "/api",
                            "/api/v1",
                            "/metrics",
                            "/version",
                            "/",
                            "",
                            "/openapi/v2"};
    for (size_t i = 0; i < sizeof(nonres) / sizeof(nonres[0]); i++) {
        attrs("GET", nonres[i], &a);
        CHECK_EQ(a.is_resource, 0);
        CHECK_STR(a.path, nonres[i]);
        CHECK_STR(a.verb, "get");
    }
    attrs("POST", "/metrics", &a);
    CHECK_STR(a.verb, "post");

    /* Core group, namespace subresources, verbs from methods. */
    attrs("GET", "/api/v1/namespaces/ns/pods", &a);
    CHECK_STR(a.group, "");
    CHECK_STR(a.resource, "pods");
    CHECK_STR(a.verb, "list");
    attrs("GET", "/api/v1/namespaces/ns", &a);
    CHECK_STR(a.resource, "namespaces");
    CHECK_STR(a.name, "ns");
    attrs("PUT", "/api/v1/namespaces/ns/status", &a);
    CHECK_STR(a.resource, "namespaces");
    CHECK_STR(a.name, "ns");
    CHECK_STR(a.subresource, "status");
    CHECK_STR(a.verb, "update");
    attrs("DELETE", "/apis/g/v1/namespaces/ns/things", &a);
    CHECK_STR(a.verb, "deletecollection");
    attrs("POST", "/apis/g/v1/namespaces/ns/things", &a);
    CHECK_STR(a.verb, "create");
    attrs("GET", "/apis/g/v1/watch/namespaces/ns/things", &a);
    CHECK_STR(a.verb, "watch");
    CHECK_STR(a.resource, "things");
    /* Trailing and doubled slashes as kube's splitPath sees them. */
    attrs("GET", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/p/m/", &a);
    CHECK_STR(a.subresource, "m");

    /* Too long for the buffer. */
    char small[16];
    CHECK_EQ(auth_request_attrs("GET", "/apis/custom.metrics.k8s.io/v1beta2", &a, small, sizeof(small)),
             -ENOSPC);
}

static void test_bearer(void)
{
    const char *t;
    size_t n;
    CHECK_EQ(auth_bearer("Bearer abc.def", &t, &n), 0);
    CHECK_EQ(n, 7);
    CHECK(memcmp(t, "abc.def", 7) == 0);
    CHECK_EQ(auth_bearer("bearer   tok  ", &t, &n), 0);
    CHECK_EQ(n, 3);
    CHECK_EQ(auth_bearer("BEARER\ttok", &t, &n), 0);
    CHECK_EQ(auth_bearer("Bearer", &t, &n), -ENOENT);
    CHECK_EQ(auth_bearer("Bearer ", &t, &n), -ENOENT);
    CHECK_EQ(auth_bearer("Bearertok", &t, &n), -ENOENT);
    CHECK_EQ(auth_bearer("Basic dXNlcjpw", &t, &n), -ENOENT);
    CHECK_EQ(auth_bearer("Bearer two words", &t, &n), -ENOENT);
    CHECK_EQ(auth_bearer(NULL, &t, &n), -ENOENT);
}

static void test_extra_key(void)
{
    char k[64];
    CHECK_EQ(auth_extra_key("Scopes", k, sizeof(k)), 0);
    CHECK_STR(k, "scopes");
    CHECK_EQ(auth_extra_key("Acme.com%2FProject", k, sizeof(k)), 0);
    CHECK_STR(k, "acme.com/project");
    CHECK_EQ(auth_extra_key("a%2", k, sizeof(k)), -EINVAL);
    CHECK_EQ(auth_extra_key("a%zz", k, sizeof(k)), -EINVAL);
    CHECK_EQ(auth_extra_key("", k, sizeof(k)), -EINVAL);
    CHECK_EQ(auth_extra_key("0123456789", k, 5), -EINVAL);
}

static void test_headers(void)
{
    struct auth *a;
    struct auth_config cfg = {
        .username_headers = "X-Remote-User, X-Other-User",
        .group_headers = "X-Remote-Group",
        .extra_prefixes = "X-Remote-Extra-",
        .anonymous = 1,
    };
    CHECK_EQ(auth_new(&cfg, &a), 0);
    struct auth_hdr_state st;
    struct kube_user u;

    /* The first configured header wins even when it comes later; empty values do not count. */
    auth_headers_begin(a, &st, &u);
    auth_headers_add(&st, "Host", "x");
    auth_headers_add(&st, "x-other-user", "second");
    auth_headers_add(&st, "X-Remote-User", "");
    auth_headers_add(&st, "x-remote-user", "alice");
    auth_headers_add(&st, "X-Remote-User", "mallory");
    auth_headers_add(&st, "X-Remote-Group", "g1");
    auth_headers_add(&st, "x-remote-group", "g2");
    auth_headers_add(&st, "X-Remote-Group", "");
    auth_headers_add(&st, "X-Remote-Extra-Scopes", "s1");
    auth_headers_add(&st, "X-Remote-Extra-Scopes", "s2");
    auth_headers_add(&st, "X-Remote-Extra-Bad%", "dropped");
    CHECK_EQ(auth_headers_end(&st), 0);
    CHECK_STR(u.name, "alice");
    CHECK_EQ(u.ngroups, 2);
    CHECK_STR(u.groups[0], "g1");
    CHECK_STR(u.groups[1], "g2");
    CHECK_EQ(u.nextra, 2);
    CHECK_STR(u.extra_keys[1], "scopes");
    CHECK_STR(u.extra_values[1], "s2");
    kube_user_free(&u);

    auth_headers_begin(a, &st, &u);
    auth_headers_add(&st, "X-Remote-Group", "g1");
    CHECK_EQ(auth_headers_end(&st), -ENOENT);
    kube_user_free(&u);
    auth_free(a);
}

int main(void)
{
    test_attrs();
    test_bearer();
    test_extra_key();
    test_headers();
    printf("ok\n");
    return 0;
}
