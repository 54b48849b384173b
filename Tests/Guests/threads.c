/* threads: pthread create/join, a mutex and condition variables under contention,
 * thread-local storage per thread, gettid distinct per thread, pthread_join's wait on the
 * CLONE_CHILD_CLEARTID futex, sched_yield, and a timed wait that must time out.
 * Usage: threads [NTHREADS [ITERATIONS]] (defaults 8 and 20000). Prints only results that are
 * the same on every run. */
#define _GNU_SOURCE
#include "common.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static long counter;
static int turn;
static int nthreads, iterations;
static __thread long mine = 7;
static long tids[64];

static void *worker(void *arg) {
    long id = (long)arg;
    tids[id] = syscall(SYS_gettid);
    for (int i = 0; i < iterations; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        mine++;
        if (i % 1000 == 0) sched_yield();
    }
    /* Round robin through a condition variable: thread id waits for turn == id. */
    pthread_mutex_lock(&lock);
    while (turn != id) pthread_cond_wait(&turn_changed, &lock);
    turn++;
    pthread_cond_broadcast(&turn_changed);
    pthread_mutex_unlock(&lock);
    return (void *)(mine - 7);
}

int main(int argc, char **argv) {
    nthreads = argc > 1 ? atoi(argv[1]) : 8;
    iterations = argc > 2 ? atoi(argv[2]) : 20000;
    if (nthreads < 1 || nthreads > 64) return 2;
    pthread_t t[64];
    for (long i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) { printf("pthread_create failed\n"); return 1; }
    long per_thread_ok = 1;
    for (int i = 0; i < nthreads; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        if ((long)ret != iterations) per_thread_ok = 0;
    }
    printf("threads: %d, iterations: %d\n", nthreads, iterations);
    check("counter == threads * iterations", counter == (long)nthreads * iterations);
    check("every thread saw its own TLS", per_thread_ok);
    check("main thread TLS untouched", mine == 7);
    check("condition-variable round robin completed", turn == nthreads);
    int distinct = 1;
    for (int i = 0; i < nthreads; i++) {
        if (tids[i] == getpid()) distinct = 0;
        for (int j = 0; j < i; j++) if (tids[i] == tids[j]) distinct = 0;
    }
    check("gettid distinct per thread and from the pid", distinct);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 20 * 1000 * 1000;
    if (deadline.tv_nsec >= 1000000000) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000; }
    pthread_mutex_lock(&lock);
    int rc = pthread_cond_timedwait(&turn_changed, &lock, &deadline);
    pthread_mutex_unlock(&lock);
    check("pthread_cond_timedwait with nobody signalling times out", rc == ETIMEDOUT);
    return finish();
}
