// An outbound TCP client, for the network tests and Benchmarks/network.sh.
//
//   fetch get HOST PORT PATH   HTTP/1.0 GET; the body on stdout (byte for byte), exit 0 when
//                              the status is 200 and the body has the Content-Length
//   fetch send HOST PORT MIB   writes MIB MiB of pattern(i), shuts down its side, reads the
//                              peer's reply to EOF; prints "sent N bytes in T s (R MB/s)" on
//                              stderr and the reply on stdout
//   fetch recv HOST PORT       reads to EOF and checks every byte against pattern(i); prints
//                              "received N bytes, pattern ok" on stdout and the time on stderr
//   fetch serve-recv ADDR PORT       the host side of `send`: listens on ADDR:PORT (0: any port;
//                              "port N" on stdout), reads one connection to EOF, checks it and
//                              answers "host received N bytes, pattern ok|BAD"
//   fetch serve-send ADDR PORT MIB   the host side of `recv`: listens, writes MIB MiB of
//                              pattern(i) to one connection, closes
//
// HOST is a name (getaddrinfo: /etc/hosts) or an IPv4 address. pattern(i) is
// (i * 2654435761 mod 2^32) >> 24, as in sockets.c. Failures: a message on stderr, exit 1.
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static unsigned char pattern(uint64_t i) { return (unsigned char)((uint32_t)(i * 2654435761u) >> 24); }

static void die(const char *what) {
    fprintf(stderr, "fetch: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int dial(const char *host, const char *port) {
    struct addrinfo hints = {0}, *res;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "fetch: getaddrinfo %s: %s\n", host, gai_strerror(rc));
        exit(1);
    }
    int s = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (s < 0) die("socket");
    if (connect(s, res->ai_addr, res->ai_addrlen) != 0) die("connect");
    freeaddrinfo(res);
    return s;
}

static void write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        c += w;
        n -= (size_t)w;
    }
}

static int get(const char *host, const char *port, const char *path) {
    int s = dial(host, port);
    char req[1024];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: apus-fetch\r\n\r\n", path, host);
    write_all(s, req, (size_t)len);
    // Read the head (up to the blank line), then stream the body to stdout.
    char head[8192];
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have == sizeof head - 1) { fprintf(stderr, "fetch: response head too long\n"); return 1; }
        ssize_t r = read(s, head + have, sizeof head - 1 - have);
        if (r < 0) { if (errno == EINTR) continue; die("read head"); }
        if (r == 0) { fprintf(stderr, "fetch: connection closed before the end of the head (%zu bytes)\n", have); return 1; }
        have += (size_t)r;
        head[have] = 0;
        end = strstr(head, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(head, "HTTP/%*d.%*d %d", &status) != 1) { fprintf(stderr, "fetch: bad status line\n"); return 1; }
    long long expected = -1;
    for (char *line = strstr(head, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0) expected = atoll(line + 17);
    }
    size_t bodyStart = (size_t)(end + 4 - head);
    long long body = (long long)(have - bodyStart);
    write_all(1, head + bodyStart, have - bodyStart);
    static char buf[65536];
    for (;;) {
        ssize_t r = read(s, buf, sizeof buf);
        if (r < 0) { if (errno == EINTR) continue; die("read body"); }
        if (r == 0) break;
        write_all(1, buf, (size_t)r);
        body += r;
    }
    close(s);
    if (status != 200) { fprintf(stderr, "fetch: HTTP status %d\n", status); return 1; }
    if (expected >= 0 && body != expected) {
        fprintf(stderr, "fetch: body of %lld bytes, Content-Length %lld\n", body, expected);
        return 1;
    }
    return 0;
}

