/*
 * Unit tests of ingest's pure parts: the constant-time token comparison, the
 * loopback decision on --listen-address, and ingest_new()'s start-up checks.
 * The handler itself is tested black box in tests/integration/test_ingest.py.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "test_store.h"

static int eq(const char *a, const char *b)
{
    return ingest_token_equal(a, strlen(a), b, strlen(b));
}

static void test_token_equal(void)
{
    CHECK_EQ(eq("s3cret", "s3cret"), 1);
    CHECK_EQ(eq("s3cre", "s3cret"), 0);   /* prefix */
    CHECK_EQ(eq("s3crett", "s3cret"), 0); /* longer */
    CHECK_EQ(eq("S3cret", "s3cret"), 0);  /* case */
    CHECK_EQ(eq("", "s3cret"), 0);
    CHECK_EQ(eq("", ""), 0); /* an empty expected token never matches */
    /* Bytes after a NUL are compared too: lengths are explicit. */
    CHECK_EQ(ingest_token_equal("ab\0c", 4, "ab\0d", 4), 0);
    CHECK_EQ(ingest_token_equal("ab\0c", 4, "ab\0c", 4), 1);
}

static void test_loopback(void)
{
    CHECK_EQ(ingest_address_is_loopback("127.0.0.1:8080"), 1);
    CHECK_EQ(ingest_address_is_loopback("127.1.2.3:0"), 1);
    CHECK_EQ(ingest_address_is_loopback("[::1]:8080"), 1);
    CHECK_EQ(ingest_address_is_loopback("localhost:8080"), 1);
    CHECK_EQ(ingest_address_is_loopback("0.0.0.0:8080"), 0);
    CHECK_EQ(ingest_address_is_loopback("[::]:8080"), 0);
    CHECK_EQ(ingest_address_is_loopback("10.0.0.1:8080"), 0);
    CHECK_EQ(ingest_address_is_loopback("128.0.0.1:8080"), 0);
    CHECK_EQ(ingest_address_is_loopback(":8080"), 0);
}

static void test_new(struct store *st)
{
    struct ma_config cfg;
    char err[256];
    char *argv[] = {"metrics-adapter", NULL};
    struct ingest *ing;

    CHECK_EQ(flags_parse(&cfg, 1, argv, err, sizeof err), FLAGS_OK);
    /* Default loopback listener, no token: fine. */
    CHECK_EQ(ingest_new(&cfg, st, &ing), 0);
    ingest_free(ing);

    /* Non-loopback without a token file: refused. */
    free(cfg.listen_address);
    cfg.listen_address = strdup("0.0.0.0:8080");
    ing = NULL;
    CHECK_EQ(ingest_new(&cfg, st, &ing), -EINVAL);
    CHECK(ing == NULL);

    /* With a token file: accepted; an empty or missing file is not. */
    char path[] = "/tmp/ma-test-token-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    free(cfg.ingest_token_file);
    cfg.ingest_token_file = strdup(path);
    CHECK_EQ(ingest_new(&cfg, st, &ing), -EINVAL); /* empty */
    CHECK_EQ(write(fd, "tok\n", 4), 4);
    close(fd);
    CHECK_EQ(ingest_new(&cfg, st, &ing), 0);
    ingest_free(ing);
    unlink(path);
    CHECK_EQ(ingest_new(&cfg, st, &ing), -ENOENT);
    flags_free(&cfg);
}

int main(void)
{
    struct store_config sc = {0};
    struct store *st;
    rcu_register_thread();
    log_set_level(LOG_ERROR);
    test_token_equal();
    test_loopback();
    CHECK_EQ(store_new(&sc, &st), 0);
    test_new(st);
    store_free(st);
    ml_shutdown();
    rcu_unregister_thread();
    printf("test_ingest: ok\n");
    return 0;
}
