/* memfull: the program takes all the memory it can get, then asks the kernel for objects and
 * buffers (pipes full of data, POSIX timers, one-page mappings, files, socket pairs, epoll
 * interests) until each is refused. Every refusal must be an errno (ENOMEM, EAGAIN, EMFILE,
 * ENOSPC, ENOBUFS), never the guest kernel running out of heap (it used to panic), and once
 * the program lets go, the same requests succeed again. Run under apus with a small --memory;
 * natively it would take the host's memory, so it is an apus-only test. Prints no counts. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

static char chunk[65536];

static int refused(int e) { return e == ENOMEM || e == EAGAIN || e == EMFILE || e == ENOSPC || e == ENOBUFS; }

#define MAX_MAPS 4000  /* mappings it tracks; the region list is bounded apart (max_map_count) */
static void *maps[MAX_MAPS];
static size_t map_sizes[MAX_MAPS];
static int map_count;

static int take(size_t size, int prot) {
    while (map_count < MAX_MAPS) {
        void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return errno;
        if (prot & PROT_WRITE) *(volatile char *)p = 1;
        maps[map_count] = p;
        map_sizes[map_count++] = size;
    }
    return 0;
}

static void close_all(void) {
    for (int fd = 3; fd < 1024; fd++) close(fd);
}

/* One round of requests for kernel objects; returns how many kinds were refused cleanly. */
static void ask_for_everything(const char *when) {
    char what[128];
    int e = 0, n = 0;
    for (;;) {
        int p[2];
        if (pipe(p) != 0) { e = errno; break; }
        n++;
        fcntl(p[1], F_SETFL, O_NONBLOCK);
        while (write(p[1], chunk, sizeof chunk) > 0) {}
        if (errno != EAGAIN && !refused(errno)) { e = errno; break; }
    }
    snprintf(what, sizeof what, "%s: pipes full of data until refused", when);
    check(what, refused(e));
    close_all();

    for (n = 0;; n++) {
        timer_t t;
        struct sigevent ev = { .sigev_notify = SIGEV_NONE };
        if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0) { e = errno; break; }
    }
    snprintf(what, sizeof what, "%s: POSIX timers until refused", when);
    check(what, refused(e));

    e = take(4096, PROT_NONE);
    snprintf(what, sizeof what, "%s: one-page mappings until refused", when);
    check(what, refused(e) || map_count == MAX_MAPS);

    mkdir("/tmp/mf", 0700);
    for (n = 0;; n++) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/mf/%d", n);
        int fd = open(path, O_CREAT | O_WRONLY, 0600);
        if (fd < 0) { e = errno; break; }
        close(fd);
    }
    snprintf(what, sizeof what, "%s: files until refused", when);
    check(what, refused(e) || e == ENOENT /* the directory itself did not fit */);

    int ep = epoll_create1(0);
    for (;;) {
        int s[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0) { e = errno; break; }
        struct epoll_event ev = { .events = EPOLLIN };
        if (ep >= 0) epoll_ctl(ep, EPOLL_CTL_ADD, s[0], &ev);
        fcntl(s[1], F_SETFL, O_NONBLOCK);
        while (write(s[1], chunk, sizeof chunk) > 0) {}
    }
    snprintf(what, sizeof what, "%s: socket pairs full of data until refused", when);
    check(what, refused(e));
    close_all();
}

static void let_go(void) {
    for (int i = 0; i < map_count; i++) munmap(maps[i], map_sizes[i]);
    map_count = 0;
    for (int id = 0; id < 8192; id++) timer_delete((timer_t)(long)id);
    char path[64];
    for (int n = 0;; n++) {
        snprintf(path, sizeof path, "/tmp/mf/%d", n);
        if (unlink(path) != 0) break;
    }
    rmdir("/tmp/mf");
}

int main(void) {
    memset(chunk, 'm', sizeof chunk);
    check("mapping 1 MiB pieces until full: ENOMEM", take(1 << 20, PROT_READ | PROT_WRITE) == ENOMEM);
    check("then single pages: ENOMEM", take(4096, PROT_READ | PROT_WRITE) == ENOMEM);
    ask_for_everything("with memory full");
    let_go();
    ask_for_everything("with memory free");
    let_go();
    int p[2];
    int piped = pipe(p) == 0 && write(p[1], "x", 1) == 1;
    if (!piped) fprintf(stderr, "pipe: errno %d\n", errno);
    check("afterwards a pipe works", piped);
    timer_t t;
    check("and a timer", timer_create(CLOCK_MONOTONIC, NULL, &t) == 0);
    check("and a file", open("/tmp/after", O_CREAT | O_RDWR, 0600) >= 0);
    return finish();
}
