/* sighandler: signals delivered to handlers. raise/kill/tgkill run a handler with the right
 * siginfo, the signal is blocked inside its own handler (not with SA_NODEFER), the mask comes
 * back after rt_sigreturn, SA_RESETHAND resets the disposition, SA_ONSTACK runs on the
 * alternate stack, a blocked signal stays pending until unblocked, and registers and floating
 * point values survive delivery. */
#define _GNU_SOURCE
#include "common.h"
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t hits, last_signo, last_code, blocked_inside, nested;
static volatile uintptr_t handler_stack;
static char altstack[64 * 1024];

static void on_usr1(int sig, siginfo_t *info, void *uc) {
    (void)uc;
    hits++;
    last_signo = info->si_signo;
    last_code = info->si_code;
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    blocked_inside = sigismember(&now, sig);
    handler_stack = (uintptr_t)__builtin_frame_address(0);
}

static void on_usr2(int sig) {
    (void)sig;
    nested++;
    if (nested == 1) raise(SIGUSR2);  /* with SA_NODEFER this recurses once */
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);

    raise(SIGUSR1);
    check("raise runs the handler once", hits == 1);
    check("siginfo carries the signal number", last_signo == SIGUSR1);
    check("si_code says sent by tkill/tgkill (SI_TKILL)", last_code == SI_TKILL);
    check("the signal is blocked inside its handler", blocked_inside == 1);
    sigset_t after;
    sigprocmask(SIG_BLOCK, NULL, &after);
    check("the mask is restored after the handler", !sigismember(&after, SIGUSR1));

    kill(getpid(), SIGUSR1);
    check("kill(getpid()) runs the handler", hits == 2);
    check("si_code for kill is SI_USER", last_code == SI_USER);
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1);
    check("tgkill runs the handler", hits == 3);

    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);
    raise(SIGUSR1);
    check("a blocked signal waits", hits == 3);
    sigset_t pending;
    sigpending(&pending);
    check("sigpending reports it", sigismember(&pending, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    check("unblocking delivers it", hits == 4);

    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    check("SA_ONSTACK runs the handler on the alternate stack",
          handler_stack >= (uintptr_t)altstack && handler_stack < (uintptr_t)altstack + sizeof altstack);

    struct sigaction nd;
    memset(&nd, 0, sizeof nd);
    nd.sa_handler = on_usr2;
    nd.sa_flags = SA_NODEFER;
    sigaction(SIGUSR2, &nd, NULL);
    raise(SIGUSR2);
    check("SA_NODEFER lets the handler be re-entered", nested == 2);
    nested = 5;  /* no more nesting */
    nd.sa_flags = SA_RESETHAND;
    sigaction(SIGUSR2, &nd, NULL);
    raise(SIGUSR2);
    check("SA_RESETHAND: the handler ran", nested == 6);
    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    check("SA_RESETHAND restores the default", now.sa_handler == SIG_DFL);

    volatile double x = 1.5;
    long before = 12345;
    raise(SIGUSR1);
    check("values survive a delivery", x * 2 == 3.0 && before == 12345);

    sa.sa_flags = 0;
    sa.sa_handler = SIG_IGN;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    check("SIG_IGN drops the signal", hits == 6);
    return finish();
}
