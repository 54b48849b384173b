/* sysfuzz: a syscall fuzzer that runs as the guest. It makes CALLS system calls with numbers
 * and arguments drawn from a PRNG seeded by SEED, and must survive them all: any guest kernel
 * panic (apus exits 250), a VM that hangs past its --timeout, or a crash of the VMM fails the
 * test that runs it. At the end it prints a summary and exits 0.
 *
 *   sysfuzz SEED CALLS [v]       (v: print every call before making it, for a replay)
 *
 * HOSTILE: it calls kill(-1, …), unlink, rename and chmod on whatever paths it likes, and
 * much else. Run it only inside a VM (`apus run --network none sysfuzz.musl 1 100000`), never
 * on a host.
 *
 * Numbers: 3 in 4 from the syscalls Apus implements, else any number in [0, 460) and a few
 * outside (negative, 2^32 + n). Arguments, each independently: 0, -1, small integers (file
 * descriptors, flags, counts), huge lengths (2^31, 2^32, 2^63, 2^64 - 1, …), addresses in
 * the guest kernel's range (0x7f80_0000_0000 and above, the kernel's text at
 * 0x7fff_0000_0000), non-canonical and top-of-memory addresses, pointers into its own
 * scratch buffer (random offsets, page-unaligned, ending where the memory turns read-only or
 * inaccessible, overlapping one another), into a read-only and an inaccessible page, paths,
 * and vectors (iovec, msghdr) pointing into the scratch buffer.
 *
 * What it must not do to itself, and how it avoids it:
 * - skipped: exit, exit_group (end the run); fork, vfork, clone, clone3 (a new task that
 *   resumes this code on a random stack); execve, execveat (replace the program);
 *   rt_sigreturn (loads registers from the stack); seccomp (could kill the next call);
 *   reboot, kexec_load, kexec_file_load (never wanted, even in a VM).
 * - memory: munmap, mprotect, mremap, madvise, msync, mlock*, pkey_mprotect, remap_file_pages
 *   and MAP_FIXED mmaps only ever get addresses in a 16 MiB zone of its own, outside the
 *   program's text, data and stack (or invalid ones), with lengths cut to the zone unless
 *   they are invalid anyway; mappings a call creates elsewhere are unmapped again; brk is
 *   set back after each brk call.
 * - signals: every catchable signal has a counting handler (a real fault in the fuzzer
 *   itself ends it with status 3); kill/tkill/tgkill/rt_(tg)sigqueueinfo/pidfd_send_signal
 *   never send SIGKILL or SIGSTOP; after rt_sigaction, rt_sigprocmask and sigaltstack the
 *   handlers, the mask and the alternate stack are put back (signals blocked around those
 *   calls, so none arrives meanwhile); signal masks it passes (ppoll, pselect6, epoll_pwait,
 *   rt_sigsuspend) never block SIGALRM.
 * - waiting: calls that block (pause, rt_sigsuspend, reads of its own pipes, futex waits,
 *   accept, poll/epoll/select without a timeout…) are not skipped: a 5 ms interval timer
 *   (ITIMER_REAL, re-armed after setitimer and alarm) interrupts each with SIGALRM, so they
 *   exercise the kernel's wait paths and end with EINTR. Timeouts it writes are small or
 *   zero, with the odd negative or huge one (both must be handled: EINVAL, or a long wait
 *   the timer interrupts).
 * - descriptors: 0, 1 and 2 are /dev/null (no read waits on the host's stdin, no noise on
 *   its stdout); the summary goes to a copy of stdout at fd 1000, which no argument names
 *   (close_range stops below it).
 * - TLS: arch_prctl's FS and GS bases are put back (libc reaches errno through FS; the
 *   fuzzer's own calls are raw syscalls that never touch errno).
 * - shmat never gets SHM_REMAP; fcntl(F_SETSIG) never names SIGKILL or SIGSTOP.
 * - prctl: PR_SET_SECCOMP, PR_SET_TSC (rdtsc would fault: the vDSO uses it), PR_SET_MM and
 *   PR_SET_SYSCALL_USER_DISPATCH are replaced by PR_GET_NAME. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PAGE 4096UL
#define SCRATCH_PAGES 64
#define ZONE_SIZE (16UL << 20)
#define REPORT_FD 1000
#define SIGALRM_BIT (1ULL << (SIGALRM - 1))

/* ---- raw syscalls: no errno, no libc state ---- */

