/* procs: processes by Linux's rules — fork, vfork, posix_spawn, execve/execveat, #! scripts,
 * process-shared semaphores (anonymous shared memory and /dev/shm), wait4/waitpid/waitid,
 * exit statuses and deaths by signal, SIGCHLD, zombies, orphans and
 * the child subreaper, PR_SET_PDEATHSIG, kill, process groups and sessions, and the errors
 * of exec and wait.
 *
 * Every check prints one line, "NAME: ok" or "NAME: FAIL DETAILS", and the program exits 0
 * only when all passed. No pid, address or time is printed, only relations between them, so
 * the output is the same natively and in a VM whether the program is pid 1 there or not.
 * While a child prints its own lines the parent is blocked in waitpid, so the order of lines
 * is fixed; lines go out with write(2) (no stdio buffer that a fork would duplicate).
 * A check that runs in a child process reports its failures in its exit status.
 *
 * The program re-executes itself (the path readlink(/proc/self/exe) gives) in helper modes,
 * selected by argv[1]: "exit-with N", "echo ARGS...", "check-args ...", "check-exec-state
 * FD FD", "produce N", "consume", and as the interpreter of the #! scripts it writes into a
 * private directory under /tmp. alarm(60) turns a hang into a failure (status 142). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char self[4096];      /* this program's absolute path, from /proc/self/exe */
static char tmpdir[64];      /* a private directory under /tmp */
static int failures;

/* MARK: output */

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void out(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
    if (n > 0) write_all(1, line, (size_t)n);
}

static void ok(const char *name) { out("%s: ok\n", name); }

static void fail(const char *name, const char *fmt, ...) {
    char detail[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    out("%s: FAIL %s\n", name, detail);
    failures++;
}

#define CHECK(name, cond, ...) do { if (cond) ok(name); else fail(name, __VA_ARGS__); } while (0)

/* A wait status in words; four rotating buffers so one message can describe several. */
static const char *describe(int status) {
    static char buffers[4][96];
    static int next;
    char *b = buffers[next++ & 3];
    if (status == -1) snprintf(b, 96, "no status (wait failed: %s)", strerror(errno));
    else if (WIFEXITED(status)) snprintf(b, 96, "exited %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(b, 96, "killed by signal %d", WTERMSIG(status));
    else if (WIFSTOPPED(status)) snprintf(b, 96, "stopped by signal %d", WSTOPSIG(status));
    else snprintf(b, 96, "status 0x%x", status);
    return b;
}

/* MARK: process helpers */

/* waitpid(pid) to the end (EINTR retried): the status, or -1 with errno set. */
static int reap(pid_t pid) {
    int status;
    pid_t r;
    do r = waitpid(pid, &status, 0); while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    if (r != pid) { errno = ESRCH; return -1; }
    return status;
}

static int exited_with(int status, int code) { return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code; }
static int killed_by(int status, int sig) { return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == sig; }

static void expect_exit(const char *name, int status, int code) {
    CHECK(name, exited_with(status, code), "expected exit %d, got %s", code, describe(status));
}

static void expect_signal(const char *name, int status, int sig) {
    CHECK(name, killed_by(status, sig), "expected death by signal %d, got %s", sig, describe(status));
}

static void sleep_ms(long ms) {
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) < 0 && errno == EINTR) {}
}

static volatile sig_atomic_t idle_stop;
static void on_usr1_stop(int sig) { (void)sig; idle_stop = 1; }

/* A child that waits to be signalled: at most 30 s (so nothing outlives a broken run),
 * leaving early with status 0 once idle_stop is set by a handler. */
static void idle(void) {
    for (int i = 0; i < 300 && !idle_stop; i++) {
        struct timespec t = { 0, 100 * 1000000L };
        nanosleep(&t, NULL);
    }
    _exit(idle_stop ? 0 : 111);
}

/* fork, or a FAIL line naming the check. The child gets its own alarm (alarms are not
 * inherited by fork, but kept across execve), so that nothing a broken run leaves blocked
 * outlives it by more than 30 s. */
static pid_t fork_for(const char *name) {
    pid_t pid = fork();
    if (pid < 0) fail(name, "fork: %s", strerror(errno));
    if (pid == 0) alarm(30);
    return pid;
}

/* Runs fn in a child process (its lines go to the same stdout) and adds the child's
 * failures, which it reports as its exit status, to ours. */
static void in_child(const char *name, void (*fn)(void)) {
    pid_t pid = fork_for(name);
    if (pid < 0) return;
    if (pid == 0) {
        failures = 0;
        fn();
        _exit(failures > 100 ? 100 : failures);
    }
    int status = reap(pid);
    if (status == -1 || !WIFEXITED(status)) fail(name, "the child running these checks: %s", describe(status));
    else failures += WEXITSTATUS(status);
}

/* execve of this program with argv {argv0, args..., NULL} and the given environment;
 * returns only on failure (errno set). */
static void exec_self(char *const argv[], char *const envp[]) {
    execve(self, argv, envp);
}

static void write_file(const char *path, const char *text, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) { fail("setup", "create %s: %s", path, strerror(errno)); return; }
    write_all(fd, text, strlen(text));
    close(fd);
    chmod(path, mode);
}

static ssize_t read_full(int fd, char *buf, size_t size) {
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* MARK: helper modes (this program re-executed) */

static int mode_check_args(int argc, char **argv) {
    /* argv: "procs-argv0" "check-args" PID PPID "one" "" "two words" "ünï" */
    static const char *const expected_env[] = { "A=1", "EMPTY=", "SPACE=a b", "UTF=ü✓", NULL };
    int bad = 0;
    if (argc != 8) { dprintf(2, "check-args: argc %d\n", argc); return 1; }
    const char *expected_argv[] = { "procs-argv0", "check-args", argv[2], argv[3], "one", "", "two words", "ünï" };
    for (int i = 0; i < 8; i++)
        if (strcmp(argv[i], expected_argv[i]) != 0) { dprintf(2, "check-args: argv[%d] '%s'\n", i, argv[i]); bad = 1; }
    int n = 0;
    for (; environ[n]; n++)
        if (n >= 4 || strcmp(environ[n], expected_env[n]) != 0) { dprintf(2, "check-args: environ[%d] '%s'\n", n, environ[n]); bad = 1; }
    if (n != 4) { dprintf(2, "check-args: %d variables\n", n); bad = 1; }
    if (getpid() != (pid_t)atol(argv[2])) { dprintf(2, "check-args: the pid changed across execve\n"); bad = 1; }
    if (getppid() != (pid_t)atol(argv[3])) { dprintf(2, "check-args: the parent changed across execve\n"); bad = 1; }
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    if (!execfn || strcmp(execfn, self) != 0) { dprintf(2, "check-args: AT_EXECFN '%s'\n", execfn ? execfn : "(none)"); bad = 1; }
    return bad;
}

/* Exit status bits: 1 the close-on-exec descriptor survived, 2 the other one was closed,
 * 4 a caught signal's handler survived, 8 an ignored signal stopped being ignored, 16 the
 * blocked mask was not kept, 32 the kept descriptor could not be written. */
static int mode_check_exec_state(char **argv) {
    int cloexec_fd = atoi(argv[2]), kept_fd = atoi(argv[3]), bits = 0;
    if (!(fcntl(cloexec_fd, F_GETFD) == -1 && errno == EBADF)) bits |= 1;
    int flags = fcntl(kept_fd, F_GETFD);
    if (flags == -1 || (flags & FD_CLOEXEC)) bits |= 2;
    struct sigaction sa;
    if (sigaction(SIGUSR1, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL) bits |= 4;
    if (sigaction(SIGUSR2, NULL, &sa) != 0 || sa.sa_handler != SIG_IGN) bits |= 8;
    sigset_t mask;
    if (sigprocmask(SIG_BLOCK, NULL, &mask) != 0 || !sigismember(&mask, SIGWINCH)) bits |= 16;
    if (write(kept_fd, "kept", 4) != 4) bits |= 32;
    return bits;
}

static int mode_produce(long n) {
    char line[32];
    for (long i = 1; i <= n; i++) {
        int len = snprintf(line, sizeof line, "%ld\n", i);
        write_all(1, line, (size_t)len);
    }
    return 0;
}

static int mode_consume(void) {
    char buf[4096];
    long lines = 0, sum = 0, value = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') { lines++; sum += value; value = 0; }
            else value = value * 10 + (buf[i] - '0');
        }
    }
    out("lines=%ld sum=%ld\n", lines, sum);
    return n == 0 ? 0 : 1;
}

