/* sharedmap: MAP_SHARED file mappings are the file. Stores through a mapping are what
 * read() returns, write() is what every mapping shows, two mappings of one file see each
 * other's stores, the bytes outlive the mapping (and an unlinked file lives while mapped),
 * truncation zeroes the mapped tail, and descriptors without write access cannot make or
 * mprotect a mapping writable (EACCES; O_APPEND is no obstacle). Pages wholly past the end of the file are never
 * touched: Linux raises SIGBUS there. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

#define PAGE 4096

static char *shared_area;

static void *store_from_thread(void *arg) {
    (void)arg;
    memcpy(shared_area + 100, "from a thread", 13);
    return NULL;
}

/* Whether /proc/self/maps lists the mapping at `address` as shared ("rw-s"). */
static int maps_says_shared(void *address) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[512];
    int shared = 0;
    unsigned long want = (unsigned long)address;
    while (fgets(line, sizeof line, f)) {
        unsigned long start, end;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) == 3 && start <= want && want < end)
            shared = perms[3] == 's';
    }
    fclose(f);
    return shared;
}

int main(void) {
    const char *path = "/tmp/sharedmap.data";
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    check("open", fd >= 0);
    static char page[2 * PAGE];
    for (int i = 0; i < 2 * PAGE; i++) page[i] = (char)('a' + i % 26);
    check("write two pages", write(fd, page, sizeof page) == (ssize_t)sizeof page);

    char *a = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    check("mmap MAP_SHARED read-write", a != MAP_FAILED);
    check("the mapping shows the file", memcmp(a, page, sizeof page) == 0);
    check("/proc/self/maps marks it shared", maps_says_shared(a));

    memcpy(a + 10, "STORED", 6);
    char buffer[32] = {0};
    check("pread sees a store through the mapping",
          pread(fd, buffer, 6, 10) == 6 && memcmp(buffer, "STORED", 6) == 0);
    check("pwrite is seen by the mapping", pwrite(fd, "WRITTEN", 7, PAGE + 5) == 7 && memcmp(a + PAGE + 5, "WRITTEN", 7) == 0);

    char *b = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PAGE);
    check("a second mapping at offset one page", b != MAP_FAILED);
    check("it shows the first mapping's bytes", memcmp(b + 5, "WRITTEN", 7) == 0);
    b[0] = '#';
    check("a store through the second is in the first", a[PAGE] == '#');

    shared_area = a;
    pthread_t thread;
    pthread_create(&thread, NULL, store_from_thread, NULL);
    pthread_join(thread, NULL);
    check("a store from another thread is read back", pread(fd, buffer, 13, 100) == 13 && memcmp(buffer, "from a thread", 13) == 0);

    char *copy = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    check("a private mapping made now has the stored bytes", copy != MAP_FAILED && memcmp(copy + 10, "STORED", 6) == 0);
    copy[10] = 'x';
    check("a store to the private copy stays private", a[10] == 'S');
    munmap(copy, PAGE);

    check("MADV_DONTNEED keeps a shared mapping's bytes",
          madvise(a, PAGE, MADV_DONTNEED) == 0 && memcmp(a + 10, "STORED", 6) == 0);
    check("msync(MS_SYNC)", msync(a, 2 * PAGE, MS_SYNC) == 0);

    /* Shrinking the file zeroes the rest of the last page in the mapping. */
    check("ftruncate to 100 bytes", ftruncate(fd, 100) == 0);
    check("the mapped tail past the end reads zero", a[100] == 0 && a[PAGE - 1] == 0 && a[99] == page[99]);
    check("ftruncate back to two pages", ftruncate(fd, 2 * PAGE) == 0);
    check("the regrown page reads zero", a[PAGE + 5] == 0);
    a[PAGE + 1] = 'Z';

    munmap(b, PAGE);
    munmap(a, 2 * PAGE);
    struct stat st;
    check("the file keeps its size", fstat(fd, &st) == 0 && st.st_size == 2 * PAGE);
    check("the bytes outlive the mappings",
          pread(fd, buffer, 6, 10) == 6 && memcmp(buffer, "STORED", 6) == 0 && pread(fd, buffer, 1, PAGE + 1) == 1 && buffer[0] == 'Z');

    /* Growing a shared mapping with mremap maps the file's next pages. */
    char *small = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *grown = mremap(small, PAGE, 2 * PAGE, MREMAP_MAYMOVE);
    check("mremap grows a shared mapping", grown != MAP_FAILED && grown[PAGE + 1] == 'Z');
    grown[PAGE + 2] = 'Y';
    check("a store through the grown part reaches the file", pread(fd, buffer, 1, PAGE + 2) == 1 && buffer[0] == 'Y');
    munmap(grown, 2 * PAGE);

    /* Access rights come from the descriptor. */
    int ro = open(path, O_RDONLY);
    errno = 0;
    check("PROT_WRITE MAP_SHARED through O_RDONLY is EACCES",
          mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED && errno == EACCES);
    char *r = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0);
    check("PROT_READ MAP_SHARED through O_RDONLY", r != MAP_FAILED && r[10] == 'S');
    errno = 0;
    check("mprotect(PROT_WRITE) of it is EACCES", mprotect(r, PAGE, PROT_READ | PROT_WRITE) == -1 && errno == EACCES);
    check("a later write is seen by the read-only mapping", pwrite(fd, "s", 1, 10) == 1 && r[10] == 's');
    munmap(r, PAGE);
    close(ro);
    int appending = open(path, O_RDWR | O_APPEND);
    char *through_append = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, appending, 0);
    check("PROT_WRITE MAP_SHARED through O_APPEND (only append-only files refuse)", through_append != MAP_FAILED);
    munmap(through_append, PAGE);
    close(appending);

    /* A mapping holds its file: closed and unlinked, it still works. */
    char *held = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    check("unlink while mapped", unlink(path) == 0);
    held[0] = '!';
    check("the unlinked file's mapping still works", held[0] == '!' && held[10] == 's');
    munmap(held, PAGE);

    /* A one-MiB file written through a mapping, checked through read(). */
    int big = open("/tmp/sharedmap.big", O_CREAT | O_RDWR | O_TRUNC, 0600);
    size_t size = 1 << 20;
    check("ftruncate to 1 MiB", ftruncate(big, size) == 0);
    unsigned char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, big, 0);
    check("map it", m != MAP_FAILED);
    for (size_t i = 0; i < size; i++) m[i] = (unsigned char)(i * 7 + i / 4096);
    uint64_t mapped_sum = fnv1a(m, size, FNV_INIT);
    munmap(m, size);
    static unsigned char back[1 << 20];
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(big, back + got, size - got, got);
        if (n <= 0) break;
        got += n;
    }
    check("read() returns what was stored through the mapping", got == size && fnv1a(back, size, FNV_INIT) == mapped_sum);
    close(big);
    unlink("/tmp/sharedmap.big");
    return finish();
}
