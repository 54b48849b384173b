/* segv: faults on purpose. argv[1] selects the fault:
 *   "write" (default) — crash_here() stores to address 0x10 → SIGSEGV, status 139; under
 *                       apus a crash report on stderr naming SIGSEGV, the fault address,
 *                       rip and the symbol crash_here;
 *   "stack-overflow"  — unbounded recursion must hit the stack guard → SIGSEGV (139), not
 *                       run into other memory or hang the kernel;
 *   "ill"             — ud2 → SIGILL (132);
 *   "div0"            — integer division by zero → SIGFPE (136);
 *   "nullcall"        — a call through a NULL function pointer → SIGSEGV (139), a crash
 *                       report with rip 0 and fault address 0 (in a PIE the code lies far
 *                       above rip, which the report must survive);
 *   "jump ADDR"       — a call to the hexadecimal address ADDR (the tests use addresses in
 *                       the apus kernel's part of the address space: unmapped, the direct
 *                       map, the kernel's old fixed text) → SIGSEGV (139), never a kernel
 *                       panic;
 *   "jump-handler ADDR" — the same with a SIGSEGV handler installed: it prints the fault
 *                       address (si_addr) and the program goes on and exits 0.
 * It prints (and flushes) one line first so stdout can be compared with the native run. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sigjmp_buf recover;
static void *fault_address;

static void on_segv(int sig, siginfo_t *info, void *context) {
    (void)sig, (void)context;
    fault_address = info->si_addr;
    siglongjmp(recover, 1);
}

/* A call, so the fault happens at the target with a return address pushed, as a wild
 * function pointer would. */
static void call_address(const char *text) {
    void (*volatile target)(void) = (void (*)(void))(unsigned long)strtoul(text ? text : "0", NULL, 16);
    target();
}

__attribute__((noinline, noclone)) void crash_here(volatile int *p) {
    *p = 42;
}

#pragma GCC diagnostic ignored "-Winfinite-recursion"
__attribute__((noinline, noclone)) long recurse(long depth) {
    volatile char frame[4096];
    frame[0] = (char)depth;
    frame[4095] = (char)depth;
    return recurse(depth + 1) + frame[0] + frame[4095];
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "write";
    printf("segv mode %s\n", mode);
    fflush(stdout);
    if (strcmp(mode, "stack-overflow") == 0) {
        printf("%ld\n", recurse(0));
    } else if (strcmp(mode, "ill") == 0) {
        __builtin_trap();
    } else if (strcmp(mode, "div0") == 0) {
        volatile int zero = 0, x = 1;
        printf("%d\n", x / zero);
    } else if (strcmp(mode, "nullcall") == 0) {
        call_address("0");
    } else if (strcmp(mode, "jump") == 0) {
        call_address(argc > 2 ? argv[2] : NULL);
    } else if (strcmp(mode, "jump-handler") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, NULL);
        if (sigsetjmp(recover, 1) == 0) {
            call_address(argc > 2 ? argv[2] : NULL);
            printf("not reached\n");
            return 1;
        }
        printf("caught SIGSEGV at %p\n", fault_address);
        return 0;
    } else {
        crash_here((volatile int *)(unsigned long)strtoul("0x10", NULL, 16));
    }
    printf("not reached\n");
    return 0;
}
