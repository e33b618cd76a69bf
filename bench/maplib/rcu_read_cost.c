/*
 * The cost of an RCU read-side critical section, per liburcu flavour: the
 * measurement behind the flavour choice written down in maplib.h.
 *
 *   rcu_read_cost_memb  rcu_read_cost_memb_inline  rcu_read_cost_bp  rcu_read_cost_bp_inline
 *
 * Each prints the best of 5 runs of 10 million rcu_read_lock() +
 * rcu_read_unlock() pairs, in ns per pair. The _inline builds define
 * _LGPL_SOURCE (liburcu's read side inlined into the caller).
 */
#include <stdio.h>
#include <time.h>

#ifdef RCU_COST_BP
#include <urcu-bp.h>
#define FLAVOUR "bp"
#else
#include <urcu.h>
#define FLAVOUR "memb"
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void)
{
    double best = 1e9;

#ifndef RCU_COST_BP
    rcu_register_thread();
#endif
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        for (int i = 0; i < 10000000; i++) {
            rcu_read_lock();
            rcu_read_unlock();
        }
        double ns = (now() - t0) / 1e7 * 1e9;
        if (ns < best)
            best = ns;
    }
#ifdef _LGPL_SOURCE
    printf("%s inlined: %.1f ns per rcu_read_lock+unlock\n", FLAVOUR, best);
#else
    printf("%s: %.1f ns per rcu_read_lock+unlock\n", FLAVOUR, best);
#endif
#ifndef RCU_COST_BP
    rcu_unregister_thread();
#endif
    return 0;
}
