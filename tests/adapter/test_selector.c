/*
 * Table test of adapter/selector: parsing (canonical form or the expected
 * error), matching against label sets, and the LabelSelector view.
 * Cases follow k8s.io/apimachinery/pkg/labels/selector_test.go's behaviour.
 */
#include "selector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define FAIL(...)                                                                                            \
    do {                                                                                                     \
        fprintf(stderr, "%s:%d: ", __FILE__, line);                                                          \
        fprintf(stderr, __VA_ARGS__);                                                                        \
        fputc('\n', stderr);                                                                                 \
        failures++;                                                                                          \
    } while (0)

/* Parses text; want is the canonical form (Selector.String()) expected. */
static void ok(int line, const char *text, const char *want)
{
    struct sel_selector *s = NULL;
    char err[SEL_ERR_MAX];
    int rc = sel_parse(text, strlen(text), &s, err, sizeof(err));
    if (rc != 0) {
        FAIL("parse \"%s\": rc %d (%s), want success", text, rc, err);
        return;
    }
    struct buf b = BUF_INIT;
    sel_format(s, &b);
    const char *got = b.len ? b.data : "";
    if (strcmp(got, want) != 0)
        FAIL("parse \"%s\": canonical \"%s\", want \"%s\"", text, got, want);
    /* the canonical form parses to itself */
    struct sel_selector *s2 = NULL;
    if (sel_parse(got, strlen(got), &s2, err, sizeof(err)) != 0) {
        FAIL("reparse \"%s\": %s", got, err);
    } else {
        struct buf b2 = BUF_INIT;
        sel_format(s2, &b2);
        if (strcmp(b2.len ? b2.data : "", got) != 0)
            FAIL("reparse \"%s\" gives \"%s\"", got, b2.data);
        buf_free(&b2);
        sel_free(s2);
    }
    buf_free(&b);
    sel_free(s);
}

/* Parses text and expects rc with an error message containing want_err. */
static void bad(int line, const char *text, size_t len, int want_rc, const char *want_err)
{
    struct sel_selector *s = (struct sel_selector *)0x1;
    char err[SEL_ERR_MAX] = "";
    int rc = sel_parse(text, len, &s, err, sizeof(err));
    if (rc != want_rc)
        FAIL("parse \"%.*s\": rc %d (%s), want %d", (int)len, text, rc, err, want_rc);
    else if (!strstr(err, want_err))
        FAIL("parse \"%.*s\": error \"%s\" does not contain \"%s\"", (int)len, text, err, want_err);
    if (s != (struct sel_selector *)0x1)
        FAIL("parse \"%.*s\": out written on failure", (int)len, text);
}

#define OK(text, want)          ok(__LINE__, text, want)
#define BAD(text, want_err)     bad(__LINE__, text, strlen(text), -EINVAL, want_err)
#define BADN(text, n, rc, want) bad(__LINE__, text, n, rc, want)

/* A label set "k=v,k2=v2" (values may be empty) for the lookup callback. */
struct labels {
    const char *names[8], *values[8];
    size_t n;
};

static void labels_parse(struct labels *l, char *spec)
{
    l->n = 0;
    for (char *tok = strtok(spec, ","); tok && l->n < 8; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        *eq = '\0';
        l->names[l->n] = tok;
        l->values[l->n++] = eq + 1;
    }
}

static const char *lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    struct labels *l = ctx;
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->names[i]) == name_len && memcmp(l->names[i], name, name_len) == 0) {
            *value_len = strlen(l->values[i]);
            return l->values[i];
        }
    }
    return NULL;
}

static void match(int line, const char *sel, const char *label_spec, int want)
{
    struct sel_selector *s;
    char err[SEL_ERR_MAX];
    if (sel_parse(sel, strlen(sel), &s, err, sizeof(err)) != 0) {
        FAIL("parse \"%s\": %s", sel, err);
        return;
    }
    char spec[256];
    snprintf(spec, sizeof(spec), "%s", label_spec);
    struct labels l;
    labels_parse(&l, spec);
    int got = sel_matches(s, lookup, &l);
    if (got != want)
        FAIL("\"%s\" on {%s}: %s, want %s", sel, label_spec, got ? "match" : "no match",
             want ? "match" : "no match");
    sel_free(s);
}
#define MATCH(sel, labels)    match(__LINE__, sel, labels, 1)
#define NO_MATCH(sel, labels) match(__LINE__, sel, labels, 0)

