/* tmpfsfull: the VM's tmpfs lives in its memory. Run with a small --memory: first map, touch
 * and unmap most of it (so free memory is scattered pages, not one run), then write a /tmp
 * file until it fails. The write must fail with ENOSPC (not crash the VM), the file must keep
 * what was written, and deleting it must give the memory back. Prints how far it got in
 * MiB-independent terms only, so the output does not depend on --memory. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

static long fill(const char *path, int *error) {
    static char chunk[65536];
    memset(chunk, 0x5a, sizeof chunk);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    long total = 0;
    *error = 0;
    for (;;) {
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n < 0) { *error = errno; break; }
        total += n;
        if (total >= (1L << 31)) break;
    }
    close(fd);
    return total;
}

int main(void) {
    size_t churn = 20u << 20;  /* of 32 MiB: the kernel, a dynamic program's libraries and the
                                 * kernel's reserve (1/64 of memory, at least 512 KiB) take the rest */
    char *p = mmap(NULL, churn, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("map most of memory", p != MAP_FAILED);
    for (size_t i = 0; i < churn; i += 4096) p[i] = 1;
    munmap(p, churn);

    int error;
    long first = fill("/tmp/fill", &error);
    check("writing until full fails with ENOSPC", error == ENOSPC);
    check("more than 1 MiB went in", first > (1L << 20));
    struct stat st;
    check("the file keeps every byte written", stat("/tmp/fill", &st) == 0 && st.st_size == first);
    int fd = open("/tmp/fill", O_RDONLY);
    char byte = 0;
    check("and reads back", pread(fd, &byte, 1, first - 1) == 1 && byte == 0x5a);
    close(fd);
    check("unlink it", unlink("/tmp/fill") == 0);
    long second = fill("/tmp/fill2", &error);
    check("the memory came back: a second file grows as large", error == ENOSPC && second >= first);
    return finish();
}
