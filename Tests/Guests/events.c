/* events: POSIX timers (timer_create with SIGEV_SIGNAL, SIGEV_THREAD_ID and SIGEV_THREAD,
 * si_code/si_value, overruns, gettime, delete), timerfd (periodic counts, poll, absolute
 * realtime deadlines, non-blocking reads), signalfd (reads of blocked signals, readiness),
 * the temporary masks of ppoll, pselect and epoll_pwait, nanosleep's remaining time on
 * EINTR, and the CPU-time clocks and timers (ITIMER_PROF, CLOCK_PROCESS_CPUTIME_ID). */
#define _GNU_SOURCE
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef sigev_notify_thread_id  /* glibc before 2.41 names it only through the union */
#define sigev_notify_thread_id _sigev_un._tid
#endif

static double now(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t usr1_count, timer_code, timer_value, timer_tid, timer_overrun, prof_count;
static void on_usr1(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    usr1_count++;
    timer_code = si->si_code;
    timer_value = si->si_value.sival_int;
    timer_tid = (int)syscall(SYS_gettid);
    timer_overrun = si->si_overrun;
}
static void on_prof(int sig) { (void)sig; prof_count++; }

static volatile int thread_notified;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static void notify_thread(union sigval v) {
    pthread_mutex_lock(&lock);
    thread_notified = v.sival_int;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
}

static volatile int worker_tid;
static volatile int worker_done;
static void *worker(void *arg) {
    (void)arg;
    worker_tid = (int)syscall(SYS_gettid);
    while (!worker_done) {
        struct timespec ts = { 0, 2 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void posix_timers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);

    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    ev.sigev_value.sival_int = 4242;
    timer_t t;
    check("timer_create(CLOCK_MONOTONIC, SIGEV_SIGNAL)", timer_create(CLOCK_MONOTONIC, &ev, &t) == 0);
    struct itimerspec spec = { { 0, 0 }, { 0, 20 * 1000 * 1000 } };
    double t0 = now(CLOCK_MONOTONIC);
    check("timer_settime relative 20 ms", timer_settime(t, 0, &spec, NULL) == 0);
    struct itimerspec cur;
    timer_gettime(t, &cur);
    check("timer_gettime reports the time left", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20 * 1000 * 1000);
    while (usr1_count == 0) pause();
    check("the timer's signal came after >= 20 ms", now(CLOCK_MONOTONIC) - t0 >= 0.019);
    check("si_code is SI_TIMER", timer_code == SI_TIMER);
    check("si_value is sigev_value", timer_value == 4242);
    timer_gettime(t, &cur);
    check("a one-shot timer is disarmed after firing", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);

    /* Periodic, with the signal blocked for a while: expirations merge into an overrun. */
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old);
    usr1_count = 0;
    struct itimerspec periodic = { { 0, 5 * 1000 * 1000 }, { 0, 5 * 1000 * 1000 } };
    timer_settime(t, 0, &periodic, NULL);
    struct timespec wait = { 0, 40 * 1000 * 1000 };
    nanosleep(&wait, NULL);
    check("a blocked periodic timer's signal waits", usr1_count == 0);
    sigprocmask(SIG_SETMASK, &old, NULL);
    struct itimerspec off = { { 0, 0 }, { 0, 0 } };
    timer_settime(t, 0, &off, NULL);
    check("unblocked, it is delivered", usr1_count >= 1);
    check("with the merged expirations in si_overrun", timer_overrun >= 3);
    check("timer_delete", timer_delete(t) == 0);
    check("a deleted timer is gone (EINVAL)", timer_gettime(t, &cur) == -1 && errno == EINVAL);

    /* Absolute CLOCK_REALTIME deadline. */
    usr1_count = 0;
    timer_create(CLOCK_REALTIME, &ev, &t);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    rt.tv_nsec += 15 * 1000 * 1000;
    if (rt.tv_nsec >= 1000000000) { rt.tv_sec++; rt.tv_nsec -= 1000000000; }
    struct itimerspec abs_spec = { { 0, 0 }, rt };
    t0 = now(CLOCK_MONOTONIC);
    timer_settime(t, TIMER_ABSTIME, &abs_spec, NULL);
    while (usr1_count == 0) pause();
    check("an absolute CLOCK_REALTIME timer fires", now(CLOCK_MONOTONIC) - t0 >= 0.013);
    timer_delete(t);

    /* SIGEV_THREAD_ID: the signal goes to the named thread. */
    pthread_t th;
    pthread_create(&th, NULL, worker, NULL);
    while (!worker_tid) sched_yield();
    usr1_count = 0;
    timer_tid = 0;
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_notify_thread_id = worker_tid;
    check("timer_create(SIGEV_THREAD_ID)", timer_create(CLOCK_MONOTONIC, &ev, &t) == 0);
    spec.it_value.tv_nsec = 10 * 1000 * 1000;
    timer_settime(t, 0, &spec, NULL);
    while (usr1_count == 0) { struct timespec ts = { 0, 1000 * 1000 }; nanosleep(&ts, NULL); }
    check("the handler ran on the named thread", timer_tid == worker_tid);
    timer_delete(t);
    worker_done = 1;
    pthread_join(th, NULL);
    ev.sigev_notify = 99;
    check("an unknown sigev_notify is EINVAL", timer_create(CLOCK_MONOTONIC, &ev, &t) == -1 && errno == EINVAL);
    check("a bad clock is EINVAL", timer_create(12345, NULL, &t) == -1 && errno == EINVAL);

    /* SIGEV_THREAD: the C library runs the function on a thread of its own. */
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = notify_thread;
    ev.sigev_value.sival_int = 77;
    check("timer_create(SIGEV_THREAD)", timer_create(CLOCK_MONOTONIC, &ev, &t) == 0);
    timer_settime(t, 0, &spec, NULL);
    pthread_mutex_lock(&lock);
    while (!thread_notified) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    check("the SIGEV_THREAD function ran with sigev_value", thread_notified == 77);
    timer_delete(t);
}

static void timerfds(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    check("timerfd_create", fd >= 0);
    struct itimerspec spec = { { 0, 10 * 1000 * 1000 }, { 0, 10 * 1000 * 1000 } };
    double t0 = now(CLOCK_MONOTONIC);
    timerfd_settime(fd, 0, &spec, NULL);
    uint64_t count = 0, total = 0;
    while (total < 3) {
        if (read(fd, &count, 8) != 8) break;
        total += count;
    }
    check("a periodic timerfd counts expirations", total >= 3 && now(CLOCK_MONOTONIC) - t0 >= 0.029);
    struct pollfd p = { fd, POLLIN, 0 };
    check("poll sees the timerfd readable once it expires", poll(&p, 1, 1000) == 1 && (p.revents & POLLIN));
    struct itimerspec cur;
    timerfd_gettime(fd, &cur);
    check("timerfd_gettime reports the interval", cur.it_interval.tv_nsec == 10 * 1000 * 1000);
    struct itimerspec off = { { 0, 0 }, { 0, 0 } };
    timerfd_settime(fd, 0, &off, NULL);
    int nb = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    check("a non-blocking timerfd read with nothing expired is EAGAIN", read(nb, &count, 8) == -1 && errno == EAGAIN);
    check("a short read buffer is EINVAL", read(nb, &count, 4) == -1 && errno == EINVAL);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    rt.tv_nsec += 15 * 1000 * 1000;
    if (rt.tv_nsec >= 1000000000) { rt.tv_sec++; rt.tv_nsec -= 1000000000; }
    struct itimerspec abs_spec = { { 0, 0 }, rt };
    timerfd_settime(nb, TFD_TIMER_ABSTIME, &abs_spec, NULL);
    int ep = epoll_create1(0);
    struct epoll_event e = { .events = EPOLLIN, .data.u32 = 5 };
    epoll_ctl(ep, EPOLL_CTL_ADD, nb, &e);
    struct epoll_event got;
    check("epoll waits for an absolute realtime timerfd", epoll_wait(ep, &got, 1, 2000) == 1 && got.data.u32 == 5);
    check("and its read returns one expiration", read(nb, &count, 8) == 8 && count == 1);
    check("writing a timerfd is EINVAL", write(nb, &count, 8) == -1 && errno == EINVAL);
    check("timerfd_settime on a non-timerfd is EINVAL", timerfd_settime(ep, 0, &spec, NULL) == -1 && errno == EINVAL);
    close(ep);
    close(nb);
    close(fd);
}

static void signalfds(void) {
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, &old);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    check("signalfd", fd >= 0);
    struct signalfd_siginfo si[2];
    check("nothing pending: EAGAIN", read(fd, si, sizeof si) == -1 && errno == EAGAIN);
    struct pollfd p = { fd, POLLIN, 0 };
    check("poll: not readable with nothing pending", poll(&p, 1, 0) == 0);
    kill(getpid(), SIGUSR2);
    raise(SIGTERM);
    check("poll: readable once one is pending", poll(&p, 1, 0) == 1);
    ssize_t n = read(fd, si, sizeof si);
    check("one read takes both signals", n == 2 * (ssize_t)sizeof si[0]);
    check("the thread's own first: SIGTERM from raise (SI_TKILL)", si[0].ssi_signo == SIGTERM && si[0].ssi_code == SI_TKILL);
    check("then the process's: SIGUSR2 from kill (SI_USER)", si[1].ssi_signo == SIGUSR2 && si[1].ssi_code == SI_USER && si[1].ssi_pid == (uint32_t)getpid());
    sigset_t pending;
    sigpending(&pending);
    check("the signals are no longer pending", !sigismember(&pending, SIGUSR2) && !sigismember(&pending, SIGTERM));
    check("a short buffer is EINVAL", read(fd, si, 64) == -1 && errno == EINVAL);
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    check("signalfd on an existing descriptor changes its mask", signalfd(fd, &mask, 0) == fd);
    raise(SIGTERM);
    check("a signal outside the mask is not readable", read(fd, si, sizeof si) == -1 && errno == EAGAIN);
    struct timespec ts = { 0, 0 };
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    check("sigtimedwait takes the other one", sigtimedwait(&term, NULL, &ts) == SIGTERM);
    close(fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void temporary_masks(void) {
    sigset_t usr1, old, empty;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &usr1, &old);
    usr1_count = 0;
    raise(SIGUSR1);
    check("a blocked signal waits", usr1_count == 0);
    int fds[2];
    pipe(fds);
    struct pollfd p = { fds[0], POLLIN, 0 };
    struct timespec ts = { 1, 0 };
    int r = ppoll(&p, 1, &ts, &empty);
    check("ppoll with an empty mask takes the pending signal (EINTR)", r == -1 && errno == EINTR && usr1_count == 1);
    sigset_t now_mask;
    sigprocmask(SIG_BLOCK, NULL, &now_mask);
    check("and the caller's mask is back", sigismember(&now_mask, SIGUSR1));

    raise(SIGUSR1);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fds[0], &rd);
    r = pselect(fds[0] + 1, &rd, NULL, NULL, &ts, &empty);
    check("pselect with an empty mask takes it too", r == -1 && errno == EINTR && usr1_count == 2);

    raise(SIGUSR1);
    int ep = epoll_create1(0);
    struct epoll_event e = { .events = EPOLLIN }, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &e);
    r = epoll_pwait(ep, &got, 1, 1000, &empty);
    check("epoll_pwait with an empty mask takes it too", r == -1 && errno == EINTR && usr1_count == 3);

    write(fds[1], "x", 1);
    raise(SIGUSR1);
    r = ppoll(&p, 1, &ts, &usr1);
    check("ppoll with the signal blocked returns the ready descriptor", r == 1 && usr1_count == 3);
    sigprocmask(SIG_SETMASK, &old, NULL);
    check("unblocking delivers it", usr1_count == 4);
    close(ep);
    close(fds[0]);
    close(fds[1]);
}

