/* faulthandler: faults delivered to the program's own handlers, as runtimes use them (Go
 * turns a nil dereference into a panic this way). SIGSEGV on a NULL read and on a write to a
 * read-only page (si_code MAPERR/ACCERR, si_addr), SIGFPE on integer division by zero and
 * SIGILL on ud2, each recovered with siglongjmp; the handler runs on the alternate stack when
 * asked, and execution goes on normally afterwards. */
#define _GNU_SOURCE
#include "common.h"
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf recover;
static volatile int got_signo, got_code;
static volatile uintptr_t got_addr, handler_frame;
static char altstack[64 * 1024];

static void handler(int sig, siginfo_t *info, void *uc) {
    (void)uc;
    got_signo = sig;
    got_code = info->si_code;
    got_addr = (uintptr_t)info->si_addr;
    handler_frame = (uintptr_t)__builtin_frame_address(0);
    siglongjmp(recover, 1);
}

static void install(int sig, int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | flags;
    sigaction(sig, &sa, NULL);
}

int main(void) {
    install(SIGSEGV, 0);
    if (sigsetjmp(recover, 1) == 0) {
        volatile int *p = (int *)(uintptr_t)strtoul("0x18", NULL, 16);  /* opaque to the compiler */
        printf("%d\n", *p);
    }
    check("NULL read: SIGSEGV to the handler", got_signo == SIGSEGV);
    check("si_code SEGV_MAPERR", got_code == SEGV_MAPERR);
    check("si_addr is the faulting address", got_addr == 0x18);

    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    got_signo = 0;
    if (sigsetjmp(recover, 1) == 0) {
        ro[100] = 1;
    }
    check("write to a read-only page: SIGSEGV", got_signo == SIGSEGV);
    check("si_code SEGV_ACCERR", got_code == SEGV_ACCERR);
    check("si_addr inside the page", got_addr == (uintptr_t)ro + 100);

    install(SIGFPE, 0);
    got_signo = 0;
    if (sigsetjmp(recover, 1) == 0) {
        volatile int zero = 0, one = 1;
        printf("%d\n", one / zero);
    }
    check("integer division by zero: SIGFPE", got_signo == SIGFPE);
    check("si_code FPE_INTDIV", got_code == FPE_INTDIV);

    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
    install(SIGILL, SA_ONSTACK);
    got_signo = 0;
    if (sigsetjmp(recover, 1) == 0) {
        __builtin_trap();
    }
    check("ud2: SIGILL", got_signo == SIGILL);
    check("SA_ONSTACK: the fault handler ran on the alternate stack",
          handler_frame >= (uintptr_t)altstack && handler_frame < (uintptr_t)altstack + sizeof altstack);

    /* And after all that, the program goes on normally. */
    volatile double x = 0.5;
    check("normal execution afterwards", x + x == 1.0);
    return finish();
}
