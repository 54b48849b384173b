/* oddargs: syscalls with odd but legal-to-make arguments, each answered by Linux with an
 * error or an ordinary result: negative timeouts (EINVAL), timeouts and timer values too
 * large for nanoseconds (clamped, not an overflow), mmap hints and lengths near 2^64
 * (hint ignored; ENOMEM), and a few counts and offsets at the edge of their type. Each line
 * is the same natively and in the VM (run differentially); the guest kernel used to panic
 * on several of them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <stdlib.h>
#include <ucontext.h>
#include <unistd.h>
#include "common.h"

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAIT_BITSET_PRIVATE (9 | 128)
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

struct kernel_timespec { int64_t sec; int64_t nsec; };

/* Raw mmap: libc wrappers refuse some lengths themselves (musl: ENOMEM at PTRDIFF_MAX). */
static void *raw_mmap(uint64_t addr, uint64_t len, int prot, int flags) {
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, -1, 0);
}

/* -1 with errno `e`, through the raw syscall (no libc wrapper second-guessing). */
static int fails_with(long r, int e) { return r == -1 && errno == e; }

static void negative_timeouts(void) {
    struct kernel_timespec negative = { -1, 0 }, very_negative = { INT64_MIN, 0 };
    int p[2];
    check("pipe", pipe(p) == 0);
    struct pollfd pfd = { .fd = p[0], .events = POLLIN };
    check("ppoll with tv_sec -1: EINVAL", fails_with(syscall(SYS_ppoll, &pfd, 1, &negative, NULL, 8), EINVAL));
    check("ppoll with tv_sec INT64_MIN: EINVAL", fails_with(syscall(SYS_ppoll, &pfd, 1, &very_negative, NULL, 8), EINVAL));
    fd_set in;
    FD_ZERO(&in);
    FD_SET(p[0], &in);
    check("pselect6 with tv_sec -1: EINVAL",
          fails_with(syscall(SYS_pselect6, p[0] + 1, &in, NULL, NULL, &negative, NULL), EINVAL));
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 }, out[2];
    check("epoll_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    check("epoll_pwait2 with tv_sec -1: EINVAL",
          fails_with(syscall(SYS_epoll_pwait2, ep, out, 2, &negative, NULL, 8), EINVAL));
    uint64_t set = 1ull << (SIGUSR1 - 1);
    check("rt_sigtimedwait with tv_sec -1: EINVAL",
          fails_with(syscall(SYS_rt_sigtimedwait, &set, NULL, &negative, 8), EINVAL));
    static uint32_t word = 5;
    check("FUTEX_WAIT with tv_sec -1: EINVAL",
          fails_with(syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 5, &negative, NULL, 0), EINVAL));
    check("FUTEX_WAIT_BITSET with tv_sec -1: EINVAL",
          fails_with(syscall(SYS_futex, &word, FUTEX_WAIT_BITSET_PRIVATE, 5, &negative, NULL, ~0u), EINVAL));
    struct kernel_timespec bad_nsec = { 0, -1 };
    check("ppoll with tv_nsec -1: EINVAL", fails_with(syscall(SYS_ppoll, &pfd, 1, &bad_nsec, NULL, 8), EINVAL));
    check("nanosleep with tv_sec -1: EINVAL", fails_with(syscall(SYS_nanosleep, &negative, NULL), EINVAL));

    /* Huge but valid timeouts: clamped by Linux; with a ready descriptor they return at once. */
    struct kernel_timespec huge = { INT64_MAX, 999999999 };
    check("write a byte", write(p[1], "x", 1) == 1);
    check("ppoll with tv_sec INT64_MAX and data ready: 1", syscall(SYS_ppoll, &pfd, 1, &huge, NULL, 8) == 1);
    check("epoll_pwait2 with tv_sec INT64_MAX and data ready: 1",
          syscall(SYS_epoll_pwait2, ep, out, 2, &huge, NULL, 8) == 1 && out[0].data.u64 == 7);
    struct kernel_timespec zero = { 0, 0 };
    check("rt_sigtimedwait with a zero timeout and nothing pending: EAGAIN",
          fails_with(syscall(SYS_rt_sigtimedwait, &set, NULL, &zero, 8), EAGAIN));
    close(ep);
    close(p[0]);
    close(p[1]);
}

