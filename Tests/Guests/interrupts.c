// interrupts: interrupting code that makes no syscalls, and signals from outside. Modes:
//   alarm      alarm(1) ends a loop without syscalls through its SIGALRM handler
//   vtalarm    ITIMER_VIRTUAL (CPU time) ends such a loop: SIGVTALRM
//   threads    two threads spin without syscalls while main sleeps 300 ms: both progressed,
//              and main woke up (a sleeper's deadline interrupts a spinning thread)
//   hlt        a privileged instruction in app code: SIGSEGV, as on Linux
//   hlt-caught the same with a SIGSEGV handler, which reports si_code SI_KERNEL
//   wait-signal  prints "ready", then waits in pause() for SIGTERM/SIGINT/SIGUSR1/SIGHUP;
//              SIGUSR1 is counted, SIGTERM or SIGINT ends it with a line and status 3
//   spin-signal  prints "ready", then spins without syscalls until a SIGTERM handler runs
// The first five behave identically natively; the last two are driven by the test, which
// signals the process (apus, or the program itself natively).
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t fired;
static volatile sig_atomic_t last;
static volatile sig_atomic_t usr1;

static void on_signal(int sig) {
    if (sig == SIGUSR1) usr1++;
    last = sig;
    fired = 1;
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    char line[64];
    int n = snprintf(line, sizeof line, "SIGSEGV caught, si_code %d\n", info->si_code);
    write(1, line, (size_t)n);
    _exit(4);
}

static void spin_until_fired(void) {
    uint64_t spins = 0;
    while (!fired) spins++;
    printf("interrupted after spinning: %s\n", spins > 0 ? "yes" : "no");
}

static volatile uint64_t counters[2];
static volatile int stop_threads;

static void *spinner(void *arg) {
    int i = (int)(intptr_t)arg;
    while (!stop_threads) counters[i]++;
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "alarm";
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    if (strcmp(mode, "alarm") == 0) {
        sigaction(SIGALRM, &sa, NULL);
        alarm(1);
        spin_until_fired();
        printf("SIGALRM handled: %s\n", last == SIGALRM ? "yes" : "no");
        return 0;
    }
    if (strcmp(mode, "vtalarm") == 0) {
        sigaction(SIGVTALRM, &sa, NULL);
        struct itimerval t = {{0, 0}, {0, 200000}};
        setitimer(ITIMER_VIRTUAL, &t, NULL);
        spin_until_fired();
        printf("SIGVTALRM handled: %s\n", last == SIGVTALRM ? "yes" : "no");
        return 0;
    }
    if (strcmp(mode, "threads") == 0) {
        pthread_t a, b;
        pthread_create(&a, NULL, spinner, (void *)0);
        pthread_create(&b, NULL, spinner, (void *)1);
        struct timespec pause_time = {0, 300000000};
        nanosleep(&pause_time, NULL);
        uint64_t first = counters[0], second = counters[1];
        stop_threads = 1;
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        printf("main woke up; thread 1 progressed: %s; thread 2 progressed: %s\n",
               first > 0 ? "yes" : "no", second > 0 ? "yes" : "no");
        return 0;
    }
    if (strcmp(mode, "hlt") == 0 || strcmp(mode, "hlt-caught") == 0) {
        if (strcmp(mode, "hlt-caught") == 0) {
            struct sigaction segv;
            memset(&segv, 0, sizeof segv);
            segv.sa_sigaction = on_segv;
            segv.sa_flags = SA_SIGINFO;
            sigaction(SIGSEGV, &segv, NULL);
        }
        __asm__ volatile("hlt");
        printf("hlt returned\n");
        return 1;
    }
    if (strcmp(mode, "wait-signal") == 0) {
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        printf("ready\n");
        while (last != SIGTERM && last != SIGINT) pause();
        printf("woke by %s after %d SIGUSR1\n", last == SIGTERM ? "SIGTERM" : "SIGINT", (int)usr1);
        return 3;
    }
    if (strcmp(mode, "spin-signal") == 0) {
        sigaction(SIGTERM, &sa, NULL);
        printf("ready\n");
        spin_until_fired();
        printf("SIGTERM handled while spinning\n");
        return 3;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