static void edge_triggered(void) {
    int fds[2];
    pipe(fds);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = { .events = EPOLLIN | EPOLLET, .data.u32 = 9 }, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &e);
    check("EPOLLET: nothing written, nothing reported", epoll_wait(ep, &got, 1, 0) == 0);
    write(fds[1], "ab", 2);
    check("EPOLLET: a write is reported", epoll_wait(ep, &got, 1, 0) == 1 && got.data.u32 == 9);
    check("EPOLLET: not again while nothing new happens", epoll_wait(ep, &got, 1, 0) == 0);
    write(fds[1], "c", 1);
    check("EPOLLET: a new write is reported again", epoll_wait(ep, &got, 1, 0) == 1);
    char buf[8];
    check("all three bytes are there", read(fds[0], buf, sizeof buf) == 3);
    check("EPOLLET: reading drains without an event", epoll_wait(ep, &got, 1, 0) == 0);
    e.events = EPOLLIN | EPOLLONESHOT;
    epoll_ctl(ep, EPOLL_CTL_MOD, fds[0], &e);
    write(fds[1], "d", 1);
    check("EPOLLONESHOT: reported once", epoll_wait(ep, &got, 1, 0) == 1 && epoll_wait(ep, &got, 1, 0) == 0);
    epoll_ctl(ep, EPOLL_CTL_MOD, fds[0], &e);
    check("EPOLLONESHOT: EPOLL_CTL_MOD arms it again", epoll_wait(ep, &got, 1, 0) == 1);
    struct epoll_event out = { .events = EPOLLOUT | EPOLLET, .data.u32 = 10 };
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[1], &out);
    epoll_ctl(ep, EPOLL_CTL_DEL, fds[0], NULL);
    check("EPOLLET|EPOLLOUT: writable reported once", epoll_wait(ep, &got, 1, 0) == 1 && epoll_wait(ep, &got, 1, 0) == 0);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    static char block[4096];
    while (write(fds[1], block, sizeof block) > 0) {}
    epoll_wait(ep, &got, 1, 0);
    check("EPOLLET|EPOLLOUT: a full pipe is not writable", epoll_wait(ep, &got, 1, 0) == 0);
    read(fds[0], block, sizeof block);
    check("EPOLLET|EPOLLOUT: reported again once a read makes room", epoll_wait(ep, &got, 1, 0) == 1 && got.data.u32 == 10);
    close(ep);
    close(fds[0]);
    close(fds[1]);
}

