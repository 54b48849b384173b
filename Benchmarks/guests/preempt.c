// Preemption costs, measured inside one static program (median of 7 rounds of 300 ms):
//   loop            iterations per ms of a loop without syscalls, alone
//   loop-timer      the same loop with a 10 ms ITIMER_REAL and an empty SIGALRM handler:
//                   100 interruptions a second (on pvm each one a VMM-assisted preemption)
//   interrupt       ns lost per interruption: (1 - loop-timer / loop) * round / interruptions
//                   (the preemption, the signal frame, the handler and its rt_sigreturn)
//   wakeup          ns from a sleeping thread's deadline to it running, while another thread
//                   spins without syscalls (on pvm: kick, redirect, switch)
// Prints "NAME VALUE" lines.
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t ticks;
static void on_alarm(int sig) { (void)sig; ticks++; }

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static volatile uint64_t sink;

// Iterations of a syscall-free loop in `ns` nanoseconds (the clock is read through the vDSO
// every 2^16 iterations: no syscall).
static uint64_t spin_for(uint64_t ns) {
    uint64_t start = now_ns(), n = 0;
    for (;;) {
        for (int i = 0; i < 65536; i++) sink += (uint64_t)i * 2654435761u;
        n += 65536;
        if (now_ns() - start >= ns) return n;
    }
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare);
    return v[n / 2];
}

static volatile int stop;
static double wake_latency[64];
static volatile int wake_count;

static void *sleeper(void *arg) {
    (void)arg;
    while (!stop && wake_count < 64) {
        uint64_t want = now_ns() + 2000000;  // 2 ms
        struct timespec t = {0, 2000000};
        nanosleep(&t, NULL);
        wake_latency[wake_count++] = (double)(now_ns() - want);
    }
    return NULL;
}

int main(void) {
    enum { rounds = 7 };
    const uint64_t round = 300000000;  // 300 ms
    double plain[rounds], timed[rounds], lost[rounds];
    spin_for(50000000);  // warm up
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    for (int r = 0; r < rounds; r++) {
        double a = (double)spin_for(round);
        struct itimerval on = {{0, 10000}, {0, 10000}}, off = {{0, 0}, {0, 0}};
        ticks = 0;
        setitimer(ITIMER_REAL, &on, NULL);
        double b = (double)spin_for(round);
        setitimer(ITIMER_REAL, &off, NULL);
        int interruptions = ticks;
        plain[r] = a / (double)(round / 1000000);
        timed[r] = b / (double)(round / 1000000);
        lost[r] = interruptions > 0 ? (1.0 - b / a) * (double)round / interruptions : 0;
    }
    printf("loop %.1f\n", median(plain, rounds));
    printf("loop-timer %.1f\n", median(timed, rounds));
    printf("interrupt %.1f\n", median(lost, rounds));
    pthread_t t;
    pthread_create(&t, NULL, sleeper, NULL);
    while (wake_count < 64) sink++;
    stop = 1;
    pthread_join(t, NULL);
    printf("wakeup %.1f\n", median(wake_latency, wake_count));
    return 0;
}
