/*
 * Unit tests of the Kubernetes client without a server: kubeconfig parsing
 * (the .c is included to see the parsed fields), the in-cluster fallback,
 * the SubjectAccessReview body, and timeouts against a socket that accepts
 * but never answers. Calls against a kube-apiserver stand-in are in
 * tests/integration/test_auth.py.
 */
#include "../../adapter/kube.c"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "check.h"

static char dir[] = "/tmp/ma-test-kube-XXXXXX";

static const char *write_file_in(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_kubeconfig(void)
{
    /* base64 of "CA-PEM" and "CERT" and "KEY". */
    const char *p = write_file_in("kc", "apiVersion: v1\n"
                                        "kind: Config\n"
                                        "current-context: b\n"
                                        "contexts:\n"
                                        "- name: a\n  context: {cluster: one, user: u1}\n"
                                        "- name: b\n  context: {cluster: two, user: u2}\n"
                                        "clusters:\n"
                                        "- name: one\n  cluster: {server: 'https://wrong:1'}\n"
                                        "- name: two\n"
                                        "  cluster:\n"
                                        "    server: https://api.example:6443/\n"
                                        "    certificate-authority: certs/ca.crt\n"
                                        "    insecure-skip-tls-verify: true\n"
                                        "users:\n"
                                        "- name: u1\n  user: {token: nope}\n"
                                        "- name: u2\n"
                                        "  user:\n"
                                        "    token: t0ken\n"
                                        "    client-certificate-data: Q0VSVA==\n"
                                        "    client-key-data: S0VZ\n");
    struct kube *k;
    CHECK_EQ(kube_new(p, 1000, 0, &k), 0);
    CHECK_STR(kube_server(k), "https://api.example:6443");
    CHECK_STR(k->token, "t0ken");
    char want[600];
    snprintf(want, sizeof(want), "%s/certs/ca.crt", dir);
    CHECK_STR(k->ca_file, want);
    CHECK_EQ(k->insecure, 1);
    CHECK_EQ(k->cert_data.len, 4);
    CHECK(memcmp(k->cert_data.data, "CERT", 4) == 0);
    CHECK_EQ(k->key_data.len, 3);
    kube_free(k);

    p = write_file_in("kc2", "current-context: x\ncontexts: []\n");
    CHECK_EQ(kube_new(p, 1000, 0, &k), -EINVAL);
    p = write_file_in("kc3", "{{{ not yaml");
    CHECK_EQ(kube_new(p, 1000, 0, &k), -EINVAL);
    snprintf(want, sizeof(want), "%s/missing", dir);
    CHECK_EQ(kube_new(want, 1000, 0, &k), -ENOENT);

    /* No kubeconfig and not in a cluster. */
    unsetenv("KUBERNETES_SERVICE_HOST");
    CHECK_EQ(kube_new("", 1000, 0, &k), -ENOENT);
}

static void test_sar_body(void)
{
    struct kube_user u = {0};
    u.name = strdup("alice");
    kube_user_add_group(&u, "devs");
    kube_user_add_extra(&u, "scopes", "a");
    kube_user_add_extra(&u, "scopes", "b");
    struct kube_attrs a = {.is_resource = 1,
                           .verb = "get",
                           .ns = "ns",
                           .group = "custom.metrics.k8s.io",
                           .version = "v1beta2",
                           .resource = "pods",
                           .subresource = "m",
                           .name = "*"};
    json_t *j = kube_sar_body(&u, &a);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR(s,
              "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\",\"spec\":{"
              "\"extra\":{\"scopes\":[\"a\",\"b\"]},\"groups\":[\"devs\"],\"resourceAttributes\":{"
              "\"group\":\"custom.metrics.k8s.io\",\"name\":\"*\",\"namespace\":\"ns\",\"resource\":\"pods\","
              "\"subresource\":\"m\",\"verb\":\"get\",\"version\":\"v1beta2\"},\"user\":\"alice\"}}");
    free(s);
    json_decref(j);

    struct kube_attrs n = {.verb = "get", .path = "/metrics"};
    j = kube_sar_body(&u, &n);
    s = json_dumps(json_object_get(j, "spec"), JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_HAS(s, "\"nonResourceAttributes\":{\"path\":\"/metrics\",\"verb\":\"get\"}");
    CHECK(!strstr(s, "resourceAttributes\":{\"group"));
    free(s);
    json_decref(j);
    kube_user_free(&u);
}

/* A socket that accepts connections (the kernel's backlog) but never answers. */
static int silent_listener(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(listen(fd, 16) == 0);
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void test_timeouts(void)
{
    unsigned port;
    int fd = silent_listener(&port);
    char text[256];
    snprintf(
        text, sizeof(text),
        "current-context: c\ncontexts: [{name: c, context: {cluster: s, user: u}}]\n"
        "clusters: [{name: s, cluster: {server: 'http://127.0.0.1:%u'}}]\nusers: [{name: u, user: {}}]\n",
        port);
    struct kube *k;
    CHECK_EQ(kube_new(write_file_in("kc4", text), 200, 1, &k), 0);
    struct kube_user u = {.name = "alice"};
    struct kube_attrs a = {.verb = "get", .path = "/metrics"};
    int allowed = 7;
    double t0 = t_now();
    CHECK_EQ(kube_sar(k, &u, &a, &allowed, NULL, 0), -ETIMEDOUT);
    double took = t_now() - t0;
    /* Two attempts of 200 ms and 100 ms of backoff. */
    CHECK(took >= 0.45 && took < 1.5);
    CHECK_EQ(allowed, 7); /* out-parameters untouched on failure */
    kube_free(k);
    close(fd);

    /* Nothing listening: a transport error, quickly. */
    fd = silent_listener(&port);
    close(fd);
    snprintf(
        text, sizeof(text),
        "current-context: c\ncontexts: [{name: c, context: {cluster: s, user: u}}]\n"
        "clusters: [{name: s, cluster: {server: 'http://127.0.0.1:%u'}}]\nusers: [{name: u, user: {}}]\n",
        port);
    CHECK_EQ(kube_new(write_file_in("kc5", text), 200, 0, &k), 0);
    json_t *data = NULL;
    CHECK_EQ(kube_configmap_data(k, "kube-system", "x", &data), -EIO);
    CHECK(data == NULL);
    kube_free(k);
}

int main(void)
{
    CHECK(mkdtemp(dir));
    test_kubeconfig();
    test_sar_body();
    test_timeouts();
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    curl_global_cleanup();
    printf("ok\n");
    return 0;
}
