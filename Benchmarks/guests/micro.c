/* micro: per-operation costs measured inside the program, so the same binary can be timed
 * natively and in a VM. Prints "name ns_per_op" lines: the median of 7 rounds each.
 *   getppid         syscall round trip
 *   clock_gettime   CLOCK_MONOTONIC (through the vDSO where there is one)
 *   thread          pthread_create + pthread_join
 *   pipe-pingpong   one byte there and back between two threads over two pipes */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *nothing(void *arg) { return arg; }

static int ping[2], pong[2];
static void *ponger(void *arg) {
    long n = (long)arg;
    char c;
    for (long i = 0; i < n; i++) {
        if (read(ping[0], &c, 1) != 1) break;
        if (write(pong[1], &c, 1) != 1) break;
    }
    return NULL;
}

static double round_of(int which, long n) {
    double t0 = now();
    switch (which) {
    case 0: for (long i = 0; i < n; i++) syscall(SYS_getppid); break;
    case 1: { struct timespec ts; for (long i = 0; i < n; i++) clock_gettime(CLOCK_MONOTONIC, &ts); } break;
    case 2: for (long i = 0; i < n; i++) { pthread_t t; pthread_create(&t, NULL, nothing, NULL); pthread_join(t, NULL); } break;
    case 3: {
        pthread_t t;
        pthread_create(&t, NULL, ponger, (void *)n);
        char c = 'x';
        for (long i = 0; i < n; i++) { write(ping[1], &c, 1); read(pong[0], &c, 1); }
        pthread_join(t, NULL);
    } break;
    }
    return (now() - t0) / n;
}

int main(int argc, char **argv) {
    long scale = argc > 1 ? atol(argv[1]) : 1;
    if (pipe(ping) || pipe(pong)) return 1;
    const char *names[] = { "getppid", "clock_gettime", "thread", "pipe-pingpong" };
    long counts[] = { 20000 * scale, 200000 * scale, 500 * scale, 2000 * scale };
    for (int w = 0; w < 4; w++) {
        double r[7];
        for (int k = 0; k < 7; k++) r[k] = round_of(w, counts[w]);
        qsort(r, 7, sizeof r[0], cmp);
        printf("%s %.1f\n", names[w], r[3]);
    }
    return 0;
}