/* As the interpreter of a #! script: Linux passes {interpreter, [the one optional
 * argument,] script path as given to execve, the remaining execve arguments}. */
static int mode_interpreter(int argc, char **argv, int with_argument) {
    int base = with_argument ? 2 : 1;
    if (argc != base + 3) { dprintf(2, "interpreter: argc %d\n", argc); return 1; }
    if (strcmp(argv[0], self) != 0) { dprintf(2, "interpreter: argv[0] '%s'\n", argv[0]); return 1; }
    if (strcmp(argv[base + 1], "first") != 0 || strcmp(argv[base + 2], "second arg") != 0) {
        dprintf(2, "interpreter: arguments '%s' '%s'\n", argv[base + 1], argv[base + 2]);
        return 1;
    }
    const char *slash = strrchr(argv[base], '/');
    if (!slash || strcmp(slash + 1, with_argument ? "script-arg" : "script-noarg") != 0) {
        dprintf(2, "interpreter: script path '%s'\n", argv[base]);
        return 1;
    }
    return 0;
}

static int helper_mode(int argc, char **argv) {
    const char *mode = argv[1];
    if (strcmp(mode, "exit-with") == 0 && argc == 3) return atoi(argv[2]);
    if (strcmp(mode, "echo") == 0) {
        for (int i = 2; i < argc; i++) out("%s%s", argv[i], i + 1 < argc ? "|" : "\n");
        return 0;
    }
    if (strcmp(mode, "check-args") == 0) return mode_check_args(argc, argv);
    if (strcmp(mode, "check-exec-state") == 0 && argc == 4) return mode_check_exec_state(argv);
    if (strcmp(mode, "produce") == 0 && argc == 3) return mode_produce(atol(argv[2]));
    if (strcmp(mode, "consume") == 0) return mode_consume();
    if (strcmp(mode, "as interpreter") == 0) return mode_interpreter(argc, argv, 1);
    const char *slash = strrchr(mode, '/');
    if (slash && strcmp(slash + 1, "script-noarg") == 0) return mode_interpreter(argc, argv, 0);
    dprintf(2, "procs: unknown mode '%s'\n", mode);
    return 2;
}

/* MARK: fork */

static int global_value = 1;

static void test_fork_basics(void) {
    pid_t parent = getpid();
    int report[2];
    if (pipe(report) != 0) { fail("fork-basics", "pipe: %s", strerror(errno)); return; }
    pid_t pid = fork_for("fork-basics");
    if (pid < 0) return;
    if (pid == 0) {
        long facts[2] = { getpid(), getppid() };
        write(report[1], facts, sizeof facts);
        _exit(0);
    }
    close(report[1]);
    long facts[2] = { 0, 0 };
    ssize_t n = read_full(report[0], (char *)facts, sizeof facts);
    close(report[0]);
    int status = reap(pid);
    CHECK("fork: the child's pid is fork's return value", n == sizeof facts && facts[0] == pid, "child pid %ld vs %ld", facts[0], (long)pid);
    CHECK("fork: child pid != parent pid", pid != parent, "fork returned the parent's pid");
    CHECK("fork: getppid() in the child == parent", n == sizeof facts && facts[1] == parent, "getppid() is not the parent");
    expect_exit("fork: the child's exit status reaches waitpid", status, 0);
}

static void test_fork_memory(void) {
    const size_t heap_size = 4 << 20;
    unsigned char *heap = malloc(heap_size);
    unsigned char stack_bytes[256];
    volatile long *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char path[128];
    snprintf(path, sizeof path, "%s/shared-file", tmpdir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *file_map = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, 4096) == 0) file_map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (!heap || shared == MAP_FAILED || file_map == MAP_FAILED) {
        fail("fork-memory", "setup: malloc/mmap: %s", strerror(errno));
        return;
    }
    for (size_t i = 0; i < heap_size; i++) heap[i] = (unsigned char)(i * 7);
    for (size_t i = 0; i < sizeof stack_bytes; i++) stack_bytes[i] = (unsigned char)i;
    global_value = 1;
    shared[0] = 1;
    memcpy(file_map, "parent", 7);

    int go[2];
    if (pipe(go) != 0) { fail("fork-memory", "pipe: %s", strerror(errno)); return; }
    pid_t pid = fork_for("fork-memory");
    if (pid < 0) return;
    if (pid == 0) {
        /* Bits: 1 the copy differs from the parent's memory at fork, 2 a parent's write after
         * the fork showed through. */
        int bits = 0;
        for (size_t i = 0; i < heap_size; i++) if (heap[i] != (unsigned char)(i * 7)) { bits |= 1; break; }
        for (size_t i = 0; i < sizeof stack_bytes; i++) if (stack_bytes[i] != (unsigned char)i) { bits |= 1; break; }
        if (global_value != 1 || shared[0] != 1 || strcmp(file_map, "parent") != 0) bits |= 1;
        char token;
        read(go[0], &token, 1);
        if (global_value != 1 || heap[12345] != (unsigned char)(12345 * 7)) bits |= 2;
        global_value = 2;
        memset(heap, 0xAA, heap_size);
        memset(stack_bytes, 0xBB, sizeof stack_bytes);
        shared[0] = 0xC0FFEE;
        memcpy(file_map, "child!", 7);
        _exit(bits);
    }
    close(go[0]);
    global_value = 3;                         /* after the fork: the child must not see it */
    heap[12345] = 0x55;
    write(go[1], "g", 1);
    close(go[1]);
    int status = reap(pid);
    global_value = 1;
    heap[12345] = (unsigned char)(12345 * 7);

    CHECK("fork: the child starts with a copy of the parent's memory", status != -1 && WIFEXITED(status) && !(WEXITSTATUS(status) & 1),
          "child saw %s", describe(status));
    CHECK("fork: a parent's write after fork is not seen by the child", status != -1 && WIFEXITED(status) && !(WEXITSTATUS(status) & 2),
          "child saw %s", describe(status));
    int heap_intact = 1;
    for (size_t i = 0; i < heap_size; i++) if (heap[i] != (unsigned char)(i * 7)) { heap_intact = 0; break; }
    int stack_intact = 1;
    for (size_t i = 0; i < sizeof stack_bytes; i++) if (stack_bytes[i] != (unsigned char)i) { stack_intact = 0; break; }
    CHECK("fork: the child's writes to globals, heap and stack are not seen by the parent",
          global_value == 1 && heap_intact && stack_intact, "global %d heap %d stack %d", global_value, heap_intact, stack_intact);
    CHECK("fork: MAP_SHARED|MAP_ANONYMOUS memory is shared", shared[0] == 0xC0FFEE, "parent reads %#lx", (long)shared[0]);
    char from_file[8] = { 0 };
    pread(fd, from_file, 7, 0);
    CHECK("fork: a MAP_SHARED file mapping is shared (in memory and in the file)",
          strcmp(file_map, "child!") == 0 && strcmp(from_file, "child!") == 0, "mapping '%.7s' file '%.7s'", file_map, from_file);
    munmap((void *)shared, 4096);
    munmap(file_map, 4096);
    close(fd);
    unlink(path);
    free(heap);
}

