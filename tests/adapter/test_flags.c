/* Unit tests of adapter/flags.c: defaults, both flag syntaxes, value parsers, every error path. */
#include "flags.h"

#include <errno.h>

#include "check.h"

static char err[512];

static int parse(struct ma_config *cfg, int argc, char **argv)
{
    return flags_parse(cfg, argc, argv, err, sizeof(err));
}

#define ARGV(...)       ((char *[]){"metrics-adapter", __VA_ARGS__, NULL})
#define ARGC(...)       ((int)(sizeof((char *[]){"metrics-adapter", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, ...) parse(cfg, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_defaults(void)
{
    struct ma_config c;
    char *argv[] = {"metrics-adapter", NULL};
    CHECK_EQ(parse(&c, 1, argv), FLAGS_OK);
    CHECK_STR(c.listen_address, "127.0.0.1:8080");
    CHECK_STR(c.ingest_token_file, "");
    CHECK_EQ(c.max_body_bytes, 16 << 20);
    CHECK_EQ(c.max_decoded_bytes, 32 << 20);
    CHECK_EQ(c.max_labels_per_series, 64);
    CHECK_EQ(c.max_label_name_length, 1024);
    CHECK_EQ(c.max_label_value_length, 4096);
    CHECK_EQ(c.max_series_per_request, 100000);
    CHECK_EQ(c.max_series, 1000000);
    CHECK_EQ(c.max_series_per_metric, 0);
    CHECK_EQ(c.series_ttl_ms, 5 * 60 * 1000);
    CHECK_EQ(c.max_future_ms, 5 * 60 * 1000);
    CHECK_EQ(c.rate_window_ms, 2 * 60 * 1000);
    CHECK_EQ(c.reap_interval_ms, 15 * 1000);
    CHECK_EQ(c.http_threads, 0);
    CHECK_EQ(c.max_connections, 1024);
    CHECK_EQ(c.http_timeout_ms, 30000);
    CHECK_EQ(c.log_level, LOG_INFO);
    CHECK_EQ(c.ndrop_labels, 2);
    CHECK_STR(c.drop_labels[0], "prometheus_replica");
    CHECK_STR(c.drop_labels[1], "__replica__");
    CHECK(c.drop_labels[2] == NULL);
    flags_free(&c);
}

static void test_syntax(void)
{
    struct ma_config c;
    CHECK_EQ(PARSE(&c, "--listen-address=[::1]:0", "--max-series", "42", "--series-ttl=90s", "--log-level",
                   "debug", "--max-body-bytes=1Mi", "--drop-labels", " replica , ,__x__", "--max-series=43"),
             FLAGS_OK);
    CHECK_STR(c.listen_address, "[::1]:0");
    CHECK_EQ(c.max_series, 43); /* the last occurrence wins */
    CHECK_EQ(c.series_ttl_ms, 90000);
    CHECK_EQ(c.log_level, LOG_DEBUG);
    CHECK_EQ(c.max_body_bytes, 1 << 20);
    CHECK_EQ(c.ndrop_labels, 2);
    CHECK_STR(c.drop_labels[0], "replica");
    CHECK_STR(c.drop_labels[1], "__x__");
    flags_free(&c);

    CHECK_EQ(PARSE(&c, "--drop-labels="), FLAGS_OK);
    CHECK_EQ(c.ndrop_labels, 0);
    flags_free(&c);

    CHECK_EQ(PARSE(&c, "--max-series=1", "--help"), FLAGS_HELP);
    flags_free(&c);
    CHECK_EQ(PARSE(&c, "--version"), FLAGS_VERSION);
    flags_free(&c);
}

