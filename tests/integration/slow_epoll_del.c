/*
 * LD_PRELOAD shim for test_shutdown_race.py: every epoll_ctl(EPOLL_CTL_DEL)
 * waits SLOW_EPOLL_DEL_US microseconds (default 500) first. That widens the
 * window in which libmicrohttpd 0.9.75, in epoll mode, races MHD_quiesce_daemon()
 * against an awake pool thread to remove the listening socket, and aborts
 * (MHD_PANIC) on the loser's ENOENT or EBADF: from a sub-microsecond window
 * to one that most shutdowns under connection churn hit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    static int (*real)(int, int, int, struct epoll_event *);
    static long us = -1;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "epoll_ctl");
    if (us < 0) {
        const char *e = getenv("SLOW_EPOLL_DEL_US");
        us = e ? atol(e) : 500;
    }
    if (op == EPOLL_CTL_DEL && us > 0)
        usleep((useconds_t)us);
    return real(epfd, op, fd, ev);
}