/* The parent and the child share one open file description: its offset and status flags. */
static void test_fork_shared_description(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/offset-file", tmpdir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) { fail("fork: shared file offset", "open: %s", strerror(errno)); return; }
    write(fd, "abc", 3);
    pid_t pid = fork_for("fork: shared file offset");
    if (pid < 0) return;
    if (pid == 0) {
        write(fd, "defgh", 5);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_APPEND);
        _exit(0);
    }
    int status = reap(pid);
    off_t offset = lseek(fd, 0, SEEK_CUR);
    int flags = fcntl(fd, F_GETFL);
    expect_exit("fork: writer child exits 0", status, 0);
    CHECK("fork: the file offset is shared with the child", offset == 8, "offset %ld after the child wrote 5 bytes at 3", (long)offset);
    CHECK("fork: file status flags (O_APPEND) are shared with the child", flags != -1 && (flags & O_APPEND), "flags %#x", flags);
    close(fd);
    unlink(path);
}

/* Process-shared semaphores (futexes on shared pages), through MAP_SHARED|MAP_ANONYMOUS
 * memory inherited by fork and through a named semaphore (sem_open: a file in /dev/shm),
 * each both ways: the parent asleep in sem_timedwait (3 s bound) until a child posts, and a
 * child asleep in an untimed sem_wait (its alarm bounds it: 5 s) until the parent posts. */
static void test_shared_semaphores(void) {
    sem_t *anonymous = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char name[64];
    snprintf(name, sizeof name, "/procs-%ld", (long)getpid());
    sem_unlink(name);
    sem_t *named = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
    CHECK("sem_open creates a named semaphore (/dev/shm)", named != SEM_FAILED, "%s", strerror(errno));
    if (anonymous == MAP_FAILED || sem_init(anonymous, 1, 0) != 0) {
        fail("semaphores", "setup: %s", strerror(errno));
        return;
    }
    static const char *const labels[2][2] = {
        { "semaphore in MAP_SHARED|MAP_ANONYMOUS memory: a child's post wakes the parent",
          "semaphore in MAP_SHARED|MAP_ANONYMOUS memory: the parent's post wakes a child" },
        { "named semaphore (sem_open): a child's post wakes the parent",
          "named semaphore (sem_open): the parent's post wakes a child" },
    };
    for (int which = 0; which < 2; which++) {
        sem_t *sem = which == 0 ? anonymous : named;
        if (sem == SEM_FAILED) continue;
        for (int child_waits = 0; child_waits < 2; child_waits++) {
            const char *label = labels[which][child_waits];
            pid_t pid = fork_for(label);
            if (pid < 0) continue;
            if (pid == 0) {
                if (child_waits) {
                    alarm(5);
                    int r;
                    do r = sem_wait(sem); while (r < 0 && errno == EINTR);
                    _exit(r == 0 ? 0 : 1);
                }
                sleep_ms(50);
                _exit(sem_post(sem) == 0 ? 0 : 1);
            }
            if (child_waits) {
                sleep_ms(50);
                int posted = sem_post(sem) == 0;
                int status = reap(pid);
                CHECK(label, posted && exited_with(status, 0), "the waiting child %s", describe(status));
                continue;
            }
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_sec += 3;
            int r;
            do r = sem_timedwait(sem, &deadline); while (r < 0 && errno == EINTR);
            int woken = r == 0, err = errno;
            int status = reap(pid);
            CHECK(label, woken && exited_with(status, 0), "sem_timedwait: %s, poster %s",
                  woken ? "woken" : err == ETIMEDOUT ? "timed out" : strerror(err), describe(status));
        }
    }
    if (named != SEM_FAILED) { sem_close(named); sem_unlink(name); }
    munmap(anonymous, 4096);
}

/* MARK: vfork and posix_spawn */

static volatile int vfork_child_ran;
static volatile pid_t vfork_child_ppid;

static void test_vfork(void) {
    pid_t parent = getpid();
    vfork_child_ran = 0;
    pid_t pid = vfork();
    if (pid < 0) { fail("vfork", "vfork: %s", strerror(errno)); return; }
    if (pid == 0) {
        /* Shares the parent's memory; the parent stays suspended until _exit. */
        struct timespec t = { 0, 50 * 1000000L };
        nanosleep(&t, NULL);
        vfork_child_ppid = getppid();
        vfork_child_ran = 1;
        _exit(9);
    }
    int ran = vfork_child_ran;
    int status = reap(pid);
    CHECK("vfork: the parent is suspended until the child's _exit (memory shared)", ran == 1, "the child's write was not seen on return");
    CHECK("vfork: getppid() in the child == parent", vfork_child_ppid == parent, "getppid() is not the parent");
    expect_exit("vfork: _exit status 9", status, 9);

    char *argv[] = { self, "exit-with", "5", NULL };
    pid = vfork();
    if (pid < 0) { fail("vfork+execve", "vfork: %s", strerror(errno)); return; }
    if (pid == 0) {
        exec_self(argv, environ);
        _exit(127);
    }
    expect_exit("vfork+execve: the exec'd child's status", reap(pid), 5);
}

static void test_posix_spawn(void) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) { fail("posix_spawn", "pipe: %s", strerror(errno)); return; }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, p[1], 1);
    char *argv[] = { self, "echo", "spawned", "with two words", "", "ünï", NULL };
    pid_t pid = -1;
    int err = posix_spawn(&pid, self, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(p[1]);
    char buf[256] = { 0 };
    read_full(p[0], buf, sizeof buf - 1);
    close(p[0]);
    CHECK("posix_spawn: of itself succeeds", err == 0, "posix_spawn: %s", strerror(err));
    if (err != 0) return;
    CHECK("posix_spawn: argv and a dup2'd stdout reach the child", strcmp(buf, "spawned|with two words||ünï\n") == 0, "got '%s'", buf);
    expect_exit("posix_spawn: the child's status", reap(pid), 0);

    char missing[128];
    snprintf(missing, sizeof missing, "%s/no-such-program", tmpdir);
    char *argv2[] = { missing, NULL };
    err = posix_spawn(&pid, missing, NULL, NULL, argv2, environ);
    CHECK("posix_spawn: of a missing file returns ENOENT", err == ENOENT, "returned %d (%s)", err, strerror(err));
    if (err == 0) reap(pid);
}