static void sleep_remainder(void) {
    struct itimerval it = { { 0, 0 }, { 0, 30 * 1000 } };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prof;  /* any handler: the sleep must end with EINTR */
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec req = { 1, 0 }, rem = { 0, 0 };
    int r = nanosleep(&req, &rem);
    double left = rem.tv_sec + rem.tv_nsec / 1e9;
    check("nanosleep interrupted: EINTR", r == -1 && errno == EINTR);
    check("rem holds the time left (0.5 s < rem < 1 s)", left > 0.5 && left < 1.0);
    setitimer(ITIMER_REAL, &it, NULL);
    rem.tv_sec = 0; rem.tv_nsec = 0;
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
    left = rem.tv_sec + rem.tv_nsec / 1e9;
    check("clock_nanosleep relative: EINTR and rem", r == EINTR && left > 0.5 && left < 1.0);
    prof_count = 0;
}

static void cpu_clocks(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prof;
    sigaction(SIGPROF, &sa, NULL);
    double cpu0 = now(CLOCK_PROCESS_CPUTIME_ID);
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    double slept = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    check("sleeping uses (almost) no CPU time", slept < 0.02);
    struct itimerval it = { { 0, 0 }, { 0, 20 * 1000 } };
    setitimer(ITIMER_PROF, &it, NULL);
    double t0 = now(CLOCK_MONOTONIC);
    /* Busy in user code, with a syscall now and then (the timer fires at one on pvm). */
    volatile unsigned long spin = 0;
    while (prof_count == 0 && now(CLOCK_MONOTONIC) - t0 < 5) {
        for (int i = 0; i < 10000; i++) spin++;
        getppid();
    }
    check("ITIMER_PROF fires after 20 ms of CPU time", prof_count == 1);
    check("CLOCK_THREAD_CPUTIME_ID advances while busy", now(CLOCK_THREAD_CPUTIME_ID) > 0.015);
}

int main(void) {
    posix_timers();
    timerfds();
    signalfds();
    temporary_masks();
    edge_triggered();
    sleep_remainder();
    cpu_clocks();
    return finish();
}
