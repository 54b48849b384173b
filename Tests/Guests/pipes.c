/* pipes: pipe2, eventfd and epoll between threads. Data through a pipe in order (100 KiB from
 * a writer thread), end of file when the writer closes, EPIPE when the reader is gone,
 * O_NONBLOCK's EAGAIN, poll's POLLIN/POLLHUP, eventfd counting (and semaphore mode), and
 * epoll_wait timing out, then waking when another thread writes. */
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
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int p[2];

static void *writer(void *arg) {
    (void)arg;
    unsigned char chunk[1000];
    for (int i = 0; i < 100; i++) {
        for (int j = 0; j < 1000; j++) chunk[j] = (unsigned char)(i + j);
        size_t off = 0;
        while (off < sizeof chunk) {
            ssize_t n = write(p[1], chunk + off, sizeof chunk - off);
            if (n < 0) return NULL;
            off += (size_t)n;
        }
    }
    close(p[1]);
    return NULL;
}

static int wake_fd;
static void *late_writer(void *arg) {
    (void)arg;
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    write(wake_fd, "!", 1);
    return NULL;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    check("pipe2", pipe2(p, O_CLOEXEC) == 0);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    uint64_t h = FNV_INIT;
    size_t total = 0;
    unsigned char buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0) {
        h = fnv1a(buf, (size_t)n, h);
        total += (size_t)n;
    }
    pthread_join(t, NULL);
    check("100000 bytes arrived, then end of file", total == 100000 && n == 0);
    uint64_t expect = FNV_INIT;
    for (int i = 0; i < 100; i++) {
        unsigned char chunk[1000];
        for (int j = 0; j < 1000; j++) chunk[j] = (unsigned char)(i + j);
        expect = fnv1a(chunk, sizeof chunk, expect);
    }
    check("in order", h == expect);
    close(p[0]);

    pipe2(p, O_NONBLOCK);
    check("O_NONBLOCK read of an empty pipe: EAGAIN", read(p[0], buf, 1) == -1 && errno == EAGAIN);
    struct pollfd pf = { .fd = p[0], .events = POLLIN };
    check("poll: nothing to read yet", poll(&pf, 1, 0) == 0);
    write(p[1], "x", 1);
    check("poll: POLLIN after a write", poll(&pf, 1, 0) == 1 && (pf.revents & POLLIN));
    read(p[0], buf, 1);
    close(p[1]);
    check("poll: POLLHUP once the writer is gone", poll(&pf, 1, 0) == 1 && (pf.revents & POLLHUP));
    close(p[0]);

    pipe(p);
    close(p[0]);
    check("write with no reader: EPIPE", write(p[1], "x", 1) == -1 && errno == EPIPE);
    close(p[1]);

    int e = eventfd(0, EFD_NONBLOCK);
    uint64_t v = 0;
    check("eventfd starts empty (EAGAIN)", read(e, &v, 8) == -1 && errno == EAGAIN);
    v = 3; write(e, &v, 8);
    v = 4; write(e, &v, 8);
    check("eventfd sums writes and reads them at once", read(e, &v, 8) == 8 && v == 7);
    close(e);
    e = eventfd(2, EFD_SEMAPHORE);
    read(e, &v, 8);
    check("semaphore eventfd reads 1 at a time", v == 1 && read(e, &v, 8) == 8 && v == 1);
    close(e);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    pipe(p);
    wake_fd = p[1];
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xfeedbeef };
    check("epoll_ctl ADD", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    check("epoll_ctl ADD twice: EEXIST", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == -1 && errno == EEXIST);
    struct epoll_event got[4];
    check("epoll_wait times out with nothing ready", epoll_wait(ep, got, 4, 10) == 0);
    pthread_create(&t, NULL, late_writer, NULL);
    int ready = epoll_wait(ep, got, 4, -1);
    check("epoll_wait wakes when another thread writes", ready == 1 && (got[0].events & EPOLLIN) && got[0].data.u64 == 0xfeedbeef);
    pthread_join(t, NULL);
    check("epoll_ctl DEL", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL) == 0);
    close(ep);
    close(p[0]);
    close(p[1]);
    return finish();
}
