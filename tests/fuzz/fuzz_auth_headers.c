/*
 * Fuzz target: the header handling of the secure listener (adapter/auth.c,
 * compiled into the target so that libFuzzer instruments it).
 *
 * Input: a first line "METHOD /path", then "Name: value" lines. The path
 * goes through auth_request_attrs() (kube-apiserver's request info), every
 * header through the front-proxy collection (X-Remote-User, -Group,
 * -Extra-*), Authorization values through auth_bearer(), and names after
 * the extra prefix through auth_extra_key(). Checked: no crash, no leak,
 * and the invariants the guard relies on (a user name is never empty, a
 * token has no blanks, attributes point inside the buffer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static struct auth *auth;

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!auth) {
        struct auth_config cfg = {.anonymous = 1};
        check(auth_new(&cfg, &auth) == 0);
    }
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';

    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    if (line) {
        char *sp = strchr(line, ' ');
        const char *method = "GET", *path = line;
        if (sp) {
            *sp = '\0';
            method = line;
            path = sp + 1;
        }
        static char buf[8192];
        struct kube_attrs a;
        if (auth_request_attrs(method, path, &a, buf, sizeof(buf)) == 0) {
            check(a.verb != NULL && a.path == buf);
            if (a.is_resource)
                check(a.group != NULL && a.version != NULL);
            if (a.resource)
                check(a.resource >= buf && a.resource < buf + sizeof(buf));
        }
    }

    struct auth_hdr_state st;
    struct kube_user u;
    auth_headers_begin(auth, &st, &u);
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        const char *value = colon + 1;
        while (*value == ' ')
            value++;
        auth_headers_add(&st, line, value);
        const char *tok;
        size_t len;
        if (auth_bearer(value, &tok, &len) == 0)
            check(len > 0 && !memchr(tok, ' ', len) && !memchr(tok, '\t', len));
        char key[64];
        if (strncmp(line, "X-Remote-Extra-", 15) == 0 && auth_extra_key(line + 15, key, sizeof(key)) == 0)
            check(key[0] != '\0' && strlen(key) < sizeof(key));
    }
    if (auth_headers_end(&st) == 0)
        check(u.name && u.name[0]);
    kube_user_free(&u);
    free(text);
    return 0;
}
