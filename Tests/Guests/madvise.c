/* madvise: MADV_DONTNEED on private anonymous memory must make the pages read back as
 * zero (Linux semantics that allocators such as jemalloc and Go's runtime rely on);
 * MADV_WILLNEED/MADV_NORMAL succeed and keep contents; an unaligned address is EINVAL. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include "common.h"

int main(void) {
    size_t len = 64 * 4096;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("mmap", p != MAP_FAILED);
    memset(p, 0xab, len);
    check("MADV_WILLNEED succeeds", madvise(p, len, MADV_WILLNEED) == 0);
    check("MADV_NORMAL succeeds", madvise(p, len, MADV_NORMAL) == 0);
    check("contents kept after WILLNEED/NORMAL", p[0] == 0xab && p[len - 1] == 0xab);
    check("MADV_DONTNEED on pages 8..15 succeeds", madvise(p + 8 * 4096, 8 * 4096, MADV_DONTNEED) == 0);
    int zero = 1, kept = 1;
    for (size_t i = 0; i < len; i++) {
        int in = i >= 8 * 4096 && i < 16 * 4096;
        if (in && p[i] != 0) zero = 0;
        if (!in && p[i] != 0xab) kept = 0;
    }
    check("DONTNEED pages read back as zero", zero);
    check("other pages keep their contents", kept);
    /* A PROT_NONE page (a guard page) may be discarded too; it reads zero once accessible. */
    check("mprotect page 20 PROT_NONE", mprotect(p + 20 * 4096, 4096, PROT_NONE) == 0);
    check("MADV_DONTNEED on a PROT_NONE page succeeds", madvise(p + 20 * 4096, 4096, MADV_DONTNEED) == 0);
    check("it reads zero after PROT_READ", mprotect(p + 20 * 4096, 4096, PROT_READ) == 0 && p[20 * 4096] == 0);
    errno = 0;
    check("MADV_DONTNEED on an unmapped range is ENOMEM",
          madvise((char *)p - 1024 * 4096, 4096, MADV_DONTNEED) == -1 && errno == ENOMEM);
    errno = 0;
    check("unaligned madvise fails with EINVAL", madvise(p + 1, 4096, MADV_DONTNEED) == -1 && errno == EINVAL);
    check("msync(MS_SYNC) of a mapped range", msync(p, len, MS_SYNC) == 0);
    check("msync(MS_ASYNC | MS_INVALIDATE)", msync(p, 4096, MS_ASYNC | MS_INVALIDATE) == 0);
    check("msync with MS_ASYNC and MS_SYNC is EINVAL", msync(p, 4096, MS_ASYNC | MS_SYNC) == -1 && errno == EINVAL);
    check("msync of an unaligned address is EINVAL", msync(p + 1, 4096, MS_SYNC) == -1 && errno == EINVAL);
    munmap(p + len - 4096, 4096);
    check("msync over an unmapped page is ENOMEM", msync(p + len - 8192, 8192, MS_SYNC) == -1 && errno == ENOMEM);
    munmap(p, len);
    return finish();
}