static void huge_select_and_timers(void) {
    int p[2];
    check("pipe", pipe(p) == 0);
    fd_set out;
    FD_ZERO(&out);
    FD_SET(p[1], &out);
    struct timeval tv = { .tv_sec = 1LL << 40, .tv_usec = 0 };
    check("select with tv_sec 2^40 and a writable pipe: 1",
          syscall(SYS_select, p[1] + 1, NULL, &out, NULL, &tv) == 1 && FD_ISSET(p[1], &out));
    FD_SET(p[1], &out);
    tv.tv_sec = INT64_MAX;
    tv.tv_usec = 999999;
    check("select with tv_sec INT64_MAX: 1", syscall(SYS_select, p[1] + 1, NULL, &out, NULL, &tv) == 1);
    FD_SET(p[1], &out);
    tv.tv_sec = -1;
    tv.tv_usec = 0;
    check("select with tv_sec -1: EINVAL", fails_with(syscall(SYS_select, p[1] + 1, NULL, &out, NULL, &tv), EINVAL));
    close(p[0]);
    close(p[1]);

    /* setitimer with values far beyond what nanoseconds hold: armed (clamped), then off. */
    struct itimerval big = { .it_interval = { 1LL << 40, 0 }, .it_value = { 1LL << 40, 0 } }, now, off = { { 0, 0 }, { 0, 0 } };
    check("setitimer(ITIMER_REAL) with 2^40 s", syscall(SYS_setitimer, ITIMER_REAL, &big, NULL) == 0);
    check("getitimer: armed, more than 10^9 s left",
          syscall(SYS_getitimer, ITIMER_REAL, &now) == 0 && now.it_value.tv_sec > 1000000000);
    big.it_value.tv_sec = INT64_MAX;
    check("setitimer(ITIMER_VIRTUAL) with INT64_MAX s", syscall(SYS_setitimer, ITIMER_VIRTUAL, &big, NULL) == 0);
    check("setitimer(ITIMER_PROF) with INT64_MAX s", syscall(SYS_setitimer, ITIMER_PROF, &big, NULL) == 0);
    for (int which = 0; which < 3; which++) syscall(SYS_setitimer, which, &off, NULL);
    check("getitimer: off again", syscall(SYS_getitimer, ITIMER_REAL, &now) == 0 && now.it_value.tv_sec == 0
          && now.it_value.tv_usec == 0);

    int id = -1;
    struct sigevent none = { .sigev_notify = SIGEV_NONE };
    check("timer_create", syscall(SYS_timer_create, CLOCK_MONOTONIC, &none, &id) == 0);
    struct itimerspec far = { .it_interval = { INT64_MAX, 0 }, .it_value = { INT64_MAX, 999999999 } }, left;
    check("timer_settime with INT64_MAX s", syscall(SYS_timer_settime, id, 0, &far, NULL) == 0);
    check("timer_gettime: more than 10^9 s left",
          syscall(SYS_timer_gettime, id, &left) == 0 && left.it_value.tv_sec > 1000000000);
    check("timer_settime absolute at INT64_MAX s", syscall(SYS_timer_settime, id, TIMER_ABSTIME, &far, NULL) == 0);
    syscall(SYS_timer_delete, id);
}

