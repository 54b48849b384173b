/* random: getrandom(64) fills all 64 bytes, not all zero, and two calls differ;
 * getrandom(4096) returns the full length; GRND_NONBLOCK works; the auxiliary vector is
 * there: AT_RANDOM points at 16 not-all-zero bytes, AT_PAGESZ == 4096, AT_PHDR/AT_PHNUM
 * describe this program's headers (with a PT_LOAD), AT_ENTRY == &_start (checks PIE
 * relocation too), AT_SECURE == 0, AT_UID == getuid(). */
#define _GNU_SOURCE
#include <elf.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include "common.h"

extern void _start(void);

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) if (p[i]) return 0;
    return 1;
}

int main(void) {
    unsigned char a[64] = {0}, b[64] = {0};
    check("getrandom(64) returns 64", getrandom(a, sizeof a, 0) == 64);
    check("getrandom bytes not all zero", !all_zero(a, sizeof a));
    check("getrandom(64, GRND_NONBLOCK) returns 64", getrandom(b, sizeof b, GRND_NONBLOCK) == 64);
    check("two getrandom calls differ", memcmp(a, b, sizeof a) != 0);
    static unsigned char big[4096];
    check("getrandom(4096) returns 4096", getrandom(big, sizeof big, 0) == 4096);
    int distinct = 0, seen[256] = {0};
    for (size_t i = 0; i < sizeof big; i++) if (!seen[big[i]]++) distinct++;
    check("getrandom(4096) has > 200 distinct byte values", distinct > 200);

    const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
    check("AT_RANDOM present", r != NULL);
    check("AT_RANDOM bytes not all zero", r && !all_zero(r, 16));
    check("AT_PAGESZ == 4096", getauxval(AT_PAGESZ) == 4096);
    check("AT_ENTRY == &_start", getauxval(AT_ENTRY) == (unsigned long)&_start);
    const Elf64_Phdr *ph = (const Elf64_Phdr *)getauxval(AT_PHDR);
    unsigned long phnum = getauxval(AT_PHNUM);
    int has_load = 0;
    for (unsigned long i = 0; ph && i < phnum; i++) if (ph[i].p_type == PT_LOAD) has_load = 1;
    check("AT_PHDR/AT_PHNUM list a PT_LOAD", ph && phnum > 0 && has_load);
    check("AT_PHENT == sizeof(Elf64_Phdr)", getauxval(AT_PHENT) == sizeof(Elf64_Phdr));
    check("AT_SECURE == 0", getauxval(AT_SECURE) == 0);
    check("AT_UID == getuid()", getauxval(AT_UID) == getuid());
    return finish();
}