static inline long raw6(long n, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

/* ---- PRNG: splitmix64 ---- */

static uint64_t rng_state;
static uint64_t next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static uint64_t below(uint64_t n) { return n ? next() % n : 0; }
static int chance(int percent) { return (int)below(100) < percent; }

/* ---- its memory ---- */

static unsigned char *scratch;    /* SCRATCH_PAGES read-write pages */
static unsigned char *readonly;   /* one read-only page right after scratch */
static unsigned char *noaccess;   /* one PROT_NONE page after that */
static unsigned char *zone;       /* the memory calls' playground */
static uint64_t initial_brk;
static uint64_t fs_base, gs_base;
static char *paths[32];
static int path_count;

/* Mappings the fuzzed calls made outside the zone, unmapped again soon. */
#define TRACKED 16
static uint64_t tracked_at[TRACKED], tracked_len[TRACKED];
static int tracked_next;

static void track(uint64_t at, uint64_t len) {
    int i = tracked_next++ % TRACKED;
    if (tracked_len[i]) raw6(SYS_munmap, (long)tracked_at[i], (long)tracked_len[i], 0, 0, 0, 0);
    tracked_at[i] = at;
    tracked_len[i] = len;
}

static int in_zone(uint64_t a) { return a >= (uint64_t)zone && a < (uint64_t)zone + ZONE_SIZE; }
static int in_scratch(uint64_t a, uint64_t size) {
    uint64_t start = (uint64_t)scratch, end = start + SCRATCH_PAGES * PAGE;
    return a >= start && a < end && size <= end - a;
}

/* Scratch contents: mostly zeros and small numbers (so structures read from it have small
 * sizes, counts and timeouts), some random words, and the path strings. */
static void refill_scratch(void) {
    uint64_t *w = (uint64_t *)scratch;
    for (size_t i = 0; i < SCRATCH_PAGES * PAGE / 8; i++) {
        uint64_t r = next();
        switch (r & 7) {
        case 0: case 1: case 2: w[i] = 0; break;
        case 3: case 4: w[i] = (r >> 8) & 0xff; break;
        case 5: w[i] = (uint64_t)scratch + ((r >> 8) % (SCRATCH_PAGES * PAGE)); break;  /* a pointer */
        default: w[i] = next(); break;
        }
    }
    /* The paths live in the last scratch page but one. */
    static const char *fixed[] = {
        "/tmp/fz/a", "/tmp/fz/b", "/tmp/fz/d", "/tmp/fz/d/e", "/tmp/fz/l", "/tmp/fz/dangling",
        "/tmp/fz", "/tmp", "/", ".", "..", "", "/proc/self/maps", "/proc/self/fd", "/proc/self/stat",
        "/proc/self/fd/3", "/dev/null", "/dev/zero", "/dev/urandom", "/nonexistent/x", "/tmp/fz/../fz/./a",
        "//tmp///fz//b", "/tmp/fz/a/", "/proc/self/exe", "/etc",
    };
    char *p = (char *)scratch + (SCRATCH_PAGES - 2) * PAGE;
    char *end = p + PAGE;
    path_count = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        size_t n = strlen(fixed[i]) + 1;
        memcpy(p, fixed[i], n);
        paths[path_count++] = p;
        p += n;
    }
    /* One name of 300 bytes (over NAME_MAX), and a path running to the end of scratch
     * without a NUL (the next page is read-only and has none either: the kernel must stop
     * at ENAMETOOLONG or EFAULT, not read on). */
    memcpy(p, "/tmp/fz/", 8);
    memset(p + 8, 'n', 300);
    p[308] = 0;
    paths[path_count++] = p;
    p += 309;
    (void)end;
    char *unterminated = (char *)scratch + SCRATCH_PAGES * PAGE - 40;
    memset(unterminated, 'u', 40);
    paths[path_count++] = unterminated;
}