static void mmap_edges(void) {
    long page = 4096;
    /* (No hint between 2^47 and 2^56: a 5-level-paging host may honour those.) */
    uint64_t hints[] = { 0xfffffffffffff000ull, 0xffffffffffffe000ull, 0xffff800000000000ull, 0x1000ull };
    for (unsigned i = 0; i < sizeof hints / sizeof hints[0]; i++) {
        char *p = raw_mmap(hints[i], 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
        char what[96];
        snprintf(what, sizeof what, "mmap with hint %#llx: mapped elsewhere",
                 (unsigned long long)hints[i]);
        int ok = p != MAP_FAILED && (uint64_t)(uintptr_t)p != hints[i];
        if (ok) { p[0] = 1; p[page] = 2; ok = p[0] + p[page] == 3; munmap(p, 2 * page); }
        check(what, ok);
    }
    check("mmap of 2^63 bytes: ENOMEM",
          raw_mmap(0, 1ull << 63, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS) == MAP_FAILED && errno == ENOMEM);
    check("mmap of 2^64 - 2 pages: ENOMEM",
          raw_mmap(0, 0xffffffffffffe000ull, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS) == MAP_FAILED && errno == ENOMEM);
    check("mmap of 2^64 - 1 bytes: ENOMEM (rounds past 2^64)",
          raw_mmap(0, ~0ull, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS) == MAP_FAILED && errno == ENOMEM);
    check("MAP_FIXED at 2^64 - 1 page: ENOMEM or EINVAL",
          raw_mmap(0xfffffffffffff000ull, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED) == MAP_FAILED
          && (errno == ENOMEM || errno == EINVAL));
    char *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("mmap one page", p != MAP_FAILED);
    check("mremap to 2^63 bytes: EINVAL (larger than the address space)",
          fails_with(syscall(SYS_mremap, p, page, 1ull << 63, MREMAP_MAYMOVE, 0), EINVAL));
    check("mremap to 2^64 - 1 page without moving: EINVAL",
          fails_with(syscall(SYS_mremap, p, page, 0xfffffffffffff000ull, 0, 0), EINVAL));
    check("mremap to 1 TiB without moving: ENOMEM",
          fails_with(syscall(SYS_mremap, p, page, 1ull << 40, 0, 0), ENOMEM));
    check("munmap of 2^64 - 1 page from the page: EINVAL",
          syscall(SYS_munmap, p, 0xfffffffffffff000ull) == -1 && errno == EINVAL);
    /* (Linux answers ENOMEM or EACCES, depending on what lies above.) */
    check("mprotect of 2^63 bytes from the page fails",
          syscall(SYS_mprotect, p, 1ull << 63, PROT_READ | PROT_WRITE) == -1);
    check("the page still works", (p[5] = 9) == 9 && munmap(p, page) == 0);
}

static void offsets_and_counts(void) {
    int zero = open("/dev/zero", O_RDONLY);
    char a[8], b[8];
    struct iovec iov[2] = { { a, sizeof a }, { b, sizeof b } };
    check("preadv of /dev/zero at INT64_MAX - 4: EINVAL (offset + count overflows)",
          fails_with(syscall(SYS_preadv, zero, iov, 2, INT64_MAX - 4, 0L), EINVAL));
    check("pread64 of /dev/zero at INT64_MAX - 4: EINVAL",
          fails_with(syscall(SYS_pread64, zero, a, sizeof a, INT64_MAX - 4), EINVAL));
    check("preadv of /dev/zero at -1: EINVAL", fails_with(syscall(SYS_preadv, zero, iov, 2, -1L, 0L), EINVAL));
    close(zero);

    int s[2];
    check("socketpair", socketpair(AF_UNIX, SOCK_DGRAM, 0, s) == 0);
    struct iovec wild[2] = { { a, 4 }, { b, ~(size_t)0 - 2 } };
    struct msghdr m = { .msg_iov = wild, .msg_iovlen = 2 };
    check("sendmsg with iov lengths summing past 2^64: EINVAL", fails_with(sendmsg(s[0], &m, 0), EINVAL));
    wild[1].iov_len = (size_t)1 << 63;
    check("sendmsg with an iov length of 2^63: EINVAL", fails_with(sendmsg(s[0], &m, 0), EINVAL));
    check("send 3 bytes", send(s[0], "abc", 3, 0) == 3);
    struct iovec in[2] = { { a, 2 }, { b, (size_t)1 << 63 } };
    struct msghdr r = { .msg_iov = in, .msg_iovlen = 2 };
    check("recvmsg with an iov length of 2^63: EINVAL", fails_with(recvmsg(s[1], &r, MSG_DONTWAIT), EINVAL));
    check("sendmmsg at the top of the address space: EFAULT",
          fails_with(syscall(SYS_sendmmsg, s[0], (void *)0xffffffffffffffc0ull, 4, 0), EFAULT));
    check("recvmmsg at the top of the address space: EFAULT",
          fails_with(syscall(SYS_recvmmsg, s[1], (void *)0xffffffffffffffc0ull, 4, MSG_DONTWAIT, NULL), EFAULT));
    close(s[0]);
    close(s[1]);

    check("clone3 with a stack range wrapping past 2^64: EINVAL", ({
        uint64_t args[11] = { 0 };
        args[0] = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND;
        args[5] = 0xfffffffffffff000ull;  /* stack */
        args[6] = 0x2000;                 /* stack_size */
        fails_with(syscall(SYS_clone3, args, sizeof args), EINVAL);
    }));
}

static volatile int alarm_handled;
static void on_alarm(int sig) { (void)sig; alarm_handled++; }

/* A wait for a signal with a handler installed and not blocked: rt_sigtimedwait takes it
 * (Linux dequeues it before the wait returns), the handler does not run. The guest kernel
 * used to run the handler and start the wait over, for ever. */
static void sigtimedwait_with_handler(void) {
    struct sigaction sa = { .sa_handler = on_alarm };
    sigaction(SIGALRM, &sa, NULL);
    /* Every 20 ms: a shorter interval can fire again while the program runs between two
     * waits (a loaded host, QEMU's emulation), and then the handler does run, on Linux too. */
    struct itimerval every_ms = { { 0, 20000 }, { 0, 20000 } }, off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &every_ms, NULL);
    uint64_t set = 1ull << (SIGALRM - 1);
    int taken = 0;
    for (int i = 0; i < 3; i++) taken += syscall(SYS_rt_sigtimedwait, &set, NULL, NULL, 8) == SIGALRM;
    setitimer(ITIMER_REAL, &off, NULL);
    check("rt_sigtimedwait without a timeout takes an interval timer's SIGALRM, three times", taken == 3);
    check("and the handler never ran", alarm_handled == 0);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGALRM, &sa, NULL);
}

/* `oddargs sigreturn ADDRESS`: a handler sets the interrupted rip to ADDRESS (non-canonical
 * or the upper half) and returns: the return cannot happen, and the process dies of SIGSEGV
 * (139), as on Linux. The guest kernel used to fault on the way back and panic. */
static uint64_t bad_rip;
static void point_rip_away(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)info;
    ucontext_t *uc = context;
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)bad_rip;
}

static int sigreturn_to(const char *address) {
    bad_rip = strtoull(address, NULL, 0);
    struct sigaction sa = { .sa_sigaction = point_rip_away, .sa_flags = SA_SIGINFO };
    sigaction(SIGUSR1, &sa, NULL);
    printf("returning from a handler to %#llx\n", (unsigned long long)bad_rip);
    fflush(stdout);
    raise(SIGUSR1);
    printf("still running\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "sigreturn") == 0) return sigreturn_to(argv[2]);
    negative_timeouts();
    huge_select_and_timers();
    mmap_edges();
    offsets_and_counts();
    sigtimedwait_with_handler();
    return finish();
}
