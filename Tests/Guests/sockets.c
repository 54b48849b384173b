// Sockets inside one machine: TCP and UDP over loopback, AF_UNIX pairs and names, readiness
// through poll and epoll, blocking calls across threads. Everything printed is the same on
// Linux and in Apus (ports are ephemeral and never printed).
#define _GNU_SOURCE
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/un.h>

#define CHECK(x) do { if (!(x)) { printf("check failed at line %d: %s (errno %d)\n", __LINE__, #x, errno); exit(1); } } while (0)

static uint32_t pattern(size_t i) { return (uint32_t)(i * 2654435761u) >> 24; }

static int tcp_listener(struct sockaddr_in *addr) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    int one = 1;
    CHECK(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(s, (struct sockaddr *)addr, sizeof *addr) == 0);
    socklen_t len = sizeof *addr;
    CHECK(getsockname(s, (struct sockaddr *)addr, &len) == 0);
    printf("listener: family %d, port assigned %s, address %s\n", addr->sin_family,
           addr->sin_port != 0 ? "yes" : "no", inet_ntoa(addr->sin_addr));
    CHECK(listen(s, 16) == 0);
    return s;
}

// 1 MiB each way at once, non-blocking, driven by poll: flow control both ways.
static void bulk(int a, int b) {
    enum { total = 1 << 20 };
    size_t sentA = 0, sentB = 0, gotA = 0, gotB = 0;
    unsigned char buf[16384];
    int bad = 0;
    fcntl(a, F_SETFL, O_NONBLOCK);
    fcntl(b, F_SETFL, O_NONBLOCK);
    while (gotA < total || gotB < total) {
        struct pollfd p[2] = {{a, POLLIN | (sentA < total ? POLLOUT : 0), 0}, {b, POLLIN | (sentB < total ? POLLOUT : 0), 0}};
        CHECK(poll(p, 2, 5000) > 0);
        for (int k = 0; k < 2; k++) {
            int fd = k ? b : a;
            size_t *sent = k ? &sentB : &sentA, *got = k ? &gotB : &gotA;
            if (p[k].revents & POLLOUT) {
                size_t n = total - *sent < sizeof buf ? total - *sent : sizeof buf;
                for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)pattern(*sent + i + k);
                ssize_t w = write(fd, buf, n);
                if (w > 0) *sent += (size_t)w;
            }
            if (p[k].revents & POLLIN) {
                ssize_t r = read(fd, buf, sizeof buf);
                CHECK(r > 0);
                for (ssize_t i = 0; i < r; i++) bad |= buf[i] != (unsigned char)pattern(*got + (size_t)i + !k);
                *got += (size_t)r;
            }
        }
    }
    printf("bulk: %zu and %zu bytes each way, %s\n", gotA, gotB, bad ? "CORRUPT" : "intact");
}

static void *connect_later(void *arg) {
    struct sockaddr_in *addr = arg;
    usleep(20000);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)addr, sizeof *addr) == 0);
    CHECK(write(c, "from thread", 11) == 11);
    close(c);
    return NULL;
}

