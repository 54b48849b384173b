/* forkbomb: forks until fork fails, bounded. `forkbomb [BOUND]` (default 100000) forks
 * children that block on a pipe, at most BOUND of them, until fork fails; then releases and
 * reaps them all and checks that the system still works: fork+exit+wait again, a 64 MiB
 * allocation written through, and an exec of itself.
 *
 * Run it natively ONLY under a process limit that applies (not as root, which RLIMIT_NPROC
 * does not bound): `setpriv --reuid=65534 --regid=65534 --clear-groups prlimit --nproc=200
 * ./forkbomb.musl 2000`. In a VM the VM's own process limit must stop it with EAGAIN.
 *
 * Output (deterministic: no counts): one line per check, "NAME: ok" or "NAME: FAIL ...",
 * and "fork failed with E..." naming the errno. Exit 0 only if every check passed. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void check(const char *name, int ok, const char *detail) {
    printf("%s: %s%s\n", name, ok ? "ok" : "FAIL ", ok ? "" : detail);
    fflush(stdout);
    if (!ok) failures++;
}

static const char *errno_name(int e) {
    switch (e) {
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case ENOSYS: return "ENOSYS";
    default: return "another errno";
    }
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "exec-check") == 0) return 33;
    long bound = argc > 1 ? atol(argv[1]) : 100000;
    if (bound < 1) {
        fprintf(stderr, "usage: forkbomb [BOUND >= 1]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    alarm(300);
    int hold[2];
    if (pipe(hold) != 0) { perror("pipe"); return 2; }

    long forked = 0;
    int fork_errno = 0;
    while (forked < bound) {
        pid_t pid = fork();
        if (pid < 0) { fork_errno = errno; break; }
        if (pid == 0) {
            /* Blocks until the parent closes its write end; at most 5 minutes. */
            alarm(300);
            close(hold[1]);
            char c;
            while (read(hold[0], &c, 1) < 0 && errno == EINTR) {}
            _exit(0);
        }
        forked++;
    }
    check("fork failed before the bound", fork_errno != 0, "every fork up to the bound succeeded");
    printf("fork failed with %s\n", fork_errno ? errno_name(fork_errno) : "nothing");
    check("at least 50 children were running at once", forked >= 50, "fewer than 50 forks succeeded");

    close(hold[1]);
    long reaped = 0, clean = 0;
    int status;
    pid_t r;
    while ((r = wait(&status)) > 0 || (r < 0 && errno == EINTR)) {
        if (r < 0) continue;
        reaped++;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) clean++;
    }
    check("every child was reaped", reaped == forked && errno == ECHILD, "wait stopped before the last child");
    check("every child exited 0", clean == forked, "some child died or failed");

    int works = 1;
    for (int i = 0; i < 3 && works; i++) {
        pid_t pid = fork();
        if (pid < 0) { works = 0; break; }
        if (pid == 0) _exit(7);
        works = waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7;
    }
    check("fork, exit and wait work again after reaping", works, "a fork or its wait failed");

    size_t size = 64 << 20;
    unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int memory_ok = p != MAP_FAILED;
    if (memory_ok) {
        for (size_t i = 0; i < size; i += 4096) p[i] = (unsigned char)(i >> 12);
        for (size_t i = 0; i < size && memory_ok; i += 4096) memory_ok = p[i] == (unsigned char)(i >> 12);
        munmap(p, size);
    }
    check("a 64 MiB allocation works after reaping", memory_ok, "mmap or its contents failed");

    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    int exec_ok = 0;
    if (n > 0) {
        self[n] = 0;
        pid_t pid = fork();
        if (pid == 0) {
            char *args[] = { self, "exec-check", NULL };
            execv(self, args);
            _exit(127);
        }
        exec_ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 33;
    }
    check("fork and exec of a program work after reaping", exec_ok, "the exec'd program did not exit 33");
    printf("failures: %d\n", failures);
    return failures ? 1 : 0;
}