/* MARK: execve */

static void test_execve_args(void) {
    pid_t parent = getpid();
    pid_t pid = fork_for("execve: argv and envp");
    if (pid < 0) return;
    if (pid == 0) {
        char pid_text[24], ppid_text[24];
        snprintf(pid_text, sizeof pid_text, "%ld", (long)getpid());
        snprintf(ppid_text, sizeof ppid_text, "%ld", (long)parent);
        char *argv[] = { "procs-argv0", "check-args", pid_text, ppid_text, "one", "", "two words", "ünï", NULL };
        char *envp[] = { "A=1", "EMPTY=", "SPACE=a b", "UTF=ü✓", NULL };
        exec_self(argv, envp);
        _exit(127);
    }
    int status = reap(pid);
    CHECK("execve: argv, envp, AT_EXECFN, pid and parent as given", exited_with(status, 0), "checker %s (details on stderr)", describe(status));
}

static void test_execve_state(void) {
    const char *name = "execve: state across exec";
    pid_t pid;
    int cloexec_pipe[2], kept_pipe[2];
    if (pipe2(cloexec_pipe, O_CLOEXEC) != 0 || pipe(kept_pipe) != 0) { fail(name, "pipe: %s", strerror(errno)); return; }
    pid = fork_for(name);
    if (pid < 0) return;
    if (pid == 0) {
        struct sigaction sa = { .sa_handler = on_usr1_stop };
        sigaction(SIGUSR1, &sa, NULL);
        signal(SIGUSR2, SIG_IGN);
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGWINCH);
        sigprocmask(SIG_BLOCK, &block, NULL);
        close(kept_pipe[0]);
        char cloexec_fd[16], kept_fd[16];
        snprintf(cloexec_fd, sizeof cloexec_fd, "%d", cloexec_pipe[1]);
        snprintf(kept_fd, sizeof kept_fd, "%d", kept_pipe[1]);
        char *argv[] = { self, "check-exec-state", cloexec_fd, kept_fd, NULL };
        exec_self(argv, environ);
        _exit(127);
    }
    close(cloexec_pipe[1]);
    close(kept_pipe[1]);
    char buf[8] = { 0 };
    read_full(kept_pipe[0], buf, 4);
    char none;
    ssize_t n = read(cloexec_pipe[0], &none, 1);
    close(kept_pipe[0]);
    close(cloexec_pipe[0]);
    int status = reap(pid);
    int bits = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) < 64 ? WEXITSTATUS(status) : -1;
    if (bits == -1) { fail(name, "checker %s", describe(status)); return; }
    CHECK("execve: close-on-exec descriptors are closed", !(bits & 1) && n == 0, "bits %#x, read %zd", bits, n);
    CHECK("execve: other descriptors stay open and usable", !(bits & 2) && !(bits & 32) && strcmp(buf, "kept") == 0, "bits %#x, read '%s'", bits, buf);
    CHECK("execve: caught signals are reset to SIG_DFL", !(bits & 4), "bits %#x", bits);
    CHECK("execve: ignored signals stay ignored", !(bits & 8), "bits %#x", bits);
    CHECK("execve: the blocked signal mask is kept", !(bits & 16), "bits %#x", bits);
}

static void *exec_from_thread(void *arg) {
    (void)arg;
    char *argv[] = { self, "exit-with", "15", NULL };
    exec_self(argv, environ);
    _exit(127);
}

static void *sleeper(void *arg) {
    (void)arg;
    for (;;) sleep_ms(1000);
    return NULL;
}

/* exec ends every other thread; from a thread that is not the main one the process keeps
 * its pid (the thread takes the leader's place). Also execve("/proc/self/exe") and
 * execveat(fd, "", AT_EMPTY_PATH). */
static void test_execve_variants(void) {
    pid_t pid = fork_for("execve: from a multi-threaded process");
    if (pid == 0) {
        pthread_t t;
        pthread_create(&t, NULL, sleeper, NULL);
        char *argv[] = { self, "exit-with", "14", NULL };
        exec_self(argv, environ);
        _exit(127);
    }
    if (pid > 0) expect_exit("execve: from a multi-threaded process (other threads end)", reap(pid), 14);

    pid = fork_for("execve: from a second thread");
    if (pid == 0) {
        pthread_t t;
        pthread_create(&t, NULL, exec_from_thread, NULL);
        pthread_join(t, NULL);
        _exit(126);
    }
    if (pid > 0) expect_exit("execve: from a second thread (the pid is kept)", reap(pid), 15);

    pid = fork_for("execve: /proc/self/exe");
    if (pid == 0) {
        char *argv[] = { "again", "exit-with", "12", NULL };
        execve("/proc/self/exe", argv, environ);
        _exit(127);
    }
    if (pid > 0) expect_exit("execve: /proc/self/exe runs this program again", reap(pid), 12);

    pid = fork_for("execveat: AT_EMPTY_PATH");
    if (pid == 0) {
        int fd = open(self, O_RDONLY);
        char *argv[] = { self, "exit-with", "13", NULL };
        syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
        _exit(127);
    }
    if (pid > 0) expect_exit("execveat: a descriptor with AT_EMPTY_PATH", reap(pid), 13);
}

/* A failed execve returns in the child, which exits with the errno it got. */
static void expect_exec_error(const char *name, const char *path, int expected) {
    pid_t pid = fork_for(name);
    if (pid < 0) return;
    if (pid == 0) {
        char *argv[] = { (char *)path, NULL };
        execve(path, argv, environ);
        _exit(errno);
    }
    int status = reap(pid);
    CHECK(name, exited_with(status, expected), "expected errno %d (%s), got %s", expected, strerror(expected), describe(status));
}

static void test_exec_errors(void) {
    char path[160];
    snprintf(path, sizeof path, "%s/missing", tmpdir);
    expect_exec_error("execve: a missing file -> ENOENT", path, ENOENT);
    snprintf(path, sizeof path, "%s/not-executable", tmpdir);
    write_file(path, "#!/bin/sh\necho no\n", 0644);
    expect_exec_error("execve: a file without execute permission -> EACCES", path, EACCES);
    expect_exec_error("execve: a directory -> EACCES", tmpdir, EACCES);
    snprintf(path, sizeof path, "%s/no-interpreter", tmpdir);
    write_file(path, "#!/no/such/interpreter\necho no\n", 0755);
    expect_exec_error("execve: a script whose interpreter is missing -> ENOENT", path, ENOENT);
    snprintf(path, sizeof path, "%s/plain-text", tmpdir);
    write_file(path, "this is not a program\n", 0755);
    expect_exec_error("execve: an executable text file without #! -> ENOEXEC", path, ENOEXEC);
    snprintf(path, sizeof path, "%s/empty", tmpdir);
    write_file(path, "", 0755);
    expect_exec_error("execve: an empty executable file -> ENOEXEC", path, ENOEXEC);
}

