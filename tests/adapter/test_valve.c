/* Unit tests of adapter/valve.c: the state policy, flag parsing, cgroup limits, the sampler thread. */
#include "valve.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <maplib/maplib.h>

#include "store.h"
#include "check.h"

#define MiB (1ull << 20)

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void test_policy(void)
{
    const uint64_t limit = 1000 * MiB, soft = 900 * MiB; /* margin: 50 MiB */
    /* Off. */
    CHECK_EQ(valve_next_state(VALVE_HARD, 5000 * MiB, 0, 0), VALVE_OK);
    /* Entering. */
    CHECK_EQ(valve_next_state(VALVE_OK, 899 * MiB, limit, soft), VALVE_OK);
    CHECK_EQ(valve_next_state(VALVE_OK, 900 * MiB, limit, soft), VALVE_SOFT);
    CHECK_EQ(valve_next_state(VALVE_OK, 1000 * MiB, limit, soft), VALVE_HARD);
    CHECK_EQ(valve_next_state(VALVE_SOFT, 1000 * MiB, limit, soft), VALVE_HARD);
    /* Hard holds until 5 % of the limit below it. */
    CHECK_EQ(valve_next_state(VALVE_HARD, 999 * MiB, limit, soft), VALVE_HARD);
    CHECK_EQ(valve_next_state(VALVE_HARD, 950 * MiB, limit, soft), VALVE_HARD);
    CHECK_EQ(valve_next_state(VALVE_HARD, 949 * MiB, limit, soft), VALVE_SOFT);
    CHECK_EQ(valve_next_state(VALVE_HARD, 10 * MiB, limit, soft), VALVE_OK);
    /* Soft holds until 5 % of the limit below the soft level. */
    CHECK_EQ(valve_next_state(VALVE_SOFT, 899 * MiB, limit, soft), VALVE_SOFT);
    CHECK_EQ(valve_next_state(VALVE_SOFT, 850 * MiB, limit, soft), VALVE_SOFT);
    CHECK_EQ(valve_next_state(VALVE_SOFT, 849 * MiB, limit, soft), VALVE_OK);
    /* A soft level equal to the limit: straight to hard. */
    CHECK_EQ(valve_next_state(VALVE_OK, 1000 * MiB, limit, limit), VALVE_HARD);
    CHECK_EQ(valve_next_state(VALVE_OK, 999 * MiB, limit, limit), VALVE_OK);
}

static void test_parse(void)
{
    struct valve_config c;
    char err[256];
    CHECK_EQ(valve_parse("800Mi", "0.9", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.limit_bytes, 800 * MiB);
    CHECK(c.soft_fraction == 0.9);
    CHECK_EQ(valve_parse("0", "1", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.limit_bytes, 0);
    CHECK(c.soft_fraction == 1.0);
    CHECK_EQ(valve_parse("2G", "", &c, err, sizeof(err)), 0);
    CHECK_EQ(c.limit_bytes, 2000000000ull);
    CHECK(c.soft_fraction == 0.9);
    CHECK_EQ(valve_parse("lots", "0.9", &c, err, sizeof(err)), -EINVAL);
    CHECK_HAS(err, "--memory-limit");
    CHECK_EQ(valve_parse("1Gi", "0", &c, err, sizeof(err)), -EINVAL);
    CHECK_HAS(err, "--memory-soft-fraction");
    CHECK_EQ(valve_parse("1Gi", "1.5", &c, err, sizeof(err)), -EINVAL);
    CHECK_EQ(valve_parse("1Gi", "0.5x", &c, err, sizeof(err)), -EINVAL);
    /* auto: whatever this machine's cgroup says, 80 % of it or off. */
    CHECK_EQ(valve_parse("auto", "0.9", &c, err, sizeof(err)), 0);
    uint64_t cg = valve_cgroup_limit("/sys/fs/cgroup");
    CHECK_EQ(c.limit_bytes, (uint64_t)((double)cg * 0.8));
}

static void test_cgroup(void)
{
    char root[] = "/tmp/valve-cg-XXXXXX", path[256];
    CHECK(mkdtemp(root) != NULL);
    /* Nothing there: no limit. */
    CHECK_EQ(valve_cgroup_limit(root), 0);
    /* v1 layout. */
    snprintf(path, sizeof(path), "%s/memory", root);
    CHECK_EQ(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/memory/memory.limit_in_bytes", root);
    write_file(path, "9223372036854771712\n"); /* v1's "unlimited" */
    CHECK_EQ(valve_cgroup_limit(root), 0);
    write_file(path, "536870912\n");
    CHECK_EQ(valve_cgroup_limit(root), 512 * MiB);
    /* v2 at the mount point (a container's namespaced view) wins over v1. */
    char v2[256];
    snprintf(v2, sizeof(v2), "%s/memory.max", root);
    write_file(v2, "max\n");
    CHECK_EQ(valve_cgroup_limit(root), 512 * MiB);
    write_file(v2, "1073741824\n");
    CHECK_EQ(valve_cgroup_limit(root), 1024 * MiB);
    unlink(v2);
    unlink(path);
    snprintf(path, sizeof(path), "%s/memory", root);
    rmdir(path);
    rmdir(root);
}

/* The thread: a 1-byte limit is over at once; stop releases the store. */
static void test_thread(void)
{
    struct store_config scfg = {0};
    struct store *st;
    CHECK_EQ(store_new(&scfg, &st), 0);
    CHECK(valve_rss_bytes() > 0);
    struct valve_config vc = {.limit_bytes = 1, .soft_fraction = 0.5, .interval_ms = 10};
    CHECK_EQ(valve_start(&vc, st), 0);
    CHECK_EQ(valve_start(&vc, st), -EBUSY);
    for (int i = 0; i < 500 && valve_state() != VALVE_HARD; i++)
        usleep(10000);
    CHECK_EQ(valve_state(), VALVE_HARD);
    CHECK(valve_refuses_writes());
    valve_stop();
    CHECK_EQ(valve_state(), VALVE_OK);
    /* Off: never engages. */
    vc.limit_bytes = 0;
    CHECK_EQ(valve_start(&vc, st), 0);
    usleep(50000);
    CHECK_EQ(valve_state(), VALVE_OK);
    valve_stop();
    store_free(st);
}

int main(void)
{
    rcu_register_thread();
    test_policy();
    test_parse();
    test_cgroup();
    test_thread();
    ml_shutdown();
    rcu_unregister_thread();
    printf("test_valve: ok\n");
    return 0;
}