/* ---- argument generation ---- */

static uint64_t scratch_pointer(void) {
    uint64_t size = SCRATCH_PAGES * PAGE;
    switch (below(6)) {
    case 0: return (uint64_t)scratch + (below(size / 16) * 16);                    /* aligned */
    case 1: return (uint64_t)scratch + below(size);                                /* unaligned */
    case 2: return (uint64_t)scratch + size - 1 - below(64);                       /* ends in the read-only page */
    case 3: return (uint64_t)scratch + below(SCRATCH_PAGES) * PAGE + PAGE - below(16); /* page crossing */
    case 4: return (uint64_t)scratch;
    default: return (uint64_t)scratch + below(4096);                              /* overlapping the others */
    }
}

static uint64_t wild_address(void) {
    static const uint64_t fixed[] = {
        0x7f8000000000ULL, 0x7fff00000000ULL, 0x7fff00100000ULL, 0x7fff00100fffULL, 0x7ffffffff000ULL,
        0x7fffffffffffULL, 0x800000000000ULL, 0xffff800000000000ULL, 0xffffffffffff0000ULL,
        0xfffffffffffff000ULL, 0xffffffffffffffffULL, 0x1000ULL, 0xfffULL, 0x10000ULL, 0x400000ULL,
        0x8000000000000000ULL, 0x7ffffffffffffff0ULL,
    };
    switch (below(4)) {
    case 0: return 0x7f8000000000ULL + below(0x800000000000ULL - 0x7f8000000000ULL);  /* the kernel's range */
    case 1: return 0x7fff00000000ULL + below(1 << 24);                              /* its text and data */
    default: return fixed[below(sizeof fixed / sizeof fixed[0])];
    }
}

static uint64_t huge(void) {
    static const uint64_t fixed[] = {
        1ULL << 31, (1ULL << 31) - 1, 1ULL << 32, (1ULL << 32) - 1, 0x7ffff000ULL, 1ULL << 40,
        1ULL << 62, 1ULL << 63, (1ULL << 63) - 1, ~0ULL, ~0ULL - 4095, 0xffffffff80000000ULL,
        0x100000001ULL, 0x8000000000000001ULL,
    };
    return fixed[below(sizeof fixed / sizeof fixed[0])];
}

static uint64_t argument(void) {
    uint64_t v;
    switch (below(20)) {
    case 0: return 0;
    case 1: return ~0ULL;                                    /* -1 */
    case 2: case 3: case 4: v = below(16); break;           /* small: descriptors, flags, counts */
    case 5: v = below(1024); break;
    case 6: return huge();
    case 7: return wild_address();
    case 8: case 9: case 10: case 11: return scratch_pointer();
    case 12: return (uint64_t)readonly + below(PAGE);
    case 13: return (uint64_t)noaccess + below(PAGE);
    case 14: case 15: return (uint64_t)paths[below(path_count)];
    case 16: return (uint64_t)zone + below(ZONE_SIZE / PAGE) * PAGE;
    case 17: return 1ULL << below(64);                       /* single flag bits */
    case 18: return (uint64_t)(int64_t)(int32_t)next();      /* a negative int, sign-extended */
    default: return next();
    }
    return v == REPORT_FD ? v + 1 : v;
}

/* ---- which calls ---- */

