/* procbench: the cost of making a process, measured inside one static program so that the
 * same binary can be timed natively and in a VM. `procbench [SCALE]` prints "name µs" lines,
 * the median of 7 rounds each, per iteration:
 *   fork    fork, the child _exits at once, waitpid
 *   spawn   posix_spawn (vfork+exec under glibc and musl) of this program as a static
 *           hello (`procbench hello`, stdout to /dev/null), waitpid
 * A failed fork or spawn prints "name error TEXT" instead (the other one still runs) and
 * the program exits 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static char self[4096];

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char failure[128];

/* One round of n iterations; the time per iteration, or -1 with `failure` set. */
static double round_of(int which, long n) {
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    char *argv[] = { self, "hello", NULL };
    double t0 = now_us();
    for (long i = 0; i < n; i++) {
        pid_t pid;
        int status;
        if (which == 0) {
            pid = fork();
            if (pid < 0) { snprintf(failure, sizeof failure, "fork: %s", strerror(errno)); return -1; }
            if (pid == 0) _exit(0);
        } else {
            int err = posix_spawn(&pid, self, &quiet, NULL, argv, environ);
            if (err) { snprintf(failure, sizeof failure, "posix_spawn: %s", strerror(err)); return -1; }
        }
        if (waitpid(pid, &status, 0) != pid) { snprintf(failure, sizeof failure, "waitpid: %s", strerror(errno)); return -1; }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (WIFEXITED(status)) snprintf(failure, sizeof failure, "the child exited %d", WEXITSTATUS(status));
            else snprintf(failure, sizeof failure, "the child died of signal %d", WTERMSIG(status));
            return -1;
        }
    }
    double per = (now_us() - t0) / n;
    posix_spawn_file_actions_destroy(&quiet);
    return per;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "hello") == 0) {
        puts("hello");
        return 0;
    }
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) { perror("readlink /proc/self/exe"); return 1; }
    self[len] = 0;
    long scale = argc > 1 ? atol(argv[1]) : 1;
    if (scale < 1) scale = 1;
    const char *names[] = { "fork", "spawn" };
    int failed = 0;
    for (int w = 0; w < 2; w++) {
        double r[7];
        int k;
        for (k = 0; k < 7; k++) {
            r[k] = round_of(w, 100 * scale);
            if (r[k] < 0) break;
        }
        if (k < 7) {
            printf("%s error %s (in round %d of 7)\n", names[w], failure, k + 1);
            failed = 1;
            continue;
        }
        qsort(r, 7, sizeof r[0], cmp);
        printf("%s %.1f\n", names[w], r[3]);
    }
    return failed;
}