/* #! scripts whose interpreter is this program: with the one optional argument (spaces
 * inside it kept, trailing blanks dropped) and without. */
static void test_scripts(void) {
    char script[160], text[4200];
    const char *variants[][2] = { { "script-arg", "as interpreter  \t" }, { "script-noarg", "" } };
    for (int v = 0; v < 2; v++) {
        snprintf(script, sizeof script, "%s/%s", tmpdir, variants[v][0]);
        snprintf(text, sizeof text, "#! %s%s%s\nthe interpreter does not read this\n", self, *variants[v][1] ? " " : "", variants[v][1]);
        write_file(script, text, 0755);
        const char *name = v == 0 ? "execve: a #! script with an interpreter argument" : "execve: a #! script without an interpreter argument";
        pid_t pid = fork_for(name);
        if (pid < 0) continue;
        if (pid == 0) {
            char *argv[] = { "ignored-argv0", "first", "second arg", NULL };
            execve(script, argv, environ);
            _exit(127);
        }
        int status = reap(pid);
        CHECK(name, exited_with(status, 0), "interpreter %s (details on stderr)", describe(status));
    }
}

/* MARK: pipes between processes */

/* `produce 1000 | consume`, both this program exec'd, wired by the parent. */
static void test_pipeline(void) {
    const char *name = "pipeline: two children joined by a pipe";
    int p[2], result[2];
    if (pipe2(p, O_CLOEXEC) != 0 || pipe2(result, O_CLOEXEC) != 0) { fail(name, "pipe: %s", strerror(errno)); return; }
    pid_t producer = fork_for(name);
    if (producer == 0) {
        dup2(p[1], 1);
        char *argv[] = { self, "produce", "1000", NULL };
        exec_self(argv, environ);
        _exit(127);
    }
    pid_t consumer = fork_for(name);
    if (consumer == 0) {
        dup2(p[0], 0);
        dup2(result[1], 1);
        char *argv[] = { self, "consume", NULL };
        exec_self(argv, environ);
        _exit(127);
    }
    close(p[0]);
    close(p[1]);
    close(result[1]);
    char buf[128] = { 0 };
    read_full(result[0], buf, sizeof buf - 1);
    close(result[0]);
    int producer_status = producer > 0 ? reap(producer) : -1;
    int consumer_status = consumer > 0 ? reap(consumer) : -1;
    CHECK(name, strcmp(buf, "lines=1000 sum=500500\n") == 0, "consumer printed '%s'", buf);
    expect_exit("pipeline: the producer exits 0", producer_status, 0);
    expect_exit("pipeline: the consumer sees end of file and exits 0", consumer_status, 0);
}

/* A writer whose pipe has no reader dies of SIGPIPE. */
static void test_sigpipe(void) {
    int p[2];
    if (pipe(p) != 0) { fail("SIGPIPE", "pipe: %s", strerror(errno)); return; }
    close(p[0]);
    pid_t pid = fork_for("SIGPIPE");
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        write(p[1], "x", 1);
        _exit(0);
    }
    close(p[1]);
    if (pid > 0) expect_signal("signal death: a write to a pipe without readers -> SIGPIPE", reap(pid), SIGPIPE);
}

/* MARK: wait */

static void test_wait(void) {
    /* WNOHANG while the child runs; it exits when its pipe closes. */
    int hold[2];
    if (pipe(hold) != 0) { fail("wait", "pipe: %s", strerror(errno)); return; }
    pid_t pid = fork_for("waitpid WNOHANG");
    if (pid == 0) {
        close(hold[1]);
        char c;
        read(hold[0], &c, 1);
        _exit(0);
    }
    close(hold[0]);
    if (pid > 0) {
        int status = 0;
        pid_t r1 = waitpid(pid, &status, WNOHANG);
        pid_t r2 = wait4(-1, &status, WNOHANG, NULL);
        siginfo_t si;
        memset(&si, 0xff, sizeof si);
        int r3 = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG);
        CHECK("waitpid(pid, WNOHANG) == 0 while the child runs", r1 == 0, "returned %d (%s)", (int)r1, r1 < 0 ? strerror(errno) : "");
        CHECK("wait4(-1, WNOHANG) == 0 while the child runs", r2 == 0, "returned %d", (int)r2);
        CHECK("waitid(WNOHANG) == 0 with si_pid 0 while the child runs", r3 == 0 && si.si_pid == 0, "returned %d, si_pid %s", r3, si.si_pid == 0 ? "0" : "set");
        close(hold[1]);
        struct rusage usage;
        pid_t r4;
        do r4 = wait4(pid, &status, 0, &usage); while (r4 < 0 && errno == EINTR);
        CHECK("wait4(pid) returns the pid once the child exits", r4 == pid, "returned %d (%s)", (int)r4, r4 < 0 ? strerror(errno) : "");
        expect_exit("wait4(pid): status", r4 == pid ? status : -1, 0);
    }

    /* wait(-1) collects both children, each with its own status. */
    pid_t a = fork_for("wait(-1)");
    if (a == 0) _exit(1);
    pid_t b = fork_for("wait(-1)");
    if (b == 0) { sleep_ms(20); _exit(2); }
    int matched = 0, status;
    for (int i = 0; i < 2; i++) {
        pid_t r = wait(&status);
        if (r == a && exited_with(status, 1)) matched++;
        if (r == b && exited_with(status, 2)) matched++;
    }
    CHECK("wait(): collects every child with its own status", matched == 2, "%d of 2 matched", matched);

    /* waitid WEXITED|WNOWAIT leaves the child waitable. */
    pid = fork_for("waitid WNOWAIT");
    if (pid == 0) _exit(3);
    if (pid > 0) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        int r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
        CHECK("waitid(P_PID, WEXITED|WNOWAIT): si_pid, SIGCHLD, CLD_EXITED, status 3",
              r == 0 && si.si_pid == pid && si.si_signo == SIGCHLD && si.si_code == CLD_EXITED && si.si_status == 3,
              "returned %d, signo %d code %d status %d", r, si.si_signo, si.si_code, si.si_status);
        memset(&si, 0, sizeof si);
        r = waitid(P_ALL, 0, &si, WEXITED);
        CHECK("waitid(P_ALL, WEXITED) after WNOWAIT reaps the same child", r == 0 && si.si_pid == pid && si.si_status == 3,
              "returned %d, status %d", r, si.si_status);
        errno = 0;
        pid_t again = waitpid(pid, &status, 0);
        CHECK("waitpid after the child was reaped -> ECHILD", again == -1 && errno == ECHILD, "returned %d (%s)", (int)again, strerror(errno));
    }

    /* By process group: waitpid(-pgid) reaps the leader, which exits first (it waits for
     * the member to join); waitid(P_PGID) then reaps the member of the group whose leader
     * is gone (the group lives on while it has members). */
    int joined[2];
    pid_t leader = pipe(joined) == 0 ? fork_for("wait by process group") : -1;
    if (leader == 0) {
        setpgid(0, 0);
        close(joined[1]);
        char c;
        read(joined[0], &c, 1);
        _exit(21);
    }
    if (leader > 0) {
        close(joined[0]);
        setpgid(leader, leader);
        pid_t member = fork_for("wait by process group");
        if (member == 0) { setpgid(0, leader); close(joined[1]); sleep_ms(100); _exit(22); }
        if (member > 0) setpgid(member, leader);
        close(joined[1]);
        pid_t r = waitpid(-leader, &status, 0);
        CHECK("waitpid(-pgid) reaps a child of that group (its leader)", r == leader && exited_with(status, 21),
              "returned %s, %s", r == member ? "the member" : r < 0 ? strerror(errno) : "another pid", describe(status));
        siginfo_t si;
        memset(&si, 0, sizeof si);
        int r2 = waitid(P_PGID, (id_t)leader, &si, WEXITED);
        CHECK("waitid(P_PGID) reaps a member after the group's leader was reaped", r2 == 0 && si.si_pid == member && si.si_status == 22,
              "returned %d (%s), status %d", r2, r2 < 0 ? strerror(errno) : "", si.si_status);
        if (r2 != 0 && member > 0) reap(member);
    }

    /* Not our child, and no children at all. */
    pid_t child = fork_for("waitpid of a grandchild");
    if (child == 0) {
        pid_t grandchild = fork_for("waitpid of a grandchild");
        if (grandchild == 0) _exit(0);
        errno = 0;
        int notmine = 0;
        pid_t r = waitpid(getppid(), &notmine, WNOHANG);
        int code = r == -1 && errno == ECHILD ? 0 : 1;
        reap(grandchild);
        _exit(code);
    }
    if (child > 0) expect_exit("waitpid of a process that is not a child -> ECHILD", reap(child), 0);

    errno = 0;
    pid_t r = wait(&status);
    CHECK("wait() with no children -> ECHILD", r == -1 && errno == ECHILD, "returned %d (%s)", (int)r, strerror(errno));
    siginfo_t si;
    errno = 0;
    int r2 = waitid(P_ALL, 0, &si, WEXITED | WNOHANG);
    CHECK("waitid(P_ALL) with no children -> ECHILD", r2 == -1 && errno == ECHILD, "returned %d (%s)", r2, strerror(errno));
    errno = 0;
    r2 = waitid(P_ALL, 0, &si, 0);
    CHECK("waitid without WEXITED/WSTOPPED/WCONTINUED -> EINVAL", r2 == -1 && errno == EINVAL, "returned %d (%s)", r2, strerror(errno));
}