static void test_parse_valid(void)
{
    OK("", "");
    OK("   ", "");
    OK("x=a", "x=a");
    OK("x==a", "x==a");
    OK("x!=a", "x!=a");
    OK("x", "x");
    OK("!x", "!x");
    OK(" ! x ", "!x");
    OK("x in (a,b)", "x in (a,b)");
    OK("x in (b,a,b)", "x in (a,b)");
    OK("x notin (a)", "x notin (a)");
    OK("x in(a)", "x in (a)");
    OK("x notin(a, b)", "x notin (a,b)");
    OK("x in ()", "x in ()");
    OK("x in (,a)", "x in (,a)");
    OK("x in (a,)", "x in (,a)");
    OK("x in (a,,b)", "x in (,a,b)");
    OK("x=", "x=");
    OK("x=,y=b", "x=,y=b");
    OK("x>1", "x>1");
    OK("x<007", "x<007");
    OK("z=c,y!=b,x in (a)", "x in (a),y!=b,z=c");
    OK("a=1,a=2", "a=1,a=2");
    OK("x=a,y", "x=a,y");
    OK("x\t=\na ,\r\ny ", "x=a,y");
    OK("example.com/app=web", "example.com/app=web");
    OK("app.kubernetes.io/name in (web,api)", "app.kubernetes.io/name in (api,web)");
    OK("UPPER_case.Key-1=Value_1.x-Y", "UPPER_case.Key-1=Value_1.x-Y");
    OK("in=in", "in=in"); /* keywords are identifiers where a key or value is expected */
    OK("notin in (in,notin)", "notin in (in,notin)");
    OK("x=in", "x=in");
    OK(" x = a , y != b ", "x=a,y!=b");
}

