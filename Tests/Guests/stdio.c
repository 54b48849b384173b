/* stdio: the console path, byte for byte. Interleaved stdout/stderr writes (each stream
 * must keep its own order), printf and write(2) mixed on stdout, a single 200 KiB
 * write(1) (must return the full length), a 300 KiB fwrite, writev with several iovecs
 * (one empty), every byte value 0..255 (incl. NUL, \r, 0xff), zero-length writes,
 * readv/read on stdin (the harness gives /dev/null → EOF), EBADF for fd 999. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

static void out(const char *s) { write(1, s, strlen(s)); }
static void err(const char *s) { write(2, s, strlen(s)); }

int main(void) {
    /* Interleaving: only per-stream order is observable, and must be kept. */
    for (int i = 0; i < 5; i++) {
        printf("stdout line %d\n", i);
        fflush(stdout);
        fprintf(stderr, "stderr line %d\n", i);
    }
    /* printf then raw write on the same fd: flushed in between, so order is defined. */
    printf("printf A ");
    fflush(stdout);
    out("write B ");
    printf("printf C\n");
    fflush(stdout);

    /* One big write(2). */
    size_t big = 200 * 1024;
    char *buf = malloc(big);
    for (size_t i = 0; i < big; i++) buf[i] = (i % 64 == 63) ? '\n' : (char)('a' + (i * 7) % 26);
    ssize_t n = write(1, buf, big);
    out("\n");
    fprintf(stderr, "write(200 KiB) returned full length: %s\n", n == (ssize_t)big ? "yes" : "no");

    /* Big fwrite through stdio buffering. */
    size_t big2 = 300 * 1024;
    char *buf2 = malloc(big2);
    for (size_t i = 0; i < big2; i++) buf2[i] = (i % 80 == 79) ? '\n' : (char)('A' + (i * 13) % 26);
    size_t m = fwrite(buf2, 1, big2, stdout);
    fflush(stdout);
    fprintf(stderr, "fwrite(300 KiB) wrote all: %s\n", m == big2 ? "yes" : "no");

    /* writev with an empty iovec in the middle. */
    struct iovec iov[4] = {
        {"writev ", 7}, {"", 0}, {"part two ", 9}, {"part three\n", 11},
    };
    ssize_t w = writev(1, iov, 4);
    fprintf(stderr, "writev returned %zd\n", w);
    struct iovec eiov[2] = {{"writev to ", 10}, {"stderr\n", 7}};
    writev(2, eiov, 2);

    /* Every byte value, on both streams. */
    unsigned char bytes[256];
    for (int i = 0; i < 256; i++) bytes[i] = (unsigned char)i;
    out("binary:");
    write(1, bytes, 256);
    out("\n");
    err("binary:");
    write(2, bytes, 256);
    err("\n");

    /* Zero-length writes. */
    fprintf(stderr, "write(1, len 0) = %zd\n", write(1, "x", 0));

    /* stdin is /dev/null in the harness: EOF. */
    char in[16];
    struct iovec riov[2] = {{in, 8}, {in + 8, 8}};
    fprintf(stderr, "readv(0) at EOF = %zd\n", readv(0, riov, 2));
    fprintf(stderr, "read(0) at EOF = %zd\n", read(0, in, sizeof in));

    /* A descriptor that is not open. */
    errno = 0;
    ssize_t r = write(999, "x", 1);
    fprintf(stderr, "write(999) = %zd, EBADF: %s\n", r, errno == EBADF ? "yes" : "no");

    printf("done\n");
    fflush(stdout);
    err("stderr done\n");
    free(buf);
    free(buf2);
    return 0;
}