/* MARK: exit statuses and deaths by signal */

static void test_exit_statuses(void) {
    static const int codes[][2] = { { 0, 0 }, { 3, 3 }, { 255, 255 }, { 256, 0 }, { 300, 44 } };
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "exit status: exit(%d) -> %d", codes[i][0], codes[i][1]);
        pid_t pid = fork_for(name);
        if (pid == 0) exit(codes[i][0]);
        if (pid > 0) expect_exit(name, reap(pid), codes[i][1]);
    }
    /* Through exec: main's return value. */
    pid_t pid = fork_for("exit status: through execve");
    if (pid == 0) {
        char *argv[] = { self, "exit-with", "77", NULL };
        exec_self(argv, environ);
        _exit(127);
    }
    if (pid > 0) expect_exit("exit status: of an exec'd program's main", reap(pid), 77);
}

static void segfault_now(void) {
    struct rlimit no_core = { 0, 0 };
    setrlimit(RLIMIT_CORE, &no_core);
    volatile int *volatile nowhere = NULL;
    *nowhere = 1;
    _exit(0);
}

static void test_signal_deaths(void) {
    pid_t pid = fork_for("SIGKILL");
    if (pid == 0) idle();
    if (pid > 0) {
        kill(pid, SIGKILL);
        siginfo_t si;
        memset(&si, 0, sizeof si);
        int r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
        CHECK("waitid: a killed child has CLD_KILLED and its signal", r == 0 && si.si_code == CLD_KILLED && si.si_status == SIGKILL,
              "returned %d, code %d status %d", r, si.si_code, si.si_status);
        expect_signal("signal death: kill(pid, SIGKILL) -> WTERMSIG 9", reap(pid), SIGKILL);
    }
    pid = fork_for("SIGTERM");
    if (pid == 0) { raise(SIGTERM); _exit(0); }
    if (pid > 0) expect_signal("signal death: raise(SIGTERM) -> WTERMSIG 15", reap(pid), SIGTERM);
    pid = fork_for("SIGSEGV");
    if (pid == 0) segfault_now();
    if (pid > 0) expect_signal("signal death: a store to NULL -> WTERMSIG 11", reap(pid), SIGSEGV);

    /* Stop and continue: WUNTRACED and WCONTINUED. */
    pid = fork_for("SIGSTOP");
    if (pid == 0) idle();
    if (pid > 0) {
        int status = 0;
        kill(pid, SIGSTOP);
        pid_t r = waitpid(pid, &status, WUNTRACED);
        CHECK("waitpid(WUNTRACED): a stopped child, WSTOPSIG SIGSTOP", r == pid && WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP,
              "returned %d, %s", (int)r, describe(status));
        kill(pid, SIGCONT);
        r = waitpid(pid, &status, WCONTINUED);
        CHECK("waitpid(WCONTINUED): the child continued", r == pid && WIFCONTINUED(status), "returned %d, status %#x", (int)r, status);
        kill(pid, SIGKILL);
        expect_signal("signal death: SIGKILL after SIGCONT", reap(pid), SIGKILL);
    }
}

/* MARK: SIGCHLD */

static volatile sig_atomic_t chld_count;
static volatile pid_t chld_pid;
static volatile int chld_code, chld_status;

static void on_sigchld(int sig, siginfo_t *info, void *context) {
    (void)sig, (void)context;
    chld_pid = info->si_pid;
    chld_code = info->si_code;
    chld_status = info->si_status;
    chld_count++;
}

/* Waits for a SIGCHLD handler run, at most 5 s: ppoll unblocks SIGCHLD (the mask
 * `unblocked`) only while it sleeps, so a signal cannot slip in between check and sleep. */
static int await_sigchld(const sigset_t *unblocked) {
    for (int i = 0; i < 50 && chld_count == 0; i++) {
        struct timespec slice = { 0, 100 * 1000000L };
        ppoll(NULL, 0, &slice, unblocked);
    }
    return chld_count > 0;
}

