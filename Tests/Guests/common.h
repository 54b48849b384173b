/* Shared helpers for the Apus guest programs (header only; build.sh compiles *.c).
 * Every check prints one deterministic line "what: yes|no" so that the native run and
 * the run under apus produce byte-identical output; a failed check also makes the
 * program exit with status 1 (see finish()). */
#ifndef APUS_GUEST_COMMON_H
#define APUS_GUEST_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stddef.h>

static int guest_failures __attribute__((unused));

__attribute__((unused)) static void check(const char *what, int ok) {
    printf("%s: %s\n", what, ok ? "yes" : "no");
    if (!ok) guest_failures++;
}

__attribute__((unused)) static int finish(void) {
    printf("failures: %d\n", guest_failures);
    fflush(stdout);
    return guest_failures ? 1 : 0;
}

/* FNV-1a 64-bit, for printing checksums of memory contents. */
__attribute__((unused)) static uint64_t fnv1a(const void *data, size_t len, uint64_t h) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

#endif