static void tcp(void) {
    struct sockaddr_in addr;
    int s = tcp_listener(&addr);

    // Non-blocking connect: EINPROGRESS (or at once), then writable and SO_ERROR 0.
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(c, (struct sockaddr *)&addr, sizeof addr);
    CHECK(r == 0 || errno == EINPROGRESS);
    struct pollfd p = {c, POLLOUT, 0};
    CHECK(poll(&p, 1, 5000) == 1 && (p.revents & POLLOUT));
    int err = -1;
    socklen_t len = sizeof err;
    CHECK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
    printf("connect: SO_ERROR %d\n", err);
    struct sockaddr_in peer;
    len = sizeof peer;
    int a = accept4(s, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
    CHECK(a >= 0);
    printf("accept: peer %s, length %u\n", inet_ntoa(peer.sin_addr), len);
    struct sockaddr_in local, remote;
    len = sizeof local;
    CHECK(getsockname(c, (struct sockaddr *)&local, &len) == 0);
    len = sizeof remote;
    CHECK(getpeername(a, (struct sockaddr *)&remote, &len) == 0);
    printf("names agree: %s\n", local.sin_port == remote.sin_port ? "yes" : "no");

    int one = 1, value = 0, type = 0;
    CHECK(setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    len = sizeof value;
    CHECK(getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &value, &len) == 0);
    len = sizeof type;
    CHECK(getsockopt(a, SOL_SOCKET, SO_TYPE, &type, &len) == 0);
    printf("options: nodelay %d, type %d\n", value != 0, type);

    bulk(a, c);

    // Half-close: the reader sees EOF, the other direction still works.
    CHECK(shutdown(c, SHUT_WR) == 0);
    char buf[64];
    fcntl(a, F_SETFL, 0);
    printf("after shutdown: read %zd\n", read(a, buf, sizeof buf));
    CHECK(write(a, "still here", 10) == 10);
    fcntl(c, F_SETFL, 0);
    ssize_t n = read(c, buf, sizeof buf);
    printf("other direction: %.*s\n", (int)n, buf);
    close(a);
    n = read(c, buf, sizeof buf);
    printf("after close: read %zd\n", n);
    close(c);

    // A blocking accept woken by a connect from another thread.
    pthread_t t;
    pthread_create(&t, NULL, connect_later, &addr);
    a = accept(s, NULL, NULL);
    CHECK(a >= 0);
    n = read(a, buf, sizeof buf);
    printf("blocking accept: %.*s\n", (int)n, buf);
    pthread_join(t, NULL);
    close(a);
    close(s);

    // Nobody listens: refused.
    c = socket(AF_INET, SOCK_STREAM, 0);
    r = connect(c, (struct sockaddr *)&addr, sizeof addr);
    printf("closed port: %d %s\n", r, r < 0 ? strerror(errno) : "");
    close(c);
}

static void udp(void) {
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(a, (struct sockaddr *)&addr, sizeof addr) == 0);
    socklen_t len = sizeof addr;
    CHECK(getsockname(a, (struct sockaddr *)&addr, &len) == 0);
    CHECK(sendto(b, "datagram one", 12, 0, (struct sockaddr *)&addr, sizeof addr) == 12);
    CHECK(sendto(b, "two", 3, 0, (struct sockaddr *)&addr, sizeof addr) == 3);
    char buf[64];
    struct sockaddr_in from;
    len = sizeof from;
    ssize_t n = recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    printf("udp: %.*s from %s\n", (int)n, buf, inet_ntoa(from.sin_addr));
    // A short buffer: the rest of the datagram is lost; MSG_TRUNC says so.
    struct iovec v = {buf, 2};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    n = recvmsg(a, &m, 0);
    printf("udp truncated: %zd bytes, MSG_TRUNC %s\n", n, (m.msg_flags & MSG_TRUNC) ? "set" : "clear");
    // Connected: send/recv without addresses.
    CHECK(connect(b, (struct sockaddr *)&addr, sizeof addr) == 0);
    CHECK(send(b, "connected", 9, 0) == 9);
    n = recv(a, buf, sizeof buf, 0);
    printf("udp connected: %.*s\n", (int)n, buf);
    n = recv(a, buf, sizeof buf, MSG_DONTWAIT);
    printf("udp empty: %zd %s\n", n, n < 0 ? strerror(errno) : "");
    close(a);
    close(b);
}

static void unix_sockets(void) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(write(sv[0], "ping", 4) == 4);
    char buf[64];
    ssize_t n = read(sv[1], buf, sizeof buf);
    printf("socketpair: %.*s\n", (int)n, buf);
    close(sv[0]);
    printf("socketpair after close: %zd\n", read(sv[1], buf, sizeof buf));
    close(sv[1]);

    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
    CHECK(send(sv[0], "a", 1, 0) == 1 && send(sv[0], "bcd", 3, 0) == 3);
    n = recv(sv[1], buf, sizeof buf, 0);
    ssize_t n2 = recv(sv[1], buf, sizeof buf, 0);
    printf("dgram pair: %zd then %zd\n", n, n2);
    close(sv[0]);
    close(sv[1]);

    // A name in the abstract namespace (no file).
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    const char name[] = "\0apus-sockets-test";
    memcpy(addr.sun_path, name, sizeof name - 1);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof name - 1);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(s, (struct sockaddr *)&addr, alen) == 0);
    CHECK(listen(s, 4) == 0);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&addr, alen) == 0);
    int a = accept(s, NULL, NULL);
    CHECK(a >= 0);
    CHECK(write(c, "named", 5) == 5);
    n = read(a, buf, sizeof buf);
    printf("unix named: %.*s\n", (int)n, buf);
    close(a);
    close(c);
    close(s);

    // Nobody bound this name.
    struct sockaddr_un none = {.sun_family = AF_UNIX};
    strcpy(none.sun_path, "/nonexistent/apus.sock");
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    int r = connect(c, (struct sockaddr *)&none, sizeof none);
    printf("unix missing: %d %s\n", r, r < 0 ? strerror(errno) : "");
    close(c);
}

