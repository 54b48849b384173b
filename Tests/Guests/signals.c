/* signals: what a first kernel can record without delivering. rt_sigaction stores and
 * returns handlers, flags and masks (SIG_IGN for SIGPIPE, a handler for SIGUSR1); changing
 * SIGKILL's action fails with EINVAL; rt_sigprocmask blocks, reports and unblocks; SIGKILL
 * cannot be blocked (silently dropped from the mask). No signal is ever raised here. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include "common.h"

static void handler(int sig) { (void)sig; }

int main(void) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    check("sigaction(SIGPIPE, SIG_IGN)", sigaction(SIGPIPE, &sa, NULL) == 0);
    memset(&old, 0, sizeof old);
    check("sigaction(SIGPIPE) query", sigaction(SIGPIPE, NULL, &old) == 0);
    check("SIGPIPE reads back as SIG_IGN", old.sa_handler == SIG_IGN);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    check("sigaction(SIGUSR1, handler)", sigaction(SIGUSR1, &sa, NULL) == 0);
    memset(&old, 0, sizeof old);
    check("sigaction(SIGUSR1) query", sigaction(SIGUSR1, NULL, &old) == 0);
    check("SIGUSR1 handler reads back", old.sa_handler == handler);
    check("SIGUSR1 SA_RESTART reads back", (old.sa_flags & SA_RESTART) != 0);
    check("SIGUSR1 sa_mask reads back", sigismember(&old.sa_mask, SIGUSR2) == 1);
    memset(&old, 0, sizeof old);
    check("SIGUSR2 defaults to SIG_DFL", sigaction(SIGUSR2, NULL, &old) == 0 && old.sa_handler == SIG_DFL);

    errno = 0;
    sa.sa_handler = SIG_IGN;
    check("sigaction(SIGKILL) fails with EINVAL", sigaction(SIGKILL, &sa, NULL) == -1 && errno == EINVAL);

    sigset_t set, cur;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGKILL);
    check("sigprocmask(SIG_BLOCK)", sigprocmask(SIG_BLOCK, &set, NULL) == 0);
    sigemptyset(&cur);
    check("sigprocmask query", sigprocmask(SIG_BLOCK, NULL, &cur) == 0);
    check("SIGUSR1 blocked", sigismember(&cur, SIGUSR1) == 1);
    check("SIGKILL not blockable", sigismember(&cur, SIGKILL) == 0);
    check("sigprocmask(SIG_UNBLOCK)", sigprocmask(SIG_UNBLOCK, &set, NULL) == 0);
    sigprocmask(SIG_BLOCK, NULL, &cur);
    check("SIGUSR1 unblocked", sigismember(&cur, SIGUSR1) == 0);
    sigprocmask(SIG_SETMASK, &set, NULL);
    sigprocmask(SIG_BLOCK, NULL, &cur);
    check("SIG_SETMASK", sigismember(&cur, SIGUSR1) == 1);
    return finish();
}