static int sendBulk(const char *host, const char *port, long mib) {
    static unsigned char buf[65536];
    uint64_t total = (uint64_t)mib << 20, sent = 0;
    double t0 = now();
    int s = dial(host, port);
    while (sent < total) {
        size_t n = total - sent < sizeof buf ? (size_t)(total - sent) : sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = pattern(sent + i);
        write_all(s, buf, n);
        sent += n;
    }
    if (shutdown(s, SHUT_WR) != 0) die("shutdown");
    char reply[256];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(s, reply + got, sizeof reply - 1 - got);
        if (r < 0) { if (errno == EINTR) continue; die("read reply"); }
        if (r == 0 || (got += (size_t)r) == sizeof reply - 1) break;
    }
    reply[got] = 0;
    double t = now() - t0;
    close(s);
    fprintf(stderr, "sent %llu bytes in %.3f s (%.1f MB/s)\n", (unsigned long long)sent, t, (double)sent / t / 1e6);
    fputs(reply, stdout);
    return 0;
}

static int recvBulk(const char *host, const char *port) {
    static unsigned char buf[65536];
    uint64_t got = 0, bad = 0;
    double t0 = now();
    int s = dial(host, port);
    for (;;) {
        ssize_t r = read(s, buf, sizeof buf);
        if (r < 0) { if (errno == EINTR) continue; die("read"); }
        if (r == 0) break;
        for (ssize_t i = 0; i < r; i++) if (buf[i] != pattern(got + (uint64_t)i)) bad++;
        got += (uint64_t)r;
    }
    double t = now() - t0;
    close(s);
    fprintf(stderr, "received %llu bytes in %.3f s (%.1f MB/s)\n", (unsigned long long)got, t, (double)got / t / 1e6);
    printf("received %llu bytes, %s\n", (unsigned long long)got, bad ? "pattern BAD" : "pattern ok");
    return bad ? 1 : 0;
}

// Listens on ADDR:PORT, prints "port N", returns one accepted connection.
static int acceptOne(const char *addr, const char *port) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0) die("socket");
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) { fprintf(stderr, "fetch: bad address %s\n", addr); exit(1); }
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
    if (listen(l, 4) != 0) die("listen");
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &len);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    int c = accept(l, NULL, NULL);
    if (c < 0) die("accept");
    close(l);
    return c;
}

static int serveRecv(const char *addr, const char *port) {
    static unsigned char buf[65536];
    int c = acceptOne(addr, port);
    uint64_t got = 0, bad = 0;
    for (;;) {
        ssize_t r = read(c, buf, sizeof buf);
        if (r < 0) { if (errno == EINTR) continue; die("read"); }
        if (r == 0) break;
        for (ssize_t i = 0; i < r; i++) if (buf[i] != pattern(got + (uint64_t)i)) bad++;
        got += (uint64_t)r;
    }
    char reply[128];
    int n = snprintf(reply, sizeof reply, "host received %llu bytes, pattern %s\n", (unsigned long long)got, bad ? "BAD" : "ok");
    write_all(c, reply, (size_t)n);
    close(c);
    fputs(reply, stdout);
    return bad ? 1 : 0;
}

static int serveSend(const char *addr, const char *port, long mib) {
    static unsigned char buf[65536];
    int c = acceptOne(addr, port);
    uint64_t total = (uint64_t)mib << 20, sent = 0;
    while (sent < total) {
        size_t n = total - sent < sizeof buf ? (size_t)(total - sent) : sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = pattern(sent + i);
        write_all(c, buf, n);
        sent += n;
    }
    shutdown(c, SHUT_WR);
    while (read(c, buf, sizeof buf) > 0) {}
    close(c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "serve-recv") == 0) return serveRecv(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "serve-send") == 0) return serveSend(argv[2], argv[3], atol(argv[4]));
    if (argc == 5 && strcmp(argv[1], "get") == 0) return get(argv[2], argv[3], argv[4]);
    if (argc == 5 && strcmp(argv[1], "send") == 0) return sendBulk(argv[2], argv[3], atol(argv[4]));
    if (argc == 4 && strcmp(argv[1], "recv") == 0) return recvBulk(argv[2], argv[3]);
    fprintf(stderr, "usage: fetch get HOST PORT PATH | send HOST PORT MIB | recv HOST PORT | serve-recv ADDR PORT | serve-send ADDR PORT MIB\n");
    return 2;
}