static void epoll_readiness(void) {
    struct sockaddr_in addr;
    int s = tcp_listener(&addr);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
    struct epoll_event out[4];
    printf("epoll idle: %d\n", epoll_wait(ep, out, 4, 0));
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&addr, sizeof addr) == 0);
    int n = epoll_wait(ep, out, 4, 2000);
    printf("epoll listener: %d ready, data %u, EPOLLIN %s\n", n, out[0].data.u32, (out[0].events & EPOLLIN) ? "yes" : "no");
    int a = accept(s, NULL, NULL);
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u32 = 9;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) == 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL) == 0);
    close(c);
    n = epoll_wait(ep, out, 4, 2000);
    printf("epoll peer closed: %d ready, data %u, EPOLLRDHUP %s\n", n, out[0].data.u32, (out[0].events & EPOLLRDHUP) ? "yes" : "no");
    close(a);
    close(s);
    // A closed descriptor leaves the interest list: its number can be added again.
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    ev.events = EPOLLIN;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev) == 0);
    close(sv[0]);
    int again = socket(AF_INET, SOCK_STREAM, 0);
    printf("epoll add after close and reuse: %d\n", again == sv[0] ? epoll_ctl(ep, EPOLL_CTL_ADD, again, &ev) : -2);
    close(again);
    close(sv[1]);
    close(ep);
}

struct drain { int fd; size_t want; size_t got; int bad; };

static void *drain_socket(void *arg) {
    struct drain *d = arg;
    unsigned char buf[8192];
    while (d->got < d->want) {
        ssize_t r = read(d->fd, buf, sizeof buf);
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) d->bad |= buf[i] != (unsigned char)pattern(d->got + (size_t)i);
        d->got += (size_t)r;
    }
    return NULL;
}

// sendfile from a file to a socket, splice from a pipe to a socket.
static void zero_copy(void) {
    enum { size = 300000 };
    char path[64];
    snprintf(path, sizeof path, "/tmp/apus-sendfile-%d", (int)getpid());
    int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(f >= 0);
    static unsigned char data[size];
    for (size_t i = 0; i < size; i++) data[i] = (unsigned char)pattern(i);
    CHECK(write(f, data, size) == size);
    struct sockaddr_in addr;
    int s = tcp_listener(&addr);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&addr, sizeof addr) == 0);
    int a = accept(s, NULL, NULL);
    struct drain d = {a, size, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, drain_socket, &d);
    off_t offset = 0;
    while (offset < size) {
        ssize_t n = sendfile(c, f, &offset, size - (size_t)offset);
        CHECK(n > 0);
    }
    pthread_join(t, NULL);
    printf("sendfile: %zu bytes %s, offset %ld, file position %ld\n", d.got, d.bad ? "CORRUPT" : "intact",
           (long)offset, (long)lseek(f, 0, SEEK_CUR));
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(write(p[1], data, 1000) == 1000);
    ssize_t moved = splice(p[0], NULL, c, NULL, 1000, 0);
    unsigned char back[1000];
    size_t got = 0;
    while (got < 1000) { ssize_t r = read(a, back + got, 1000 - got); CHECK(r > 0); got += (size_t)r; }
    printf("splice: moved %zd, %s\n", moved, memcmp(back, data, 1000) ? "CORRUPT" : "intact");
    close(p[0]);
    close(p[1]);
    close(a);
    close(c);
    close(s);
    close(f);
    unlink(path);
}

static void resolve(void) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int r = getaddrinfo("127.0.0.1", "80", &hints, &res);
    if (r == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)res->ai_addr;
        printf("getaddrinfo numeric: %s port %d\n", inet_ntoa(sin->sin_addr), ntohs(sin->sin_port));
        freeaddrinfo(res);
    } else {
        printf("getaddrinfo numeric: %s\n", gai_strerror(r));
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    tcp();
    udp();
    unix_sockets();
    epoll_readiness();
    zero_copy();
    resolve();
    return 0;
}