static void test_sigchld(void) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct sigaction sa = { .sa_sigaction = on_sigchld, .sa_flags = SA_SIGINFO };
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t unblocked = old;
    sigdelset(&unblocked, SIGCHLD);

    chld_count = 0;
    pid_t pid = fork_for("SIGCHLD");
    if (pid == 0) _exit(7);
    if (pid > 0) {
        int got = await_sigchld(&unblocked);
        CHECK("SIGCHLD: delivered to the handler when a child exits", got, "no SIGCHLD within 5 s");
        CHECK("SIGCHLD: siginfo has the child's pid, CLD_EXITED and status 7", got && chld_pid == pid && chld_code == CLD_EXITED && chld_status == 7,
              "pid %s, code %d, status %d", chld_pid == pid ? "right" : "wrong", chld_code, chld_status);
        expect_exit("SIGCHLD: the child is still waitable after the handler ran", reap(pid), 7);
    }

    chld_count = 0;
    pid = fork_for("SIGCHLD killed");
    if (pid == 0) idle();
    if (pid > 0) {
        kill(pid, SIGKILL);
        int got = await_sigchld(&unblocked);
        CHECK("SIGCHLD: a child killed by SIGKILL gives CLD_KILLED, si_status 9", got && chld_code == CLD_KILLED && chld_status == SIGKILL,
              "got %d, code %d, status %d", got, chld_code, chld_status);
        reap(pid);
    }

    /* SA_NOCLDSTOP: no SIGCHLD for a stop; without it, CLD_STOPPED. */
    for (int nocldstop = 1; nocldstop >= 0; nocldstop--) {
        sa.sa_flags = SA_SIGINFO | (nocldstop ? SA_NOCLDSTOP : 0);
        sigaction(SIGCHLD, &sa, NULL);
        chld_count = 0;
        pid = fork_for("SIGCHLD stop");
        if (pid == 0) idle();
        if (pid < 0) continue;
        kill(pid, SIGSTOP);
        int status;
        waitpid(pid, &status, WUNTRACED);
        if (nocldstop) {
            sigset_t pending;
            sleep_ms(20);
            sigpending(&pending);
            CHECK("SIGCHLD: SA_NOCLDSTOP -> none for a stopped child", !sigismember(&pending, SIGCHLD), "SIGCHLD pending");
        } else {
            int got = await_sigchld(&unblocked);
            CHECK("SIGCHLD: without SA_NOCLDSTOP a stop gives CLD_STOPPED", got && chld_code == CLD_STOPPED && chld_status == SIGSTOP,
                  "got %d, code %d, status %d", got, chld_code, chld_status);
        }
        kill(pid, SIGKILL);
        kill(pid, SIGCONT);
        reap(pid);
        /* Take what the kill queued (SIGCHLD is blocked here) before the next round. */
        struct timespec zero = { 0, 0 };
        while (sigtimedwait(&block, NULL, &zero) > 0) {}
    }

    /* A pending SIGCHLD stays pending after the child is reaped, and setting SIGCHLD to
     * SIG_IGN discards it (as for any signal). */
    pid = fork_for("SIGCHLD discard");
    if (pid == 0) _exit(0);
    if (pid > 0) {
        reap(pid);
        sigset_t pending;
        sigpending(&pending);
        CHECK("SIGCHLD: pending while blocked, also after the child was reaped", sigismember(&pending, SIGCHLD), "not pending");
        signal(SIGCHLD, SIG_IGN);
        sigpending(&pending);
        CHECK("SIGCHLD: setting SIG_IGN discards the pending signal", !sigismember(&pending, SIGCHLD), "still pending");
    }

    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* SIGCHLD set to SIG_IGN (or SA_NOCLDWAIT): children are reaped by the kernel; wait blocks
 * until they are gone, then fails with ECHILD. */
static void test_autoreap(void) {
    for (int how = 0; how < 2; how++) {
        const char *name = how == 0 ? "SIGCHLD SIG_IGN: children are reaped automatically (wait -> ECHILD)"
                                    : "SA_NOCLDWAIT: children are reaped automatically (wait -> ECHILD)";
        if (how == 0) signal(SIGCHLD, SIG_IGN);
        else {
            struct sigaction sa = { .sa_handler = SIG_DFL, .sa_flags = SA_NOCLDWAIT };
            sigaction(SIGCHLD, &sa, NULL);
        }
        pid_t pid = fork_for(name);
        if (pid == 0) { sleep_ms(20); _exit(0); }
        int status;
        errno = 0;
        pid_t r = wait(&status);
        int err = errno;
        signal(SIGCHLD, SIG_DFL);
        CHECK(name, r == -1 && err == ECHILD, "wait returned %s (%s)", r == pid ? "the child" : "something else", strerror(err));
    }
}

/* MARK: zombies, orphans, death signals */

static char proc_state(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : '?';
}

static void test_zombie(void) {
    pid_t pid = fork_for("zombie");
    if (pid < 0) return;
    if (pid == 0) _exit(4);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
    char state = proc_state(pid);
    CHECK("zombie: an exited, unreaped child shows state Z in /proc/PID/stat", state == 'Z', "state '%c'", state ? state : '-');
    CHECK("zombie: kill(zombie, 0) succeeds", kill(pid, 0) == 0, "%s", strerror(errno));
    expect_exit("zombie: reaped with its status", reap(pid), 4);
    errno = 0;
    CHECK("zombie: /proc/PID is gone after reaping", proc_state(pid) == 0 && errno == ENOENT, "state '%c', %s", proc_state(pid), strerror(errno));
    errno = 0;
    CHECK("zombie: kill(reaped pid, 0) -> ESRCH", kill(pid, 0) == -1 && errno == ESRCH, "%s", strerror(errno));
}

/* With PR_SET_CHILD_SUBREAPER (natively; in a VM as pid 1 the same holds by default), an
 * orphaned grandchild is re-parented to us, and we reap it. */
static void test_orphans(void) {
    const char *name = "orphan";
    int r = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    int is_subreaper = 0;
    prctl(PR_GET_CHILD_SUBREAPER, &is_subreaper, 0, 0, 0);
    CHECK("prctl(PR_SET_CHILD_SUBREAPER) and PR_GET_CHILD_SUBREAPER", r == 0 && is_subreaper == 1, "set %d, get %d", r, is_subreaper);
    pid_t reaper = getpid();
    int report[2];
    if (pipe(report) != 0) { fail(name, "pipe: %s", strerror(errno)); return; }
    pid_t middle = fork_for(name);
    if (middle < 0) return;
    if (middle == 0) {
        pid_t parent = getpid();
        pid_t grandchild = fork_for(name);
        if (grandchild == 0) {
            for (int i = 0; i < 500 && getppid() == parent; i++) sleep_ms(10);
            char verdict = getppid() == reaper ? 'y' : 'n';
            write(report[1], &verdict, 1);
            _exit(6);
        }
        long g = grandchild;
        write(report[1], &g, sizeof g);
        _exit(grandchild > 0 ? 0 : 1);
    }
    close(report[1]);
    expect_exit("orphan: the middle process exits", reap(middle), 0);
    long grandchild = 0;
    char verdict = 0;
    read_full(report[0], (char *)&grandchild, sizeof grandchild);
    read_full(report[0], &verdict, 1);
    close(report[0]);
    CHECK("orphan: getppid() becomes the subreaper once its parent exits", verdict == 'y', "verdict '%c'", verdict ? verdict : '-');
    expect_exit("orphan: the subreaper reaps the orphan", grandchild > 0 ? reap((pid_t)grandchild) : -1, 6);

    /* PR_SET_PDEATHSIG: the grandchild asks for SIGKILL when its parent dies. */
    int ready[2];
    if (pipe(report) != 0 || pipe(ready) != 0) return;
    middle = fork_for("PR_SET_PDEATHSIG");
    if (middle < 0) return;
    if (middle == 0) {
        pid_t me = getpid();
        pid_t grandchild = fork_for("PR_SET_PDEATHSIG");
        if (grandchild == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
            if (getppid() != me) _exit(99);
            write(ready[1], "r", 1);
            idle();
        }
        close(ready[1]);
        char token = 0;
        read(ready[0], &token, 1);
        long g = grandchild;
        write(report[1], &g, sizeof g);
        _exit(token == 'r' ? 0 : 1);
    }
    close(ready[0]);
    close(ready[1]);
    close(report[1]);
    expect_exit("PR_SET_PDEATHSIG: the parent exits", reap(middle), 0);
    grandchild = 0;
    read_full(report[0], (char *)&grandchild, sizeof grandchild);
    close(report[0]);
    expect_signal("PR_SET_PDEATHSIG: the child gets SIGKILL when its parent exits", grandchild > 0 ? reap((pid_t)grandchild) : -1, SIGKILL);
}

