/* filemap: private file mappings of a file the program did not write (its own executable,
 * which in Apus is mapped straight from the image): the mapping shows the file, a store after
 * mprotect(PROT_WRITE) stays private to that mapping, MADV_DONTNEED and mremap keep the
 * bytes, and mapping and unmapping many times leaves memory intact. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

/* The /proc/self/maps line of the mapping at `address`: its offset field and its name. */
static int maps_line(void *address, unsigned long *offset, char *name, size_t size) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long start, end;
        int consumed = 0;
        if (sscanf(line, "%lx-%lx %*4s %lx %*x:%*x %*u %n", &start, &end, offset, &consumed) >= 3 &&
            start <= (unsigned long)address && (unsigned long)address < end) {
            snprintf(name, size, "%s", line + consumed);
            name[strcspn(name, "\n")] = 0;
            found = 1;
        }
    }
    fclose(f);
    return found;
}

int main(void) {
    char path[512] = {0};
    check("readlink /proc/self/exe", readlink("/proc/self/exe", path, sizeof path - 1) > 0);
    int fd = open(path, O_RDONLY);
    struct stat st;
    check("open and stat /proc/self/exe", fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 8192);
    size_t size = st.st_size;
    unsigned char *copy = malloc(size);
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, copy + got, size - got, got);
        if (n <= 0) break;
        got += n;
    }
    check("read it whole", got == size);

    unsigned char *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    check("mmap PROT_READ MAP_PRIVATE", m != MAP_FAILED);
    check("the mapping shows the file", memcmp(m, copy, size) == 0);
    size_t tail = size % 4096;
    int zero_tail = 1;
    for (size_t i = size; tail && i < size - tail + 4096; i++) if (m[i] != 0) zero_tail = 0;
    check("the rest of the last page is zero", zero_tail);

    unsigned char *at = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 4096);
    check("a mapping at offset 4096 shows the file from there", at != MAP_FAILED && memcmp(at, copy + 4096, 4096) == 0);
    unsigned long offset = 0;
    char name[512] = {0};
    check("/proc/self/maps names the file and the offset",
          maps_line(at, &offset, name, sizeof name) && offset == 4096 && strcmp(name, path) == 0);

    check("mprotect a page read-write", mprotect(m, 4096, PROT_READ | PROT_WRITE) == 0);
    m[0] = 'X';
    m[1] = 'Y';
    unsigned char first[2];
    check("the store is in the mapping", m[0] == 'X' && m[1] == 'Y');
    check("the file is unchanged", pread(fd, first, 2, 0) == 2 && first[0] == copy[0] && first[1] == copy[1]);
    unsigned char *again = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    check("a new mapping shows the file, not the store", again != MAP_FAILED && again[0] == copy[0]);
    check("the rest of the first mapping is intact", memcmp(m + 4096, copy + 4096, size - 4096) == 0);

    check("MADV_DONTNEED on a read-only file mapping", madvise(again, 4096, MADV_DONTNEED) == 0);
    check("keeps the file's bytes", memcmp(again, copy, 4096) == 0);

    unsigned char *moved = mremap(at, 4096, 8192, MREMAP_MAYMOVE);
    check("mremap grows a read-only file mapping", moved != MAP_FAILED && memcmp(moved, copy + 4096, 4096) == 0);
    munmap(moved, 8192);
    munmap(again, 4096);
    munmap(m, size);

    /* Many mappings made and dropped, then fresh anonymous memory written and read back:
     * a page of the file must never come back as someone else's memory. */
    for (int i = 0; i < 200; i++) {
        unsigned char *p = mmap(NULL, size, PROT_READ | (i % 2 ? PROT_EXEC : 0), MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED || p[0] != copy[0]) { check("map and unmap 200 times", 0); break; }
        munmap(p, size);
    }
    size_t anon = 16 << 20;
    unsigned char *a = mmap(NULL, anon, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("fresh anonymous memory", a != MAP_FAILED);
    int zero = 1;
    for (size_t i = 0; i < anon; i += 512) if (a[i] != 0) zero = 0;
    check("reads zero", zero);
    for (size_t i = 0; i < anon; i++) a[i] = (unsigned char)(i * 31);
    int kept = 1;
    for (size_t i = 0; i < anon; i++) if (a[i] != (unsigned char)(i * 31)) kept = 0;
    check("and keeps what is written", kept);
    check("the file is still the file", pread(fd, first, 2, 0) == 2 && first[0] == copy[0] && first[1] == copy[1]);
    return finish();
}
