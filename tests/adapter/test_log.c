/* Unit tests of adapter/log.c: format, quoting, levels, rate limiting, threads. */
#include "log.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"

static int out_fd;

/* Everything written since the last call, NUL-terminated (static buffer). */
static const char *take(void)
{
    static char text[16 << 20];
    off_t end = lseek(out_fd, 0, SEEK_CUR);
    CHECK(end >= 0 && (size_t)end < sizeof(text));
    CHECK_EQ(pread(out_fd, text, (size_t)end, 0), end);
    text[end] = '\0';
    CHECK_EQ(ftruncate(out_fd, 0), 0);
    CHECK_EQ(lseek(out_fd, 0, SEEK_SET), 0);
    return text;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_format(void)
{
    log_info("listening", "listener=%s addr=%s", "ingest", "127.0.0.1:8080");
    const char *t = take();
    CHECK_EQ(count_lines(t), 1);
    CHECK(strncmp(t, "ts=", 3) == 0);
    /* ts=2026-11-25T21:00:00.123Z: fixed width, UTC. */
    CHECK(t[13] == 'T' && t[26] == 'Z' && t[22] == '.');
    CHECK_HAS(t, "Z level=info msg=\"listening\" listener=ingest addr=127.0.0.1:8080\n");

    const char *volatile nul = NULL; /* hidden from the compiler's format check */
    log_warn("quoting", "a=%s b=%s c=%s d=%s e=%s", "two words", "", "say \"hi\"\\", "x=y", nul);
    t = take();
    CHECK_HAS(
        t, "level=warn msg=\"quoting\" a=\"two words\" b=\"\" c=\"say \\\"hi\\\"\\\\\" d=\"x=y\" e=\"\"\n");

    log_error("numbers", "i=%d u=%u l=%ld ll=%lld z=%zu x=%x f=%.2f g=%g pct=100%%", -3, 7u, -9L, 1LL << 40,
              (size_t)12, 255u, 1.5, 0.25);
    t = take();
    CHECK_HAS(t, "i=-3 u=7 l=-9 ll=1099511627776 z=12 x=ff f=1.50 g=0.25 pct=100%\n");

    log_info("control", "v=%s", "line1\nline2\ttab\x01");
    t = take();
    CHECK_HAS(t, "v=\"line1\\nline2\\ttab\\x01\"\n");

    log_info("no fields", NULL);
    t = take();
    CHECK_HAS(t, "msg=\"no fields\"\n");

    /* msg is always quoted and escaped. */
    log_info("a \"quoted\" msg", NULL);
    CHECK_HAS(take(), "msg=\"a \\\"quoted\\\" msg\"\n");
}

static void test_quote(void)
{
    char b[16];
    CHECK_EQ(log_quote(b, sizeof(b), "plain"), 5);
    CHECK_STR(b, "plain");
    log_quote(b, sizeof(b), "");
    CHECK_STR(b, "\"\"");
    /* Truncation keeps the buffer terminated. */
    log_quote(b, sizeof(b), "a very long value with spaces");
    CHECK_EQ(strlen(b), sizeof(b) - 1);
}

static void test_levels(void)
{
    enum log_level l;
    CHECK_EQ(log_parse_level("debug", &l), 0);
    CHECK_EQ(l, LOG_DEBUG);
    CHECK_EQ(log_parse_level("warning", &l), 0);
    CHECK_EQ(l, LOG_WARN);
    CHECK_EQ(log_parse_level("error", &l), 0);
    CHECK_EQ(l, LOG_ERROR);
    CHECK(log_parse_level("verbose", &l) < 0);
    CHECK(log_parse_level("", &l) < 0);

    log_set_level(LOG_WARN);
    log_debug("hidden debug", "k=%d", 1);
    log_info("hidden info", "k=%d", 1);
    log_warn("shown warn", "k=%d", 1);
    log_error("shown error", "k=%d", 1);
    const char *t = take();
    CHECK_EQ(count_lines(t), 2);
    CHECK(!strstr(t, "hidden"));
    CHECK(log_enabled(LOG_ERROR) && !log_enabled(LOG_INFO));
    log_set_level(LOG_DEBUG);
    log_debug("shown debug", "k=%d", 2);
    CHECK_HAS(take(), "level=debug msg=\"shown debug\" k=2");
    log_set_level(LOG_INFO);
}

static void test_ratelimit(void)
{
    log_set_ratelimit(3, 200);
    double start = t_now();
    for (int i = 0; i < 10; i++)
        log_warn("repeated", "i=%d", i);
    log_warn("other message", "i=%d", 0);
    const char *t = take();
    CHECK_EQ(count_lines(t), 4);
    CHECK_HAS(t, "i=2\n");
    CHECK(!strstr(t, "i=3\n"));
    CHECK_HAS(t, "msg=\"other message\"");
    /* The same msg at another level is another key. */
    log_error("repeated", "i=%d", 99);
    CHECK_HAS(take(), "level=error msg=\"repeated\" i=99");

    /* Once the window is over, the next event reports what was dropped. */
    while (t_now() - start < 0.25)
        usleep(10000);
    log_warn("repeated", "i=%d", 10);
    t = take();
    CHECK_EQ(count_lines(t), 2);
    CHECK_HAS(t, "level=warn msg=\"log messages suppressed\" key=repeated suppressed=7\n");
    CHECK_HAS(t, "msg=\"repeated\" i=10\n");
    CHECK(strstr(t, "suppressed=7") < strstr(t, "i=10"));

    /* Debug lines are not limited (the level is opt-in verbosity). */
    log_set_level(LOG_DEBUG);
    for (int i = 0; i < 10; i++)
        log_debug("repeated", "i=%d", i);
    CHECK_EQ(count_lines(take()), 10);
    log_set_level(LOG_INFO);

    /* log_flush() reports the pending count at exit. */
    for (int i = 0; i < 5; i++)
        log_warn("repeated", "i=%d", i);
    t = take();
    CHECK_EQ(count_lines(t), 2);
    log_flush();
    CHECK_HAS(take(), "key=repeated suppressed=3\n");
    log_flush();
    CHECK_STR(take(), "");

    log_set_ratelimit(0, 0);
    for (int i = 0; i < 50; i++)
        log_info("unlimited", "i=%d", i);
    CHECK_EQ(count_lines(take()), 50);
}

#define THREADS    4
#define PER_THREAD 2000

static void *writer(void *arg)
{
    long id = (long)arg;
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < PER_THREAD; i++)
        log_info("thread event", "thread=%ld i=%d pad=%s end=1", id, i, big);
    return NULL;
}

static void test_threads(void)
{
    log_set_ratelimit(0, 0);
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, writer, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    const char *t = take();
    CHECK_EQ(count_lines(t), THREADS * PER_THREAD);
    /* Lines never interleave: every line is whole. */
    int whole = 0;
    for (const char *p = t; *p;) {
        const char *nl = strchr(p, '\n');
        CHECK(nl);
        CHECK(strncmp(p, "ts=", 3) == 0);
        CHECK(nl - p > 6 && strncmp(nl - 6, " end=1", 6) == 0);
        whole++;
        p = nl + 1;
    }
    CHECK_EQ(whole, THREADS * PER_THREAD);
}

int main(void)
{
    out_fd = memfd_create("log", 0);
    CHECK(out_fd >= 0);
    log_set_fd(out_fd);
    test_format();
    test_quote();
    test_levels();
    test_ratelimit();
    test_threads();
    log_set_fd(2);
    close(out_fd);
    printf("test_log: ok\n");
    return 0;
}
