/* timers: alarm and setitimer(ITIMER_REAL) deliver SIGALRM on time, pause and sigsuspend
 * wait for it (sigsuspend's mask goes away afterwards), a sleep is interrupted by it
 * (EINTR), alarm returns the seconds left, and sigtimedwait takes a blocked signal another
 * thread sends, or times out with EAGAIN. */
#define _GNU_SOURCE
#include "common.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) { (void)sig; alarms++; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *send_usr1(void *arg) {
    (void)arg;
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    kill(getpid(), SIGUSR1);
    return NULL;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    check("alarm with none set returns 0", alarm(5) == 0);
    unsigned left = alarm(0);
    check("alarm returns the seconds left (5)", left == 5);

    struct itimerval it = { .it_interval = { 0, 0 }, .it_value = { 0, 30000 } };
    double t0 = now();
    setitimer(ITIMER_REAL, &it, NULL);
    pause();
    double waited = now() - t0;
    check("pause returns after the SIGALRM handler ran", alarms == 1);
    check("setitimer fired after >= 30ms", waited >= 0.029);

    it.it_value.tv_usec = 10000;
    it.it_interval.tv_usec = 10000;
    setitimer(ITIMER_REAL, &it, NULL);
    while (alarms < 4) pause();
    struct itimerval off = { { 0, 0 }, { 0, 0 } }, old;
    setitimer(ITIMER_REAL, &off, &old);
    check("a periodic timer keeps firing", alarms == 4);
    check("getitimer/setitimer report the interval", old.it_interval.tv_usec == 10000);

    it.it_value.tv_usec = 20000;
    it.it_interval.tv_usec = 0;
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec long_sleep = { 5, 0 };
    t0 = now();
    int r = nanosleep(&long_sleep, NULL);
    check("a sleep is interrupted by the timer (EINTR)", r == -1 && errno == EINTR && now() - t0 < 2.0);
    check("and the handler ran", alarms == 5);

    sigset_t block, old_mask, during;
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    sigprocmask(SIG_BLOCK, &block, &old_mask);
    it.it_value.tv_usec = 10000;
    setitimer(ITIMER_REAL, &it, NULL);
    sigemptyset(&during);
    sigsuspend(&during);
    check("sigsuspend waits with its own mask and takes the signal", alarms == 6);
    sigset_t after;
    sigprocmask(SIG_BLOCK, NULL, &after);
    check("the previous mask (SIGALRM blocked) is back", sigismember(&after, SIGALRM));
    sigprocmask(SIG_SETMASK, &old_mask, NULL);

    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    struct timespec short_wait = { 0, 10 * 1000 * 1000 };
    check("sigtimedwait times out with EAGAIN", sigtimedwait(&usr1, NULL, &short_wait) == -1 && errno == EAGAIN);
    pthread_t t;
    pthread_create(&t, NULL, send_usr1, NULL);
    siginfo_t info;
    struct timespec long_wait = { 5, 0 };
    int got = sigtimedwait(&usr1, &info, &long_wait);
    pthread_join(t, NULL);
    check("sigtimedwait takes a signal another thread sent", got == SIGUSR1 && info.si_signo == SIGUSR1 && info.si_code == SI_USER);
    return finish();
}