/* The syscalls Apus implements (Kernel/Sources/Syscalls.swift), by x86-64 number. */
static const short implemented[] = {
    0, 1, 17, 18, 19, 20, 8, 40, 326, 275, 295, 296, 77, 76, 74, 75, 221, 162, 217, 257, 2, 3, 32, 33,
    292, 72, 16, 7, 271, 5, 262, 4, 332, 137, 138, 6, 89, 267, 21, 269, 439, 91, 268, 90, 93, 260, 92,
    94, 280, 258, 83, 263, 87, 84, 316, 264, 82, 266, 88, 265, 86, 79, 80, 81, 95, 436, 23, 270, 22,
    293, 284, 290, 213, 291, 233, 232, 281, 441, 41, 53, 49, 50, 43, 288, 42, 48, 51, 52, 44, 45, 46,
    47, 307, 299, 54, 55, 12, 9, 11, 10, 25, 28, 26, 330, 331, 329, 158, 334, 39, 202, 186, 218, 273,
    24, 110, 102, 107, 104, 108, 63, 302, 97, 99, 204, 318, 157, 98, 100, 309, 203, 115, 125, 228, 229,
    96, 201, 35, 230, 13, 14, 131, 127, 130, 128, 34, 37, 38, 36, 222, 223, 224, 225, 226, 283, 286,
    287, 282, 289, 62, 200, 234,
};

static int skipped(long nr) {
    switch (nr) {
    case SYS_exit: case SYS_exit_group: case SYS_fork: case SYS_vfork: case SYS_clone: case 435 /* clone3 */:
    case SYS_execve: case SYS_execveat: case SYS_rt_sigreturn: case 317 /* seccomp */:
    case SYS_reboot: case SYS_kexec_load: case 320 /* kexec_file_load */:
        return 1;
    }
    return 0;
}

static long pick_number(void) {
    uint64_t r = below(100);
    if (r < 75) return implemented[below(sizeof implemented / sizeof implemented[0])];
    if (r < 98) return (long)below(460);
    static const long odd[] = { -1, -4096, 460, 511, 512, 1024, 0x40000000 /* x32 bit */, 1L << 32, 0x7fffffff };
    return odd[below(sizeof odd / sizeof odd[0])];
}

/* ---- keeping itself alive ---- */

static volatile unsigned long signals_caught;

static void on_signal(int sig, siginfo_t *info, void *context) {
    /* A fault of the fuzzer's own code (si_code > 0 from a trap) cannot be returned from. */
    if ((sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP) && info->si_code > 0
        && info->si_code != 0x80 /* SI_KERNEL: a signal the kernel sent on request */) {
        ucontext_t *uc = context;
        char msg[160];
        int n = snprintf(msg, sizeof msg, "sysfuzz: the fuzzer itself faulted: signal %d code %d address %p rip %#llx\n",
                         sig, info->si_code, info->si_addr, (unsigned long long)uc->uc_mcontext.gregs[REG_RIP]);
        raw6(SYS_write, REPORT_FD, (long)msg, n, 0, 0, 0);
        raw6(SYS_exit_group, 3, 0, 0, 0, 0, 0);
    }
    signals_caught++;
}

/* The handlers are installed with raw rt_sigaction, for every signal: libc's sigaction
 * refuses the ones it uses internally (32-34), whose default action would end the run when
 * a fuzzed kill sends them. The restorer is the usual rt_sigreturn trampoline. */
extern void sysfuzz_restorer(void);
__asm__(".text\n.globl sysfuzz_restorer\nsysfuzz_restorer:\n\tmov $15, %eax\n\tsyscall\n\thlt\n");

struct kernel_sigaction { void *handler; unsigned long flags; void *restorer; uint64_t mask; };

static void install_handlers(void) {
    /* No SA_RESTART: a blocked call ends with EINTR. 0x04000000: SA_RESTORER. */
    struct kernel_sigaction sa = { (void *)on_signal, SA_SIGINFO | 0x04000000, (void *)sysfuzz_restorer, 0 };
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        raw6(SYS_rt_sigaction, sig, (long)&sa, 0, 8, 0, 0);
    }
}

static void set_mask(uint64_t mask) { raw6(SYS_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0, 8, 0, 0); }

static void arm_watchdog(void) {
    struct itimerval t = { { 0, 5000 }, { 0, 5000 } };
    raw6(SYS_setitimer, ITIMER_REAL, (long)&t, 0, 0, 0, 0);
}

