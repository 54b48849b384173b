/* segv: faults on purpose. argv[1] selects the fault:
 *   "write" (default) — crash_here() stores to address 0x10 → SIGSEGV, status 139; under
 *                       apus a crash report on stderr naming SIGSEGV, the fault address,
 *                       rip and the symbol crash_here;
 *   "stack-overflow"  — unbounded recursion must hit the stack guard → SIGSEGV (139), not
 *                       run into other memory or hang the kernel;
 *   "ill"             — ud2 → SIGILL (132);
 *   "div0"            — integer division by zero → SIGFPE (136).
 * It prints (and flushes) one line first so stdout can be compared with the native run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    } else {
        crash_here((volatile int *)(unsigned long)strtoul("0x10", NULL, 16));
    }
    printf("not reached\n");
    return 0;
}
