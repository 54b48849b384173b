/* wnox: W^X, NX and address randomization, seen from a program (after Solo5's test_wnox).
 * There is no fork, so each probe runs under a SIGSEGV/SIGBUS handler that siglongjmps back
 * and records that the access faulted. argv[1] selects what to do:
 *   (none) / "wx"  — execute from the stack, the heap (malloc) and a PROT_READ|PROT_WRITE
 *                    mmap, and write to the program's own code: each must fault. Prints one
 *                    line per probe; exits 0 when all faulted, 1 otherwise.
 *   "addresses"    — prints the addresses of a stack variable, a heap block, an anonymous
 *                    mmap and main (the load base of a PIE moves it), for comparing runs.
 *   "probe ADDR…"  — reads each hexadecimal ADDR; prints "ADDR: fault" or "ADDR: readable".
 *                    Exits 0 when every read faulted. The tests pass the apus kernel's old
 *                    fixed addresses, which no boot maps any more.
 *   "gdt-exec"     — (x86-64) finds the GDT with sgdt (on apus it lies in the kernel's direct
 *                    map) and calls into that data page: must fault, because the direct map
 *                    is never executable. Exits 0 if it faulted. Where the CPU refuses sgdt
 *                    in user mode (UMIP), prints "sgdt: refused" and exits 0. Not compared
 *                    with Linux, whose UMIP emulation of sgdt returns a dummy address. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static sigjmp_buf recover;
static volatile sig_atomic_t faulted;

static void on_fault(int sig) {
    (void)sig;
    faulted = 1;
    siglongjmp(recover, 1);
}

static void install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* x86-64 `ret`: if the page were executable the call would simply return. */
static const unsigned char ret_instruction[] = {0xc3};

/* Calls code at p; 1 if that faulted. */
static int call_faults(void *p) {
    faulted = 0;
    if (sigsetjmp(recover, 1) == 0) {
        void (*volatile f)(void) = (void (*)(void))p;
        f();
    }
    return faulted;
}

static int write_faults(volatile unsigned char *p) {
    faulted = 0;
    if (sigsetjmp(recover, 1) == 0) *p = *p;
    return faulted;
}

static int read_faults(volatile unsigned char *p) {
    faulted = 0;
    if (sigsetjmp(recover, 1) == 0) {
        volatile unsigned char v = *p;
        (void)v;
    }
    return faulted;
}

static int report(const char *what, int fault) {
    printf("%s: %s\n", what, fault ? "SIGSEGV" : "NO FAULT");
    return fault;
}

static int wx(void) {
    int ok = 1;
    unsigned char stack_code[16];
    memcpy(stack_code, ret_instruction, sizeof ret_instruction);
    ok &= report("execute from the stack", call_faults(stack_code));

    unsigned char *heap = malloc(64);
    memcpy(heap, ret_instruction, sizeof ret_instruction);
    ok &= report("execute from the heap", call_faults(heap));

    unsigned char *rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rw == MAP_FAILED) {
        printf("mmap failed\n");
        return 1;
    }
    memcpy(rw, ret_instruction, sizeof ret_instruction);
    ok &= report("execute from a read-write mmap", call_faults(rw));

    ok &= report("write to the program's code", write_faults((volatile unsigned char *)(uintptr_t)&wx));
    free(heap);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "wx";
    install();
    if (strcmp(mode, "addresses") == 0) {
        int on_stack = 0;
        void *heap = malloc(64);
        void *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("stack %p\nheap %p\nmmap %p\ncode %p\n", (void *)&on_stack, heap, map, (void *)(uintptr_t)&main);
        return 0;
    }
    if (strcmp(mode, "probe") == 0) {
        int all = 1;
        for (int i = 2; i < argc; i++) {
            unsigned long address = strtoul(argv[i], NULL, 16);
            int fault = read_faults((volatile unsigned char *)address);
            printf("%s: %s\n", argv[i], fault ? "fault" : "readable");
            all &= fault;
        }
        return all ? 0 : 1;
    }
    if (strcmp(mode, "gdt-exec") == 0) {
#if defined(__x86_64__)
        static volatile struct __attribute__((packed)) { uint16_t limit; uint64_t base; } gdtr;
        faulted = 0;
        if (sigsetjmp(recover, 1) == 0) __asm__ volatile("sgdt %0" : "=m"(gdtr));
        if (faulted) {
            printf("sgdt: refused\n");
            return 0;
        }
        return report("execute the GDT's page", call_faults((void *)(uintptr_t)gdtr.base)) ? 0 : 1;
#else
        return 0;
#endif
    }
    return wx();
}
