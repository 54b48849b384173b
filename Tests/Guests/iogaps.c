/* iogaps: I/O and memory semantics real programs rely on — a blocking write to a pipe or
 * socket returns only when all of it is written (a non-blocking one writes what fits, a
 * signal ends a blocking one with what it wrote), sendfile of a whole file to a blocking
 * socket (to a pipe: what the pipe takes, as Linux does), select writing back the time left, mremap growing a private file
 * mapping with the file's bytes, munmap/mprotect of a huge PROT_NONE reservation in little
 * time, sigaltstack (SS_ONSTACK in the handler, and with the argument `overflow` a stack
 * overflow caught on the alternate stack).
 * One deterministic line per check, the same natively and in Apus; exits 0 when all pass. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A child that reads `fd` to its end and exits with 0 if it got exactly `expected` bytes,
 * each byte i being (i * 7) & 0xff. */
static pid_t drain(int fd, int other, size_t expected) {
    pid_t pid = fork();
    if (pid == 0) {
        if (other >= 0) close(other);
        static unsigned char buffer[65536];
        size_t total = 0;
        int good = 1;
        for (;;) {
            ssize_t n = read(fd, buffer, sizeof buffer);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            for (ssize_t i = 0; i < n; i++)
                if (buffer[i] != (unsigned char)(((total + i) * 7) & 0xff)) good = 0;
            total += n;
        }
        _exit(good && total == expected ? 0 : 1);
    }
    return pid;
}

static int childSucceeded(pid_t pid) {
    int status = 0;
    return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static unsigned char *pattern(size_t size) {
    unsigned char *p = malloc(size);
    for (size_t i = 0; i < size; i++) p[i] = (unsigned char)((i * 7) & 0xff);
    return p;
}

/* A connected loopback TCP pair: *client and *server. */
static int tcpPair(int *client, int *server) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0) return -1;
    if (listen(listener, 1) != 0) return -1;
    getsockname(listener, (struct sockaddr *)&address, &length);
    *client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*client, (struct sockaddr *)&address, sizeof address) != 0) return -1;
    *server = accept(listener, NULL, NULL);
    close(listener);
    return *server >= 0 ? 0 : -1;
}

static void onAlarm(int signal) { (void)signal; }

static void blockingWrites(void) {
    const size_t big = 3500 * 1024;
    unsigned char *data = pattern(big);

    /* A 3.5 MB writev to a pipe whose reader is slower than the writer. */
    int p[2];
    pipe(p);
    pid_t reader = drain(p[0], p[1], big);
    close(p[0]);
    struct iovec vectors[3] = {{data, 1000}, {data + 1000, big - 2000}, {data + big - 1000, 1000}};
    ssize_t n = writev(p[1], vectors, 3);
    check("a blocking 3.5 MB writev to a pipe writes all of it", n == (ssize_t)big);
    close(p[1]);
    check("the reader got every byte in order", childSucceeded(reader));

    /* The same through write(2) on an AF_UNIX stream socket and on TCP. */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    reader = drain(sv[1], sv[0], big);
    close(sv[1]);
    check("a blocking 3.5 MB write to an AF_UNIX stream socket writes all of it", write(sv[0], data, big) == (ssize_t)big);
    close(sv[0]);
    check("its reader got every byte", childSucceeded(reader));

    int client, server;
    check("a loopback TCP connection", tcpPair(&client, &server) == 0);
    reader = drain(server, client, big);
    close(server);
    check("a blocking 3.5 MB send on TCP sends all of it", send(client, data, big, 0) == (ssize_t)big);
    close(client);
    check("its reader got every byte", childSucceeded(reader));

    /* Non-blocking: what fits, then EAGAIN. */
    pipe2(p, O_NONBLOCK);
    check("a non-blocking 100000-byte write to an empty pipe writes 65536", write(p[1], data, 100000) == 65536);
    errno = 0;
    check("the next one: EAGAIN", write(p[1], data, 100) == -1 && errno == EAGAIN);
    close(p[0]);
    close(p[1]);
    /* Up to PIPE_BUF bytes go in whole or not at all; POLLOUT means PIPE_BUF fit. */
    pipe2(p, O_NONBLOCK);
    write(p[1], data, 65536 - 1000);
    errno = 0;
    check("a non-blocking 4000-byte write with room for 1000: EAGAIN", write(p[1], data, 4000) == -1 && errno == EAGAIN);
    struct pollfd writable = {.fd = p[1], .events = POLLOUT};
    check("and poll does not report POLLOUT", poll(&writable, 1, 0) == 0);
    check("a 500-byte one fits", write(p[1], data, 500) == 500);
    close(p[0]);
    close(p[1]);

    /* A signal (no SA_RESTART) during a blocking write nobody reads: the count written so
     * far; on a full pipe: EINTR. */
    struct sigaction action = {.sa_handler = onAlarm};
    sigaction(SIGALRM, &action, NULL);
    pipe(p);
    struct itimerval timer = {.it_value = {.tv_usec = 100000}};
    setitimer(ITIMER_REAL, &timer, NULL);
    n = write(p[1], data, 1000000);
    check("a signal ends a blocking write with the count written (65536)", n == 65536);
    setitimer(ITIMER_REAL, &timer, NULL);
    errno = 0;
    n = write(p[1], data, 1000);
    check("a signal ends a blocking write to a full pipe with EINTR", n == -1 && errno == EINTR);
    close(p[0]);
    close(p[1]);
    free(data);
}