static void test_parse_invalid(void)
{
    BAD(",", "found ',', expected: !, identifier, or 'end of string'");
    BAD("x=a,", "found '', expected: identifier after ','");
    BAD("x=a,,y=b", "found ',', expected: identifier after ','");
    BAD("x=a y=b", "found 'y', expected: ',' or 'end of string'");
    BAD("x a", "found 'a', expected: in, notin, =, ==, !=, gt, lt");
    BAD("x in a", "found 'a' expected: '('");
    BAD("x in (a", "found '', expected: ',' or ')'");
    BAD("x in (a b)", "found 'b', expected: ',' or ')'");
    BAD("x in (=)", "found '=', expected: ',', ')' or identifier");
    BAD("x in (a,=)", "found '=', expected: ',', or identifier");
    BAD("x in", "found '' expected: '('");
    BAD("x=(a)", "found '(', expected: identifier");
    BAD("x===a", "found '=', expected: identifier"); /* "==" then "=" */
    BAD("x!==a", "found '=', expected: identifier");
    BAD("x=!a", "found '!', expected: identifier");
    BAD("x=a=b", "found '=', expected: ',' or 'end of string'");
    BAD("!x=a", "found '=', expected: ',' or 'end of string'");
    BAD("!", "found '', expected: identifier");
    BAD("!!x", "found '!', expected: identifier");
    BAD("=a", "found '=', expected: !, identifier, or 'end of string'");
    BAD("(x)", "found '(', expected: !, identifier, or 'end of string'");
    BAD("x>a", "the value must be an integer");
    BAD("x>", "the value must be an integer");
    BAD("x<99999999999999999999", "the value must be an integer");
    BAD("x>-1", "invalid label value \"-1\"");
    BAD("x in (-a)", "invalid label value \"-a\"");
    BAD("x=a_", "invalid label value \"a_\"");
    BAD("x=a/b", "invalid label value \"a/b\"");
    BAD("x=\xc3\xa9", "invalid label value");
    BAD("x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "no more than 63 characters");
    BAD("-x=a", "invalid label key \"-x\": name part must consist");
    BAD("x_=a", "invalid label key");
    BAD("/x=a", "prefix part must be non-empty");
    BAD("Example.com/x=a", "prefix part must be a lowercase DNS-1123 subdomain");
    BAD("ex..com/x=a", "prefix part must be a lowercase DNS-1123 subdomain");
    BAD("-ex.com/x=a", "prefix part must be a lowercase DNS-1123 subdomain");
    BAD("a/b/c=a", "a qualified name must be");
    BAD("a/=a", "name part must be non-empty");
    BAD("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=a", "no more than 63 characters");
    BADN("x=a\0y", 5, -EINVAL, "NUL");
    static char big[SEL_TEXT_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    BADN(big, SEL_TEXT_MAX + 1, -E2BIG, "longer than");
}

static void test_match(void)
{
    MATCH("", "");
    MATCH("", "a=1");
    MATCH("x=a", "x=a");
    MATCH("x==a", "x=a,y=b");
    NO_MATCH("x=a", "x=b");
    NO_MATCH("x=a", "y=a");
    MATCH("x=", "x=");
    NO_MATCH("x=", "");
    MATCH("x!=a", "x=b");
    MATCH("x!=a", "y=a"); /* absent label: != holds */
    NO_MATCH("x!=a", "x=a");
    MATCH("x in (a,b)", "x=b");
    NO_MATCH("x in (a,b)", "x=c");
    NO_MATCH("x in (a,b)", "");
    MATCH("x in ()", "x=");
    MATCH("x notin (a,b)", "x=c");
    MATCH("x notin (a,b)", "");
    NO_MATCH("x notin (a,b)", "x=a");
    MATCH("x", "x=");
    NO_MATCH("x", "y=1");
    MATCH("!x", "y=1");
    NO_MATCH("!x", "x=1");
    MATCH("x>5", "x=6");
    NO_MATCH("x>5", "x=5");
    NO_MATCH("x>5", "x=abc");
    NO_MATCH("x>5", "");
    MATCH("x<5", "x=-7");
    MATCH("x<5", "x=+4");
    NO_MATCH("x<5", "x=5");
    MATCH("x=a,y in (1,2),!z", "x=a,y=2");
    NO_MATCH("x=a,y in (1,2),!z", "x=a,y=2,z=");
    NO_MATCH("a=1,a=2", "a=1");
    MATCH("app.kubernetes.io/name=web", "app.kubernetes.io/name=web");
    /* prefix values: has_value compares whole strings */
    NO_MATCH("x in (ab,abc)", "x=a");
    NO_MATCH("x in (ab,abc)", "x=abcd");
    MATCH("x in (ab,abc)", "x=abc");
}

static void test_label_selector(void)
{
    int line = __LINE__;
    const char *text = "tier=frontend,app==web,env in (staging,prod),canary!=true,!legacy,debug,tier=backend";
    struct sel_selector *s;
    char err[SEL_ERR_MAX];
    if (sel_parse(text, strlen(text), &s, err, sizeof(err)) != 0) {
        FAIL("parse: %s", err);
        return;
    }
    const struct api_label_selector *ls = sel_label_selector(s);
    struct buf b = BUF_INIT;
    if (!ls) {
        FAIL("no LabelSelector");
    } else {
        struct api_metric_value item = {{"Pod", "ns", "p", "/v1"}, "m", 0, -1, 1};
        api_json_metric_value_list(&b, API_CM_V1BETA2, &item, 1, ls);
        const char *want =
            "\"selector\":{\"matchLabels\":{\"app\":\"web\",\"tier\":\"frontend\"},"
            "\"matchExpressions\":[{\"key\":\"canary\",\"operator\":\"NotIn\",\"values\":[\"true\"]},"
            "{\"key\":\"debug\",\"operator\":\"Exists\"},"
            "{\"key\":\"env\",\"operator\":\"In\",\"values\":[\"prod\",\"staging\"]},"
            "{\"key\":\"legacy\",\"operator\":\"DoesNotExist\"},"
            "{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"backend\"]}]}";
        if (!strstr(b.data, want))
            FAIL("LabelSelector JSON:\n  got  %s\n  want %s", b.data, want);
    }
    buf_free(&b);
    sel_free(s);

    /* empty, and > / < (not expressible): no LabelSelector */
    const char *none[] = {"", "x>1", "a=b,x<1"};
    for (size_t i = 0; i < 3; i++) {
        if (sel_parse(none[i], strlen(none[i]), &s, err, sizeof(err)) != 0) {
            FAIL("parse \"%s\": %s", none[i], err);
            continue;
        }
        if (sel_label_selector(s))
            FAIL("\"%s\" has a LabelSelector", none[i]);
        sel_free(s);
    }

    /* (NULL, 0) is the empty selector */
    if (sel_parse(NULL, 0, &s, err, sizeof(err)) != 0 || !sel_empty(s) || sel_count(s) != 0)
        FAIL("NULL selector");
    else
        sel_free(s);

    /* accessors */
    if (sel_parse("b=2,a in (x,y)", 14, &s, err, sizeof(err)) == 0) {
        const struct sel_requirement *r = sel_get(s, 0);
        if (sel_count(s) != 2 || sel_empty(s) || strcmp(r->key, "a") != 0 || r->op != SEL_OP_IN ||
            r->nvalues != 2 || strcmp(r->values[1], "y") != 0 || sel_get(s, 2) != NULL)
            FAIL("accessors");
        sel_free(s);
    }
}

int main(void)
{
    test_parse_valid();
    test_parse_invalid();
    test_match();
    test_label_selector();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_selector: ok\n");
    return 0;
}
