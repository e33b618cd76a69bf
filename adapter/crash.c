#include "crash.h"

#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MA_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MA_SANITIZED 1
#endif
#endif

#ifndef MA_SANITIZED
static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

static void put(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

/* Only async-signal-safe calls: write(2) and backtrace_symbols_fd(), whose
 * first-use allocation (it loads libgcc_s) crash_install() has done already. */
static void on_fatal(int sig)
{
    void *frames[64];
    put("level=error msg=\"fatal signal\" signal=");
    put(sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    put(" backtrace follows\n");
    int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    /* SA_RESETHAND restored the default action: re-raise for the core and the status. */
    raise(sig);
}
#endif

void crash_install(void)
{
#ifndef MA_SANITIZED
    void *warm[1];
    backtrace(warm, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
        sigaction(fatal[i], &sa, NULL);
#endif
}