static void write_timeout(uint64_t at) {
    if (!in_scratch(at, 16)) return;
    int64_t *t = (int64_t *)at;
    switch (below(10)) {
    case 0: t[0] = 0; t[1] = 0; break;
    case 1: t[0] = -1 - (int64_t)below(1000); t[1] = (int64_t)below(1000000000); break;   /* negative */
    case 2: t[0] = (int64_t)huge() >> below(2); t[1] = (int64_t)below(1000000000); break; /* huge */
    case 3: t[0] = 0; t[1] = (int64_t)next(); break;                                     /* bad tv_nsec */
    default: t[0] = 0; t[1] = (int64_t)below(2000000); break;                             /* < 2 ms */
    }
}

static void write_safe_mask(uint64_t at) {
    if (!in_scratch(at, 8)) return;
    *(uint64_t *)at = next() & ~SIGALRM_BIT;
}

/* Memory calls: an address inside the zone (or an invalid one), a length cut to the zone
 * unless it is invalid anyway (wraps, or beyond the user range). */
static void confine(uint64_t *address, uint64_t *length) {
    uint64_t a = *address, end = a + *length;
    int invalid = a >= 0x800000000000ULL || end < a || end > 0x800000000000ULL;
    if (invalid) return;
    if (!in_zone(a)) *address = a = (uint64_t)zone + below(ZONE_SIZE / PAGE) * PAGE + (chance(10) ? below(PAGE) : 0);
    if (*length > (uint64_t)zone + ZONE_SIZE - a) *length = (uint64_t)zone + ZONE_SIZE - a;
}

/* Makes the call safe for the fuzzer (see the header); returns 0 to skip it. */
static int sanitize(long nr, uint64_t *a) {
    switch (nr) {
    case SYS_munmap: case SYS_mprotect: case SYS_madvise: case SYS_msync: case SYS_mlock: case SYS_munlock:
    case 325 /* mlock2 */: case 329 /* pkey_mprotect */: case SYS_remap_file_pages: case SYS_mincore:
        confine(&a[0], &a[1]);
        break;
    case SYS_mremap:
        confine(&a[0], &a[1]);
        if (a[3] & 2 /* MREMAP_FIXED */) { uint64_t len = a[2]; confine(&a[4], &len); }
        break;
    case SYS_mmap:
        if (a[3] & (MAP_FIXED | MAP_FIXED_NOREPLACE)) confine(&a[0], &a[1]);
        break;
    case SYS_brk: case SYS_shmdt: case SYS_munlockall: case SYS_mlockall:
        break;
    case SYS_kill: case SYS_tkill:
        if (a[1] == SIGKILL || a[1] == SIGSTOP || (uint32_t)a[1] == SIGKILL || (uint32_t)a[1] == SIGSTOP) a[1] = SIGUSR1;
        break;
    case SYS_tgkill: case SYS_rt_tgsigqueueinfo:
        if ((uint32_t)a[2] == SIGKILL || (uint32_t)a[2] == SIGSTOP) a[2] = SIGUSR2;
        break;
    case SYS_rt_sigqueueinfo: case 424 /* pidfd_send_signal */:
        if ((uint32_t)a[1] == SIGKILL || (uint32_t)a[1] == SIGSTOP) a[1] = SIGUSR1;
        break;
    case SYS_fcntl:
        if ((int)a[1] == 10 /* F_SETSIG */ && ((uint32_t)a[2] == SIGKILL || (uint32_t)a[2] == SIGSTOP)) a[2] = SIGUSR1;
        break;
    case SYS_shmat:
        a[2] &= ~(uint64_t)040000;  /* no SHM_REMAP over its own memory */
        break;
    case SYS_timer_create:
        /* struct sigevent: sigev_signo at 8 must not be a stop or kill signal. */
        if (in_scratch(a[1], 16)) { int32_t *s = (int32_t *)(a[1] + 8); if (*s == SIGKILL || *s == SIGSTOP) *s = SIGUSR1; }
        break;
    case SYS_prctl:
        switch ((int)a[0]) { case 22: case 26: case 35: case 59: a[0] = 16; /* PR_GET_NAME */ }
        break;
    case SYS_close_range:
        if ((uint32_t)a[0] <= REPORT_FD && (uint32_t)a[1] >= REPORT_FD) a[1] = REPORT_FD - 1;
        break;
    case SYS_ppoll:
        write_timeout(a[2]);
        write_safe_mask(a[3]);
        break;
    case SYS_pselect6:
        write_timeout(a[4]);
        if (in_scratch(a[5], 16)) {
            uint64_t *arg = (uint64_t *)a[5];
            arg[0] = (uint64_t)scratch + below(SCRATCH_PAGES * PAGE / 8 - 1) * 8;
            write_safe_mask(arg[0]);
            arg[1] = chance(90) ? 8 : below(20);
        }
        break;
    case SYS_select: write_timeout(a[4]); break;
    case SYS_epoll_pwait: write_safe_mask(a[4]); break;
    case 441 /* epoll_pwait2 */: write_timeout(a[3]); write_safe_mask(a[4]); break;
    case SYS_rt_sigsuspend: write_safe_mask(a[0]); break;
    case SYS_nanosleep: write_timeout(a[0]); break;
    case SYS_clock_nanosleep: write_timeout(a[2]); break;
    case SYS_rt_sigtimedwait: write_timeout(a[2]); break;
    case SYS_futex: write_timeout(a[3]); break;
    case SYS_recvmmsg: write_timeout(a[4]); break;
    case SYS_io_getevents: write_timeout(a[4]); break;
    case SYS_semtimedop: write_timeout(a[3]); break;
    case SYS_mq_timedsend: case SYS_mq_timedreceive: write_timeout(a[4]); break;
    }
    return 1;
}

