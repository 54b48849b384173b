/* stdin: reads fd 0 to EOF with read(2) in odd-sized chunks and prints the byte count,
 * the number of lines and an FNV-1a checksum — checks that apus forwards its stdin to the
 * guest (the harness pipes in ~100 KiB of known data, or /dev/null → 0 bytes). */
#include <stdio.h>
#include <unistd.h>
#include "common.h"

int main(void) {
    char buf[3001];
    uint64_t h = FNV_INIT;
    size_t total = 0, lines = 0;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0) { perror("read"); return 2; }
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++) if (buf[i] == '\n') lines++;
        h = fnv1a(buf, (size_t)n, h);
        total += (size_t)n;
    }
    printf("bytes=%zu lines=%zu fnv=%016llx\n", total, lines, (unsigned long long)h);
    return 0;
}
