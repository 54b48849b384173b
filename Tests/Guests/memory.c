/* memory: the anonymous-memory syscalls with Linux semantics. malloc/free of many sizes
 * (1 B .. 10 MiB, so both brk- and mmap-backed), raw brk grow/touch/shrink/regrow (regrown
 * memory reads as zero), mmap/munmap (fresh pages are zero, partial munmap of the middle
 * leaves both ends usable, MAP_FIXED over a just-unmapped range), mprotect (PROT_NONE →
 * RW, RW → R), mremap grow with MREMAP_MAYMOVE (contents kept, the tail zero) and shrink,
 * realloc growth. Every region is fully touched; checksums of the contents are printed. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include "common.h"

#define PAGE 4096

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + seed + (i >> 12));
}
static int is_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) if (p[i]) return 0;
    return 1;
}
static int has_pattern(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) if (p[i] != (unsigned char)(i * 31 + seed + (i >> 12))) return 0;
    return 1;
}

static void test_malloc(void) {
    static const size_t sizes[] = {1, 7, 16, 24, 100, 255, 4096, 4097, 65536, 100000,
                                   131072, 200000, 1 << 20, 3 << 20, 10 << 20};
    enum { N = sizeof sizes / sizeof sizes[0] };
    unsigned char *ptrs[N];
    uint64_t h = FNV_INIT;
    int ok = 1;
    for (int i = 0; i < N; i++) {
        ptrs[i] = malloc(sizes[i]);
        if (!ptrs[i]) { ok = 0; continue; }
        fill(ptrs[i], sizes[i], (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        if (!ptrs[i]) continue;
        if (!has_pattern(ptrs[i], sizes[i], (unsigned)i)) ok = 0;
        h = fnv1a(ptrs[i], sizes[i], h);
    }
    for (int i = 0; i < N; i += 2) free(ptrs[i]);
    for (int i = 1; i < N; i += 2) free(ptrs[i]);
    check("malloc 15 sizes up to 10 MiB, all touched, contents intact", ok);
    printf("malloc checksum: %016llx\n", (unsigned long long)h);

    /* Many small allocations. */
    void *small[10000];
    ok = 1;
    for (int i = 0; i < 10000; i++) {
        small[i] = malloc((size_t)(i % 200) + 1);
        if (!small[i]) ok = 0; else memset(small[i], i & 0xff, (size_t)(i % 200) + 1);
    }
    for (int i = 0; i < 10000; i++) {
        unsigned char *p = small[i];
        if (p && (p[0] != (i & 0xff) || p[i % 200] != (i & 0xff))) ok = 0;
        free(p);
    }
    check("10000 small mallocs", ok);

    /* calloc is zero, realloc keeps contents while growing past the mmap threshold. */
    unsigned char *c = calloc(1, 5 << 20);
    check("calloc(5 MiB) is zero", c && is_zero(c, 5 << 20));
    free(c);
    unsigned char *r = malloc(1000);
    fill(r, 1000, 9);
    for (size_t n = 2000; n <= (8u << 20); n *= 2) {
        r = realloc(r, n);
        if (!r) break;
    }
    check("realloc 1000 B -> 8 MiB keeps contents", r && has_pattern(r, 1000, 9));
    free(r);
}