/* State some calls change, put back after them (signals blocked across the pair). */
static int needs_blocking(long nr) {
    return nr == SYS_rt_sigaction || nr == SYS_sigaltstack || nr == SYS_arch_prctl || nr == SYS_rt_sigprocmask;
}

static void restore_after(long nr, uint64_t *a, long result) {
    switch (nr) {
    case SYS_rt_sigaction: install_handlers(); break;
    case SYS_sigaltstack: { stack_t off = { .ss_flags = SS_DISABLE }; raw6(SYS_sigaltstack, (long)&off, 0, 0, 0, 0, 0); break; }
    case SYS_arch_prctl:
        raw6(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, (long)fs_base, 0, 0, 0, 0);
        raw6(SYS_arch_prctl, 0x1001 /* ARCH_SET_GS */, (long)gs_base, 0, 0, 0, 0);
        break;
    case SYS_brk: raw6(SYS_brk, (long)initial_brk, 0, 0, 0, 0, 0); break;
    case SYS_setitimer: case SYS_alarm: arm_watchdog(); break;
    case SYS_mmap:
        if (result > 0 && result < 0x800000000000L && !in_zone((uint64_t)result)) track((uint64_t)result, a[1]);
        break;
    case SYS_mremap:
        if (result > 0 && result < 0x800000000000L && !in_zone((uint64_t)result)) track((uint64_t)result, a[2]);
        break;
    case SYS_shmat:
        if (result > 0 && result < 0x800000000000L) raw6(SYS_shmdt, result, 0, 0, 0, 0, 0);
        break;
    }
}

/* ---- setup and the loop ---- */

static void setup_files(void) {
    mkdir("/tmp", 0777);
    mkdir("/tmp/fz", 0777);
    mkdir("/tmp/fz/d", 0777);
    int fd = open("/tmp/fz/a", O_CREAT | O_RDWR, 0644);
    if (fd >= 0) { write(fd, "some bytes for the fuzzer\n", 26); close(fd); }
    fd = open("/tmp/fz/d/e", O_CREAT | O_RDWR, 0644);
    if (fd >= 0) close(fd);
    symlink("/tmp/fz/a", "/tmp/fz/l");
    symlink("/tmp/fz/nothing", "/tmp/fz/dangling");
}

