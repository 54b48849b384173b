/* Faults a program can cause that Linux answers without ending it, one mode per argument:
 *   vsyscall  calls the legacy vsyscall page (0xffffffffff600000: gettimeofday, +0x400: time,
 *             +0x800: getcpu) as old static binaries do; Linux's vsyscall=emulate returns
 *             the syscall's result to the caller.
 *   maps      mappings bigger than the machine (4x sysinfo's totalram): a 64 TiB PROT_NONE
 *             reservation succeeds (with its munmap); a private anonymous writable mapping,
 *             a heap (brk), a mremap growth and an mprotect commit of a reservation that big
 *             fail with ENOMEM instead of a later fault (Linux's heuristic overcommit refuses
 *             them too), and a failed mremap leaves the mapping as it was.
 *   exhaust   writes 60% of free memory, forks, and the child writes its copy. Where fork
 *             shares pages copy on write (Linux, Apus under QEMU) the child's writes need
 *             pages no errno can refuse: in a VM too small, apus stops the VM and names
 *             --memory. Where fork copies (Apus on pvm) fork fails with ENOMEM.
 *   overflow  recurses until the stack overflows with a SIGSEGV handler on an alternate
 *             stack (SA_ONSTACK); the handler reports and exits 0.
 * One deterministic line per check, the same natively and in Apus. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

typedef long (*gettimeofday_entry)(struct timeval *, struct timezone *);
typedef long (*time_entry)(long *);
typedef long (*getcpu_entry)(unsigned *, unsigned *, void *);

static void vsyscalls(void) {
    struct timeval before, tv = {0, 0};
    gettimeofday(&before, NULL);
    long result = ((gettimeofday_entry)0xffffffffff600000UL)(&tv, NULL);
    check("vsyscall gettimeofday returns 0", result == 0);
    check("vsyscall gettimeofday gives the time", tv.tv_sec >= before.tv_sec && tv.tv_sec <= before.tv_sec + 5);

    long stored = 0;
    long now = ((time_entry)0xffffffffff600400UL)(&stored);
    check("vsyscall time returns the time", now >= before.tv_sec && now <= before.tv_sec + 5);
    check("vsyscall time stores it", stored == now);
    check("vsyscall time with NULL", ((time_entry)0xffffffffff600400UL)(NULL) >= before.tv_sec);

    unsigned cpu = 12345, node = 12345;
    result = ((getcpu_entry)0xffffffffff600800UL)(&cpu, &node, NULL);
    unsigned expectedCpu = 0, expectedNode = 0;
    syscall(SYS_getcpu, &expectedCpu, &expectedNode, NULL);
    check("vsyscall getcpu returns 0", result == 0);
    check("vsyscall getcpu gives a cpu", cpu != 12345 && node != 12345);
}

static void bigMaps(void) {
    struct sysinfo info;
    sysinfo(&info);
    size_t tooBig = (size_t)info.totalram * info.mem_unit * 4;
    void *reserved = mmap(NULL, 64UL << 40, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    check("64 TiB PROT_NONE reservation", reserved != MAP_FAILED);
    check("its munmap", reserved != MAP_FAILED && munmap(reserved, 64UL << 40) == 0);
    reserved = mmap(NULL, 1UL << 40, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("1 TiB PROT_NONE reservation without MAP_NORESERVE", reserved != MAP_FAILED);
    if (reserved != MAP_FAILED) munmap(reserved, 1UL << 40);

    errno = 0;
    void *big = mmap(NULL, tooBig, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("writable private mapping 4x memory: ENOMEM", big == MAP_FAILED && errno == ENOMEM);
    if (big != MAP_FAILED) munmap(big, tooBig);

    char *start = sbrk(0);
    errno = 0;
    check("brk 4x memory: fails", (char *)syscall(SYS_brk, start + tooBig) == start);

    char *small = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("a 1 MiB mapping", small != MAP_FAILED);
    if (small == MAP_FAILED) return;
    memset(small, 1, 1 << 20);
    errno = 0;
    void *grown = mremap(small, 1 << 20, tooBig, MREMAP_MAYMOVE);
    check("mremap to 4x memory: ENOMEM", grown == MAP_FAILED && errno == ENOMEM);
    check("the mapping is intact", small[0] == 1 && small[(1 << 20) - 1] == 1);
    munmap(small, 1 << 20);
    char *reservation = mmap(NULL, tooBig, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("a PROT_NONE reservation 4x memory", reservation != MAP_FAILED);
    errno = 0;
    check("committing all of it (mprotect): ENOMEM",
          reservation != MAP_FAILED && mprotect(reservation, tooBig, PROT_READ | PROT_WRITE) == -1 && errno == ENOMEM);
    check("committing 1 MiB of it", reservation != MAP_FAILED && mprotect(reservation, 1 << 20, PROT_READ | PROT_WRITE) == 0);
    if (reservation != MAP_FAILED) {
        memset(reservation, 2, 1 << 20);
        munmap(reservation, tooBig);
    }
    void *after = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("a 16 MiB mapping afterwards", after != MAP_FAILED);
}

static void exhaust(void) {
    struct sysinfo info;
    sysinfo(&info);
    size_t size = ((size_t)info.freeram * info.mem_unit / 10 * 6) & ~(size_t)4095;
    char *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("a mapping of 60% of free memory", memory != MAP_FAILED);
    if (memory == MAP_FAILED) return;
    memset(memory, 1, size);
    pid_t child = fork();
    if (child < 0) {
        printf("fork: %s\n", strerror(errno));
        return;
    }
    if (child == 0) {
        memset(memory, 2, size);
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    check("the child wrote its copy", WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void onOverflow(int signal) {
    static const char message[] = "caught the stack overflow on the alternate stack\n";
    (void)signal;
    write(1, message, sizeof message - 1);
    _exit(0);
}

static int recurse(int depth) {
    volatile char frame[1024];
    frame[0] = (char)depth;
    return recurse(depth + 1) + frame[0];
}

static void overflow(void) {
    stack_t stack = {.ss_sp = malloc(SIGSTKSZ * 4), .ss_size = SIGSTKSZ * 4};
    check("sigaltstack", sigaltstack(&stack, NULL) == 0);
    struct sigaction action = {.sa_handler = onOverflow, .sa_flags = SA_ONSTACK};
    sigaction(SIGSEGV, &action, NULL);
    fflush(stdout);
    recurse(0);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "vsyscall")) vsyscalls();
    else if (!strcmp(mode, "maps")) bigMaps();
    else if (!strcmp(mode, "exhaust")) exhaust();
    else if (!strcmp(mode, "overflow")) { overflow(); return 3; }
    else { fprintf(stderr, "usage: faults vsyscall|maps|exhaust|overflow\n"); return 2; }
    return finish();
}