static void sendfileWholeFile(void) {
    const size_t size = 3 * 1024 * 1024 + 123;
    unsigned char *data = pattern(size);
    const char *path = "/tmp/apus-iogaps-file";
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    check("a 3 MB file", write(file, data, size) == (ssize_t)size);
    free(data);

    int client, server;
    tcpPair(&client, &server);
    pid_t reader = drain(server, client, size);
    close(server);
    off_t offset = 0;
    check("sendfile of the whole file to a blocking TCP socket sends all of it",
          sendfile(client, file, &offset, size) == (ssize_t)size && offset == (off_t)size);
    close(client);
    check("its reader got every byte", childSucceeded(reader));

    int p[2];
    pipe(p);
    reader = drain(p[0], p[1], size);
    close(p[0]);
    lseek(file, 0, SEEK_SET);
    /* To a pipe Linux sends what the pipe takes (waiting only while it is full); a loop
     * sends the rest. */
    ssize_t first = sendfile(p[1], file, NULL, size);
    check("sendfile to an empty pipe sends a pipe's worth (65536)", first == 65536);
    size_t sent = first > 0 ? first : 0;
    while (sent < size) {
        ssize_t n = sendfile(p[1], file, NULL, size - sent);
        if (n <= 0) break;
        sent += n;
    }
    check("sendfile in a loop sends the whole file to a pipe", sent == size);
    check("and advances the file offset to the end", lseek(file, 0, SEEK_CUR) == (off_t)size);
    close(p[1]);
    check("its reader got every byte", childSucceeded(reader));
    close(file);
    unlink(path);
}

/* select(2) as the system call (glibc passes the caller's timeval, musl a copy). */
static int selectCall(int n, fd_set *readable, struct timeval *tv) {
    return syscall(SYS_select, n, readable, NULL, NULL, tv);
}

static void selectTimeLeft(void) {
    struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
    int r = selectCall(0, NULL, &tv);
    check("select timing out returns 0", r == 0);
    check("and writes back no time left", tv.tv_sec == 0 && tv.tv_usec == 0);

    int p[2];
    pipe(p);
    pid_t writer = fork();
    if (writer == 0) {
        usleep(100000);
        write(p[1], "x", 1);
        _exit(0);
    }
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(p[0], &readable);
    tv = (struct timeval){.tv_sec = 20, .tv_usec = 0};
    r = selectCall(p[0] + 1, &readable, &tv);
    check("select woken by data returns 1", r == 1 && FD_ISSET(p[0], &readable));
    check("and writes back the time left (less than 20 s, more than 10 s)",
          tv.tv_sec < 20 && tv.tv_sec >= 10 && tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    waitpid(writer, NULL, 0);
    close(p[0]);
    close(p[1]);

    /* Activity elsewhere (another pipe written) does not end the wait early. */
    int other[2];
    pipe(p);
    pipe(other);
    writer = fork();
    if (writer == 0) {
        usleep(100000);
        write(other[1], "y", 1);
        usleep(200000);
        write(p[1], "x", 1);
        _exit(0);
    }
    FD_ZERO(&readable);
    FD_SET(p[0], &readable);
    tv = (struct timeval){.tv_sec = 20, .tv_usec = 0};
    r = selectCall(p[0] + 1, &readable, &tv);
    check("select waits through another pipe's write for its own", r == 1 && FD_ISSET(p[0], &readable));
    waitpid(writer, NULL, 0);
    close(p[0]);
    close(p[1]);
    close(other[0]);
    close(other[1]);

    /* The raw pselect6 writes the time left into its timespec too (glibc's pselect hides
     * it behind a copy). */
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 30000000};
    r = syscall(SYS_pselect6, 0, NULL, NULL, NULL, &ts, NULL);
    check("the pselect6 system call timing out writes back no time left", r == 0 && ts.tv_sec == 0 && ts.tv_nsec == 0);
    ts = (struct timespec){.tv_sec = 0, .tv_nsec = 30000000};
    r = pselect(0, NULL, NULL, NULL, &ts, NULL);
    check("glibc/musl pselect leaves the caller's timespec as it was", r == 0 && ts.tv_sec == 0 && ts.tv_nsec == 30000000);
}