static void fail(const char *what) {
    fprintf(stderr, "sysfuzz: setup failed: %s (errno %d)\n", what, errno);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sysfuzz SEED CALLS [v]   (only inside a VM: it is hostile)\n");
        return 2;
    }
    uint64_t seed = strtoull(argv[1], NULL, 0);
    unsigned long calls = strtoul(argv[2], NULL, 0);
    int verbose = argc > 3 && argv[3][0] == 'v';
    rng_state = seed * 0x2545f4914f6cdd1dULL + 1;

    /* Descriptors: the report goes to fd 1000; 0, 1, 2 become /dev/null. */
    if (dup2(1, REPORT_FD) != REPORT_FD) fail("dup2 stdout");
    int null = open("/dev/null", O_RDWR);
    if (null < 0) fail("open /dev/null");
    for (int fd = 0; fd < 3; fd++) dup2(null, fd);
    if (null > 2) close(null);
    static char report_buffer[4096];
    FILE *report = fdopen(REPORT_FD, "w");
    if (!report) fail("fdopen");
    setvbuf(report, report_buffer, _IOFBF, sizeof report_buffer);

    unsigned char *block = mmap(NULL, (SCRATCH_PAGES + 3) * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) fail("mmap scratch");
    mprotect(block, PAGE, PROT_NONE);  /* a guard below */
    scratch = block + PAGE;
    readonly = scratch + SCRATCH_PAGES * PAGE;
    noaccess = readonly + PAGE;
    /* 'R' (0x52): no NUL (a path running into the page never ends there), and a signal mask
     * read from it does not block SIGALRM (bit 5 of its second byte is clear). */
    memset(readonly, 'R', PAGE);
    if (mprotect(readonly, PAGE, PROT_READ) != 0 || mprotect(noaccess, PAGE, PROT_NONE) != 0) fail("mprotect");
    zone = mmap(NULL, ZONE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (zone == MAP_FAILED) fail("mmap zone");

    setup_files();
    refill_scratch();
    initial_brk = (uint64_t)raw6(SYS_brk, 0, 0, 0, 0, 0, 0);
    raw6(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, (long)&fs_base, 0, 0, 0, 0);
    raw6(SYS_arch_prctl, 0x1004 /* ARCH_GET_GS */, (long)&gs_base, 0, 0, 0, 0);
    install_handlers();
    set_mask(0);
    arm_watchdog();

    static unsigned long errno_seen[4096];
    unsigned long successes = 0, skips = 0;
    for (unsigned long i = 0; i < calls; i++) {
        if (i % 4096 == 0) refill_scratch();
        long nr = pick_number();
        uint64_t a[6];
        for (int k = 0; k < 6; k++) a[k] = argument();
        if (skipped(nr) || !sanitize(nr, a)) { skips++; continue; }
        if (verbose) {
            fprintf(report, "%lu: %ld(%#llx, %#llx, %#llx, %#llx, %#llx, %#llx)\n", i, nr, (unsigned long long)a[0],
                    (unsigned long long)a[1], (unsigned long long)a[2], (unsigned long long)a[3],
                    (unsigned long long)a[4], (unsigned long long)a[5]);
            fflush(report);
        }
        int block_signals = needs_blocking(nr);
        if (block_signals) set_mask(~0ULL);
        long r = raw6(nr, (long)a[0], (long)a[1], (long)a[2], (long)a[3], (long)a[4], (long)a[5]);
        restore_after(nr, a, r);
        if (block_signals || nr == SYS_rt_sigsuspend) set_mask(0);
        if (verbose) {
            fprintf(report, "  = %ld\n", r);
            fflush(report);
        }
        if (r < 0 && r >= -4095) errno_seen[-r]++; else successes++;
    }

    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    raw6(SYS_setitimer, ITIMER_REAL, (long)&off, 0, 0, 0, 0);
    set_mask(~0ULL);  /* timers the calls armed may still fire: not while reporting */
    int distinct = 0;
    for (int e = 1; e < 4096; e++) distinct += errno_seen[e] != 0;
    fprintf(report, "sysfuzz: seed %llu: %lu calls made (%lu skipped), %lu succeeded, %d distinct errno values, "
            "%lu signals caught\n", (unsigned long long)seed, calls - skips, skips, successes, distinct, signals_caught);
    fprintf(report, "sysfuzz: done\n");
    fflush(report);
    return 0;
}
