/*
 * Idle registered threads must not stall reclamation.
 *
 * Several threads join with ml_thread_online(), do a lookup (so they have
 * really been through a read-side critical section), then block on a condition
 * variable, the way an idle libmicrohttpd pool thread blocks in poll().
 * Meanwhile the main thread inserts and deletes entries in rounds; after every
 * round the reclaimed count must catch up with the deleted count within a
 * deadline. With urcu-memb a registered thread outside a read-side section
 * holds back no grace period; under urcu-qsbr this test would hang until the
 * deadline and fail.
 *
 * The control at the end shows the test can fail: a thread that blocks INSIDE
 * a read-side critical section does hold reclamation back, and pending only
 * drains once it leaves.
 */

#include <pthread.h>
#include <stdatomic.h>

#include "ml_test.h"

T_DEFINE_COUNTERS;

enum { IDLE_THREADS = 8, ROUNDS = 20, PER_ROUND = 5000 };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready, release_idle, release_holder, holder_in;
static struct ml_map *map;

static void *idle_thread(void *arg)
{
    (void)arg;
    ml_thread_online();
    rcu_read_lock();
    (void)ml_lookup(map, "nothing", 7);
    rcu_read_unlock();
    pthread_mutex_lock(&mu);
    ready++;
    pthread_cond_broadcast(&cv);
    while (!release_idle)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* The control: blocks while holding a read-side critical section. */
static void *holder_thread(void *arg)
{
    (void)arg;
    ml_thread_online();
    rcu_read_lock();
    pthread_mutex_lock(&mu);
    holder_in = 1;
    pthread_cond_broadcast(&cv);
    while (!release_holder)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    rcu_read_unlock();
    return NULL;
}

static void churn_round(unsigned round)
{
    static struct t_ent *ents[PER_ROUND];
    char key[24];

    rcu_read_lock();
    for (unsigned i = 0; i < PER_ROUND; i++) {
        snprintf(key, sizeof(key), "r%u-%u", round, i);
        ents[i] = t_ent_new(key, i);
        CHECK_EQ(ml_insert(map, &ents[i]->node, NULL), 0);
    }
    for (unsigned i = 0; i < PER_ROUND; i++)
        CHECK_EQ(ml_delete(map, &ents[i]->node), 0);
    rcu_read_unlock();
}

static uint64_t pending(void)
{
    struct ml_stats st;
    ml_map_stats(map, &st);
    return st.pending;
}

int main(void)
{
    struct ml_map_config cfg = {.name = "idle", .min_buckets = 1, .reclaim = t_reclaim};
    pthread_t th[IDLE_THREADS], holder;
    struct ml_stats st;
    double worst = 0;

    ml_thread_online();
    CHECK_EQ(ml_map_new(&cfg, &map), 0);
    for (int i = 0; i < IDLE_THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, idle_thread, NULL), 0);
    pthread_mutex_lock(&mu);
    while (ready < IDLE_THREADS)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    for (unsigned r = 0; r < ROUNDS; r++) {
        double t0 = t_now();
        churn_round(r);
        /* No rcu_barrier() here: reclamation must progress on its own. */
        CHECK(WAIT_UNTIL(pending() == 0, 5.0));
        if (t_now() - t0 > worst)
            worst = t_now() - t0;
    }
    ml_map_stats(map, &st);
    CHECK_EQ(st.deletes, ROUNDS * PER_ROUND);
    CHECK_EQ(st.reclaimed, st.deletes);
    printf("idle: %d idle registered threads, %d deletes reclaimed, worst round %.3f s\n", IDLE_THREADS,
           ROUNDS * PER_ROUND, worst);

    /* Control: a thread blocked inside a read-side section stalls reclamation. */
    CHECK_EQ(pthread_create(&holder, NULL, holder_thread, NULL), 0);
    pthread_mutex_lock(&mu);
    while (!holder_in)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    churn_round(ROUNDS);
    CHECK(!WAIT_UNTIL(pending() == 0, 0.3)); /* held back, as expected */
    pthread_mutex_lock(&mu);
    release_holder = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    CHECK(WAIT_UNTIL(pending() == 0, 5.0));
    CHECK_EQ(pthread_join(holder, NULL), 0);
    printf("idle: control ok (a reader blocked inside a read-side section held back reclaim)\n");

    pthread_mutex_lock(&mu);
    release_idle = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < IDLE_THREADS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    CHECK_EQ(ml_map_destroy(map), 0);
    ml_shutdown();
    CHECK_EQ(t_allocs, t_frees);
    return 0;
}