static void mremapFileMapping(void) {
    const char *path = "/tmp/apus-iogaps-map";
    const size_t page = 4096, pages = 4;
    unsigned char *data = pattern(page * pages);
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    write(file, data, page * pages);
    unsigned char *map = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE, file, 0);
    check("a one-page private file mapping", map != MAP_FAILED && map[1] == 7);
    map[0] = 0xaa;  /* a private change stays in the grown mapping */
    unsigned char *grown = mremap(map, page, page * pages, MREMAP_MAYMOVE);
    check("mremap grows it to four pages", grown != MAP_FAILED);
    check("the grown part holds the file's bytes", memcmp(grown + page, data + page, page * (pages - 1)) == 0);
    check("the first page keeps its private change", grown[0] == 0xaa && grown[1] == 7);
    munmap(grown, page * pages);

    /* Growing in place (the pages after it are free). */
    void *hole = mmap(NULL, page * 8, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(hole, page * 8);
    map = mmap(hole, page * 2, PROT_READ, MAP_PRIVATE | MAP_FIXED, file, page);
    grown = mremap(map, page * 2, page * 3, 0);
    check("mremap grows a file mapping in place", grown == map);
    check("with the file's next page", grown != MAP_FAILED && memcmp(grown, data + page, page * 3) == 0);
    munmap(grown, page * 3);
    close(file);
    unlink(path);
    free(data);
}

static void hugeReservation(void) {
    const size_t size = (size_t)64 << 40;  /* 64 TiB */
    unsigned char *base = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    check("a 64 TiB PROT_NONE reservation", base != MAP_FAILED);
    if (base == MAP_FAILED) return;
    /* A little of it used, at both ends and in the middle. */
    size_t used[3] = {0, size / 2, size - (1 << 20)};
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        ok &= mprotect(base + used[i], 1 << 20, PROT_READ | PROT_WRITE) == 0;
        if (ok) memset(base + used[i], i + 1, 1 << 20);
    }
    check("parts of it made writable and used", ok);
    double start = now();
    check("mprotect of all of it to PROT_NONE", mprotect(base, size, PROT_NONE) == 0);
    check("mprotect of a used part back to PROT_READ keeps its bytes",
          mprotect(base + used[1], 1 << 20, PROT_READ) == 0 && base[used[1]] == 2 && base[used[1] + 4095] == 2);
    check("munmap of all of it", munmap(base, size) == 0);
    double seconds = now() - start;
    check("the four took less than 2 s", seconds < 2.0);
    if (seconds >= 2.0) printf("  (took %.1f s)\n", seconds);
}

static volatile int handlerSawOnStack = -1;
static char *alternateStack;
static void reportStack(int signal) {
    (void)signal;
    stack_t current;
    sigaltstack(NULL, &current);
    char here;
    handlerSawOnStack = (current.ss_flags & SS_ONSTACK) != 0
        && &here >= alternateStack && &here < alternateStack + SIGSTKSZ * 4;
}

#pragma GCC diagnostic ignored "-Winfinite-recursion"
static volatile int depth;
static int recurse(int n) {
    volatile char frame[512];
    frame[0] = (char)n;
    depth++;
    return recurse(n + 1) + frame[0];
}

static void onOverflow(int signal) {
    static const char message[] = "caught the stack overflow on the alternate stack\n";
    (void)signal;
    write(1, message, sizeof message - 1);
    _exit(0);
}

static void alternateSignalStack(void) {
    alternateStack = malloc(SIGSTKSZ * 4);
    stack_t stack = {.ss_sp = alternateStack, .ss_size = SIGSTKSZ * 4};
    check("sigaltstack", sigaltstack(&stack, NULL) == 0);
    stack_t old;
    check("outside a handler: not SS_ONSTACK", sigaltstack(NULL, &old) == 0 && (old.ss_flags & SS_ONSTACK) == 0);
    struct sigaction action = {.sa_handler = reportStack, .sa_flags = SA_ONSTACK};
    sigaction(SIGUSR1, &action, NULL);
    raise(SIGUSR1);
    check("in a handler on the alternate stack: SS_ONSTACK", handlerSawOnStack == 1);
}

static void stackOverflow(void) {
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        struct sigaction overflow = {.sa_handler = onOverflow, .sa_flags = SA_ONSTACK};
        sigaction(SIGSEGV, &overflow, NULL);
        recurse(0);
        _exit(2);
    }
    check("a stack overflow's SIGSEGV runs the handler on the alternate stack", childSucceeded(child));
}

/* `iogaps overflow` also overflows a child's stack: on the apus VMM (pvm) the fault cannot be
 * delivered (the CPU would push its frame on the overflowed stack) and the VM stops. */
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    blockingWrites();
    sendfileWholeFile();
    selectTimeLeft();
    mremapFileMapping();
    hugeReservation();
    alternateSignalStack();
    if (argc > 1 && strcmp(argv[1], "overflow") == 0) stackOverflow();
    return finish();
}
