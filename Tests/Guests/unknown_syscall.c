/* unknown_syscall: calls a real Linux syscall that the first Apus kernel surely does not
 * implement — io_setup (206), with nr_events 0 so that natively it is a harmless EINVAL —
 * twice, and prints the results. Under apus: both return -1/ENOSYS, the program carries on
 * and exits 0, and apus logs "apus: unimplemented syscall io_setup (206)" once on stderr.
 * (Not a differential test: natively errno is EINVAL.) */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static const char *name(int e) {
    switch (e) {
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    default: return "other";
    }
}

int main(void) {
    for (int i = 0; i < 2; i++) {
        unsigned long ctx = 0;
        errno = 0;
        long r = syscall(SYS_io_setup, 0, &ctx);
        int e = errno;
        printf("io_setup call %d: ret=%ld errno=%d (%s)\n", i + 1, r, e, name(e));
    }
    printf("still running\n");
    return 0;
}
