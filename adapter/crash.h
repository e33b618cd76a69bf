/*
 * Crash report: on a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT)
 * write one line naming the signal and a raw backtrace to stderr, then let the
 * default action run (core dump, exit status of the signal). The report is
 * what an operator gets from `kubectl logs --previous` when there is no core.
 */
#ifndef MA_CRASH_H
#define MA_CRASH_H

/*
 * Install the handlers. Call once from main before any thread starts. A no-op
 * in sanitizer builds: ASan, UBSan and TSan print better reports themselves.
 */
void crash_install(void);

#endif