/* MARK: kill, process groups, sessions */

static void test_kill(void) {
    int ready[2];
    if (pipe(ready) != 0) { fail("kill", "pipe: %s", strerror(errno)); return; }
    pid_t pid = fork_for("kill");
    if (pid < 0) return;
    if (pid == 0) {
        signal(SIGUSR1, on_usr1_stop);
        write(ready[1], "r", 1);
        for (int i = 0; i < 300 && !idle_stop; i++) sleep_ms(10);
        _exit(idle_stop ? 42 : 111);
    }
    close(ready[1]);
    char c = 0;
    read(ready[0], &c, 1);
    close(ready[0]);
    CHECK("kill(pid, 0) for a live child", kill(pid, 0) == 0, "%s", strerror(errno));
    CHECK("kill(pid, SIGUSR1) succeeds", kill(pid, SIGUSR1) == 0, "%s", strerror(errno));
    expect_exit("kill: the child's handler ran (exit 42)", reap(pid), 42);
    errno = 0;
    CHECK("kill of a reaped pid -> ESRCH", kill(pid, SIGUSR1) == -1 && errno == ESRCH, "%s", strerror(errno));
    errno = 0;
    CHECK("kill(pid, 65) -> EINVAL", kill(getpid(), 65) == -1 && errno == EINVAL, "%s", strerror(errno));
}

/* Runs in a child (it becomes a session leader, so the test's own session and group do not
 * matter): setsid/getsid/getpgid, two children in two groups, killpg and kill(0). */
static void groups_and_sessions(void) {
    pid_t me = getpid();
    pid_t parent_session = getsid(getppid());
    /* A group that stays in the old session, for the EPERM check below. */
    pid_t elsewhere = fork_for("groups");
    if (elsewhere == 0) { setpgid(0, 0); idle(); }
    if (elsewhere > 0) setpgid(elsewhere, elsewhere);
    CHECK("setsid() in a child returns its pid", setsid() == me, "%s", strerror(errno));
    CHECK("getsid(0) == getpid() for a session leader", getsid(0) == me, "getsid differs");
    CHECK("getpgid(0) == getpid() for a session leader", getpgid(0) == me, "getpgid differs");
    CHECK("getsid(parent) is the parent's session, not the new one", getsid(getppid()) == parent_session && parent_session != me, "differs");
    errno = 0;
    CHECK("setsid() again -> EPERM", setsid() == -1 && errno == EPERM, "%s", strerror(errno));
    errno = 0;
    CHECK("setpgid of a session leader -> EPERM", setpgid(0, 0) == -1 && errno == EPERM, "%s", strerror(errno));

    int ready[2];
    if (pipe(ready) != 0) { fail("groups", "pipe: %s", strerror(errno)); return; }
    pid_t same_group = fork_for("groups");
    if (same_group == 0) { write(ready[1], "a", 1); idle(); }
    pid_t own_group = fork_for("groups");
    if (own_group == 0) { setpgid(0, 0); write(ready[1], "b", 1); idle(); }
    if (same_group < 0 || own_group < 0) { fail("groups", "fork: %s", strerror(errno)); return; }
    setpgid(own_group, own_group);
    char c[2];
    read_full(ready[0], c, 2);
    CHECK("getpgid(child) == the parent's group by default", getpgid(same_group) == me, "differs");
    CHECK("setpgid(child, child) makes a new group", getpgid(own_group) == own_group, "differs");
    CHECK("getsid(child) == the session it was born in", getsid(own_group) == me, "differs");
    errno = 0;
    CHECK("setpgid into a group of another session -> EPERM", elsewhere > 0 && setpgid(own_group, elsewhere) == -1 && errno == EPERM, "%s", strerror(errno));

    CHECK("killpg(group, SIGTERM) succeeds", killpg(own_group, SIGTERM) == 0, "%s", strerror(errno));
    expect_signal("killpg: the group's process dies of SIGTERM", reap(own_group), SIGTERM);
    int status;
    CHECK("killpg: a process of another group is untouched", waitpid(same_group, &status, WNOHANG) == 0, "it changed state");

    signal(SIGUSR2, SIG_IGN);
    CHECK("kill(0, SIGUSR2) signals our own group", kill(0, SIGUSR2) == 0, "%s", strerror(errno));
    expect_signal("kill(0): the group member dies of SIGUSR2 (the sender ignores it)", reap(same_group), SIGUSR2);

    errno = 0;
    CHECK("killpg of a group with no members -> ESRCH", killpg(own_group, SIGTERM) == -1 && errno == ESRCH, "%s", strerror(errno));
    errno = 0;
    CHECK("getpgid of a reaped pid -> ESRCH", getpgid(own_group) == -1 && errno == ESRCH, "%s", strerror(errno));
    if (elsewhere > 0) { kill(elsewhere, SIGKILL); reap(elsewhere); }
}

/* MARK: main */

int main(int argc, char **argv) {
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        dprintf(2, "procs: readlink /proc/self/exe: %s\n", strerror(errno));
        return 2;
    }
    self[n] = 0;
    if (argc > 1) return helper_mode(argc, argv);

    alarm(60);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/procs-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        dprintf(2, "procs: mkdtemp: %s\n", strerror(errno));
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    test_fork_basics();
    test_fork_memory();
    test_fork_shared_description();
    test_shared_semaphores();
    test_vfork();
    test_posix_spawn();
    test_execve_args();
    test_execve_state();
    test_execve_variants();
    test_exec_errors();
    test_scripts();
    test_pipeline();
    test_sigpipe();
    test_wait();
    test_exit_statuses();
    test_signal_deaths();
    test_sigchld();
    test_autoreap();
    test_zombie();
    test_orphans();
    test_kill();
    in_child("process groups and sessions", groups_and_sessions);

    const char *files[] = { "not-executable", "no-interpreter", "plain-text", "empty", "script-arg", "script-noarg" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[160];
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    out("failures: %d\n", failures);
    return failures ? 1 : 0;
}