static void test_brk(void) {
    uintptr_t cur = (uintptr_t)syscall(SYS_brk, 0);
    check("brk(0) returns a break", cur != 0 && cur != (uintptr_t)-1);
    size_t grow = 1 << 20;
    uintptr_t want = cur + grow;
    uintptr_t got = (uintptr_t)syscall(SYS_brk, want);
    check("brk grows by 1 MiB", got == want);
    if (got == want) {
        unsigned char *p = (unsigned char *)cur;
        check("grown brk memory is zero", is_zero(p, grow));
        fill(p, grow, 3);
        check("grown brk memory holds data", has_pattern(p, grow, 3));
        check("brk shrinks back", (uintptr_t)syscall(SYS_brk, cur) == cur);
        check("brk regrows", (uintptr_t)syscall(SYS_brk, want) == want);
        /* The page holding the old break may keep its bytes; pages past it must be zero. */
        uintptr_t first_full = (cur + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
        check("regrown brk pages are zero", is_zero((unsigned char *)first_full, want - first_full));
        syscall(SYS_brk, cur);
    }
    check("brk(0) after shrinking equals the start", (uintptr_t)syscall(SYS_brk, 0) == cur);
}

static void test_mmap(void) {
    size_t len = 4 << 20;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("mmap 4 MiB anonymous", p != MAP_FAILED);
    if (p == MAP_FAILED) return;
    check("mmap result page-aligned", ((uintptr_t)p & (PAGE - 1)) == 0);
    check("fresh mmap memory is zero", is_zero(p, len));
    fill(p, len, 5);
    printf("mmap checksum: %016llx\n", (unsigned long long)fnv1a(p, len, FNV_INIT));

    /* Punch a hole in the middle; both ends stay intact and usable. */
    check("munmap middle 1 MiB", munmap(p + (1 << 20), 1 << 20) == 0);
    check("head intact after partial munmap", has_pattern(p, 1 << 20, 5));
    int tail_ok = 1;
    for (size_t i = 2 << 20; i < len; i++)
        if (p[i] != (unsigned char)(i * 31 + 5 + (i >> 12))) { tail_ok = 0; break; }
    check("tail intact after partial munmap", tail_ok);

    /* MAP_FIXED into the hole. */
    unsigned char *f = mmap(p + (1 << 20), 1 << 20, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    check("MAP_FIXED into the hole returns that address", f == p + (1 << 20));
    check("MAP_FIXED memory is zero", f != MAP_FAILED && is_zero(f, 1 << 20));
    /* MAP_FIXED over live data replaces it with zeroes. */
    unsigned char *g = mmap(p, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    check("MAP_FIXED over live data gives zero page", g == p && is_zero(p, PAGE) && p[PAGE] == (unsigned char)(PAGE * 31 + 5 + 1));
    check("munmap whole 4 MiB", munmap(p, len) == 0);
    check("munmap of an unmapped range succeeds", munmap(p, len) == 0);

    /* PROT_NONE → RW with mprotect, then RW → R (reads still work). */
    unsigned char *q = mmap(NULL, 16 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check("mmap PROT_NONE", q != MAP_FAILED);
    check("mprotect PROT_NONE -> RW", mprotect(q, 16 * PAGE, PROT_READ | PROT_WRITE) == 0);
    fill(q, 16 * PAGE, 7);
    check("mprotect RW -> R", mprotect(q, 16 * PAGE, PROT_READ) == 0);
    check("read-only memory still readable", has_pattern(q, 16 * PAGE, 7));
    check("mprotect part back to RW", mprotect(q + 4 * PAGE, 4 * PAGE, PROT_READ | PROT_WRITE) == 0);
    q[4 * PAGE] = 1;
    check("write to re-enabled part", q[4 * PAGE] == 1);
    check("mprotect unaligned address fails", syscall(SYS_mprotect, q + 1, PAGE, PROT_READ) != 0); /* raw: musl rounds down */
    munmap(q, 16 * PAGE);

    /* mremap: grow (may move) keeps contents, new tail is zero; shrink in place. */
    size_t a = 1 << 20, b = 6 << 20;
    unsigned char *m = mmap(NULL, a, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(m, a, 11);
    unsigned char *m2 = mremap(m, a, b, MREMAP_MAYMOVE);
    check("mremap grow 1 -> 6 MiB", m2 != MAP_FAILED);
    if (m2 != MAP_FAILED) {
        check("mremap kept contents", has_pattern(m2, a, 11));
        check("mremap tail is zero", is_zero(m2 + a, b - a));
        memset(m2 + a, 0x5a, b - a);
        unsigned char *m3 = mremap(m2, b, 2 << 20, 0);
        check("mremap shrink in place", m3 == m2);
        check("shrunk mapping intact", has_pattern(m3, a, 11) && m3[(2 << 20) - 1] == 0x5a);
        munmap(m3, 2 << 20);
    }

    /* mmap of length 0 fails with EINVAL. */
    check("mmap length 0 fails", mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED);
}

int main(void) {
    test_brk();
    test_malloc();
    test_mmap();
    return finish();
}
