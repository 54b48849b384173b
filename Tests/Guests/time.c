/* time: clocks and sleeps. CLOCK_MONOTONIC never goes backwards over 1000 reads and
 * advances; tv_nsec is normalised; CLOCK_REALTIME, gettimeofday and time() agree within a
 * second and (given the host's epoch seconds as argv[1], else "after 2024") the guest's
 * wall clock is within 120 s of the host's; nanosleep(20 ms) and clock_nanosleep (relative
 * and TIMER_ABSTIME) sleep at least as long as asked (and less than 5 s); bad arguments
 * give EINVAL. Only yes/no facts are printed, never times. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include "common.h"

static long long ns(struct timespec t) { return (long long)t.tv_sec * 1000000000LL + t.tv_nsec; }
static long long mono(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return ns(t); }

int main(int argc, char **argv) {
    struct timespec prev, cur;
    int nondecreasing = 1, normalised = 1;
    clock_gettime(CLOCK_MONOTONIC, &prev);
    long long first = ns(prev);
    for (int i = 0; i < 1000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &cur);
        if (ns(cur) < ns(prev)) nondecreasing = 0;
        if (cur.tv_nsec < 0 || cur.tv_nsec >= 1000000000L) normalised = 0;
        prev = cur;
    }
    check("clock monotonic non-decreasing over 1000 reads", nondecreasing);
    check("tv_nsec in [0, 1e9)", normalised);
    /* Spin until the clock moves (bounded). */
    int moved = 0;
    for (long i = 0; i < 100000000L && !moved; i++) if (mono() > first) moved = 1;
    check("clock monotonic advances", moved);

    struct timespec rt;
    struct timeval tv;
    clock_gettime(CLOCK_REALTIME, &rt);
    gettimeofday(&tv, NULL);
    time_t t = time(NULL);
    check("realtime after 2024-01-01", rt.tv_sec > 1704067200L);
    check("gettimeofday agrees with CLOCK_REALTIME (1 s)", llabs((long long)tv.tv_sec - rt.tv_sec) <= 1);
    check("tv_usec in [0, 1e6)", tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    check("time() agrees with CLOCK_REALTIME (1 s)", llabs((long long)t - rt.tv_sec) <= 1);
    if (argc > 1) {
        long long host = atoll(argv[1]);
        check("realtime within 120 s of the host's clock", llabs((long long)rt.tv_sec - host) <= 120);
    }
    /* The raw syscalls too (glibc uses the vDSO natively when there is one). */
    struct timespec raw;
    check("raw clock_gettime(CLOCK_MONOTONIC) succeeds", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &raw) == 0);
    check("raw time() agrees", llabs((long long)syscall(SYS_time, NULL) - rt.tv_sec) <= 2);

    long long a = mono();
    struct timespec req = {0, 20 * 1000000L};
    int r = nanosleep(&req, NULL);
    long long d = mono() - a;
    check("nanosleep(20ms) returns 0", r == 0);
    check("nanosleep(20ms) took >= 20ms", d >= 20000000LL);
    check("nanosleep(20ms) took < 5s", d < 5000000000LL);

    a = mono();
    struct timespec rel = {0, 10 * 1000000L};
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &rel, NULL);
    d = mono() - a;
    check("clock_nanosleep(MONOTONIC, 10ms) returns 0", r == 0);
    check("clock_nanosleep(MONOTONIC, 10ms) took >= 10ms", d >= 10000000LL);

    struct timespec target;
    clock_gettime(CLOCK_MONOTONIC, &target);
    target.tv_nsec += 15 * 1000000L;
    if (target.tv_nsec >= 1000000000L) { target.tv_sec++; target.tv_nsec -= 1000000000L; }
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &target, NULL);
    check("clock_nanosleep(TIMER_ABSTIME) returns 0", r == 0);
    check("clock_nanosleep(TIMER_ABSTIME) woke at/after the target", mono() >= ns(target));

    struct timespec past = {0, 1};
    check("clock_nanosleep(TIMER_ABSTIME, in the past) returns at once", clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, NULL) == 0);
    struct timespec zero = {0, 0};
    check("nanosleep(0) returns 0", nanosleep(&zero, NULL) == 0);

    struct timespec bad = {0, 1000000000L};
    errno = 0;
    check("nanosleep(tv_nsec = 1e9) fails with EINVAL", nanosleep(&bad, NULL) == -1 && errno == EINVAL);
    errno = 0;
    check("clock_gettime(bad clock id) fails with EINVAL",
          syscall(SYS_clock_gettime, 12345, &raw) == -1 && errno == EINVAL);
    return finish();
}
