/* efault: bad user pointers passed to syscalls must fail with EFAULT, never crash the
 * program or the kernel: NULL-page, non-canonical and kernel-half addresses, a PROT_NONE
 * page, and a read-only page as an output buffer, through write, writev, uname,
 * clock_gettime, getrandom and readlink. Raw syscalls are used so that the libc (or the
 * vDSO) never touches the pointer itself. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include "common.h"

static void expect_efault(const char *what, long r) {
    check(what, r == -1 && errno == EFAULT);
    errno = 0;
}

int main(void) {
    void *null_page = (void *)16;
    void *noncanon = (void *)0x0000800000000000UL;
    void *kernel = (void *)0xffffffff81000000UL;
    void *kernel2 = (void *)0xffff888000000000UL;
    unsigned char *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = 0;
    expect_efault("write(1, null page) EFAULT", syscall(SYS_write, 1, null_page, 10));
    expect_efault("write(1, non-canonical) EFAULT", syscall(SYS_write, 1, noncanon, 10));
    expect_efault("write(1, kernel text address) EFAULT", syscall(SYS_write, 1, kernel, 10));
    expect_efault("write(1, kernel direct map address) EFAULT", syscall(SYS_write, 1, kernel2, 10));
    expect_efault("write(1, PROT_NONE page) EFAULT", syscall(SYS_write, 1, none, 10));
    expect_efault("write(2, null page) EFAULT", syscall(SYS_write, 2, null_page, 10));
    expect_efault("writev(1, bad iov array) EFAULT", syscall(SYS_writev, 1, null_page, 2));
    fflush(stdout);
    struct iovec iov[2] = {{"ok ", 3}, {kernel, 10}};
    long r = syscall(SYS_writev, 1, iov, 2);
    /* Linux writes what it can before the fault: 3 bytes, or EFAULT if nothing. */
    check("writev with a bad second buffer writes the first or fails EFAULT", r == 3 || (r == -1 && errno == EFAULT));
    if (r == 3) write(1, "\n", 1); else write(1, "ok \n", 4);
    errno = 0;
    expect_efault("uname(null page) EFAULT", syscall(SYS_uname, null_page));
    expect_efault("uname(kernel address) EFAULT", syscall(SYS_uname, kernel));
    expect_efault("uname(read-only page) EFAULT", syscall(SYS_uname, ro));
    expect_efault("clock_gettime(null page) EFAULT", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, null_page));
    expect_efault("clock_gettime(kernel address) EFAULT", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, kernel));
    expect_efault("getrandom(PROT_NONE page) EFAULT", syscall(SYS_getrandom, none, 16, 0));
    expect_efault("getrandom(kernel address) EFAULT", syscall(SYS_getrandom, kernel, 16, 0));
    expect_efault("readlink(bad path pointer) EFAULT", syscall(SYS_readlink, null_page, (char[16]){0}, 16));
    expect_efault("readlink(/proc/self/exe, into read-only page) EFAULT",
                  syscall(SYS_readlink, "/proc/self/exe", ro, 16));
    check("still alive", 1);
    return finish();
}