static void expect_error(const char *needle, int argc, char **argv)
{
    struct ma_config c;
    err[0] = '\0';
    CHECK_EQ(parse(&c, argc, argv), -EINVAL);
    CHECK_HAS(err, needle);
    flags_free(&c);
}
#define EXPECT_ERROR(needle, ...) expect_error(needle, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void test_errors(void)
{
    EXPECT_ERROR("unknown flag --bogus", "--bogus=1");
    EXPECT_ERROR("unknown flag --bogus", "--bogus");
    EXPECT_ERROR("flag --max-series needs a value", "--max-series");
    EXPECT_ERROR("unexpected argument \"stray\"", "stray");
    EXPECT_ERROR("unexpected argument \"-v\"", "-v");
    EXPECT_ERROR("unexpected argument \"--\"", "--");
    EXPECT_ERROR("--max-series: expected a non-negative integer", "--max-series=-1");
    EXPECT_ERROR("--max-series: expected a non-negative integer", "--max-series=1e6");
    EXPECT_ERROR("--max-series: expected a non-negative integer", "--max-series=99999999999999999999");
    EXPECT_ERROR("--max-labels-per-series", "--max-labels-per-series=4294967296");
    EXPECT_ERROR("--series-ttl: expected a duration", "--series-ttl=5");
    EXPECT_ERROR("--series-ttl: expected a duration", "--series-ttl=5d");
    EXPECT_ERROR("--series-ttl: expected a duration", "--series-ttl=");
    EXPECT_ERROR("--max-body-bytes: expected a size", "--max-body-bytes=1Q");
    EXPECT_ERROR("--max-body-bytes: must be positive", "--max-body-bytes=0");
    EXPECT_ERROR("--max-connections: must be positive", "--max-connections=0");
    EXPECT_ERROR("--rate-window: must be positive", "--rate-window=0");
    EXPECT_ERROR("--http-timeout: must be between 1s", "--http-timeout=500ms");
    EXPECT_ERROR("--http-timeout: must be between 1s", "--http-timeout=0");
    EXPECT_ERROR("--log-level: expected debug, info, warn or error", "--log-level=loud");
    EXPECT_ERROR("--drop-labels", "--drop-labels=a-b");
    EXPECT_ERROR("--drop-labels", "--drop-labels=ok,9lives");
    EXPECT_ERROR("--listen-address", "--listen-address=");
    EXPECT_ERROR("--listen-address", "--listen-address=nonsense");
    EXPECT_ERROR("--listen-address", "--listen-address=127.0.0.1:99999");
    EXPECT_ERROR("--listen-address", "--listen-address=::1:80");
    EXPECT_ERROR("--listen-address", "--listen-address=[::1]");
}

static void test_durations(void)
{
    static const struct {
        const char *in;
        uint64_t ms;
    } ok[] = {
        {"0", 0},         {"0s", 0},        {"1ms", 1},        {"500ms", 500},
        {"1s", 1000},     {"1.5s", 1500},   {"90s", 90000},    {"2m", 120000},
        {"1m30s", 90000}, {"1h", 3600000},  {"1.5h", 5400000}, {"1h2m3s4ms", 3723004},
        {"1500us", 1},    {"2000000ns", 2}, {".5s", 500},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 12345;
        if (flags_parse_duration_ms(ok[i].in, &v) != 0) {
            fprintf(stderr, "duration %s rejected\n", ok[i].in);
            abort();
        }
        CHECK_EQ(v, ok[i].ms);
    }
    static const char *bad[] = {"",   "5", "s", "-1s", "1.s.", "1 s", "1sec", "1x", "99999999999999999999h",
                                "1h-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 7;
        if (flags_parse_duration_ms(bad[i], &v) != -EINVAL) {
            fprintf(stderr, "duration \"%s\" accepted\n", bad[i]);
            abort();
        }
        CHECK_EQ(v, 7); /* untouched on error */
    }
}

static void test_sizes(void)
{
    static const struct {
        const char *in;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"100", 100},
        {"100B", 100},
        {"1K", 1000},
        {"1Ki", 1024},
        {"1KiB", 1024},
        {"16Mi", 16u << 20},
        {"16MiB", 16u << 20},
        {"1M", 1000000},
        {"1G", 1000000000ull},
        {"2Gi", 2ull << 30},
        {"1.5Ki", 1536},
        {"1Ti", 1ull << 40},
        {"3T", 3000000000000ull},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 12345;
        if (flags_parse_size(ok[i].in, &v) != 0) {
            fprintf(stderr, "size %s rejected\n", ok[i].in);
            abort();
        }
        CHECK_EQ(v, ok[i].v);
    }
    static const char *bad[] = {"", "Mi", "1Q", "1 Mi", "-1", "1mi", "1MiBB", "20000000Ti", "1.5.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 7;
        if (flags_parse_size(bad[i], &v) != -EINVAL) {
            fprintf(stderr, "size \"%s\" accepted\n", bad[i]);
            abort();
        }
    }
}

static void test_usage(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    flags_usage(f, "metrics-adapter");
    fclose(f);
    static const char *names[] = {
        "--listen-address",
        "--ingest-token-file",
        "--max-body-bytes",
        "--max-decoded-bytes",
        "--max-labels-per-series",
        "--max-label-name-length",
        "--max-label-value-length",
        "--max-series-per-request",
        "--max-series ",
        "--max-series-per-metric",
        "--series-ttl",
        "--max-future",
        "--drop-labels",
        "--rate-window",
        "--reap-interval",
        "--http-threads",
        "--max-connections",
        "--http-timeout",
        "--log-level",
        "--help",
        "--version",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        CHECK_HAS(text, names[i]);
    CHECK_HAS(text, "(default \"127.0.0.1:8080\")");
    CHECK_HAS(text, "(default \"prometheus_replica,__replica__\")");
    free(text);

    text = NULL;
    f = open_memstream(&text, &len);
    flags_version(f);
    fclose(f);
    CHECK_HAS(text, "metrics-adapter ");
    free(text);
}

int main(void)
{
    test_defaults();
    test_syntax();
    test_errors();
    test_durations();
    test_sizes();
    test_usage();
    printf("test_flags: ok\n");
    return 0;
}
