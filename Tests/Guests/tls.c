/* tls: thread-local storage as set up by the libc through arch_prctl(ARCH_SET_FS).
 * Initialised (.tdata) and zero (.tbss) __thread variables, a 64-byte-aligned one, errno
 * (itself thread-local), and ARCH_GET_FS returning the thread pointer (%fs:0 points to
 * itself on x86-64). */
#define _GNU_SOURCE
#ifndef ARCH_GET_FS
#define ARCH_GET_FS 0x1003 /* <asm/prctl.h>, which musl-gcc cannot see */
#endif
#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "common.h"

static __thread int tdata_var = 42;
static __thread long tdata_arr[4] = {1, 2, 3, 4};
static __thread int tbss_var;
static __thread char tbss_big[10000];
static __thread _Alignas(64) double aligned_var = 2.5;

int main(void) {
    check(".tdata int initialised", tdata_var == 42);
    check(".tdata array initialised", tdata_arr[0] == 1 && tdata_arr[3] == 4);
    int zero = tbss_var == 0;
    for (int i = 0; i < 10000; i++) if (tbss_big[i]) zero = 0;
    check(".tbss zero", zero);
    check("64-byte aligned TLS variable aligned and initialised",
          ((uintptr_t)&aligned_var & 63) == 0 && aligned_var == 2.5);
    tdata_var++;
    tbss_big[9999] = 7;
    check("TLS writable", tdata_var == 43 && tbss_big[9999] == 7);

    unsigned long fs = 0, self = 0;
    check("arch_prctl(ARCH_GET_FS) succeeds", syscall(SYS_arch_prctl, ARCH_GET_FS, &fs) == 0);
    __asm__ volatile("mov %%fs:0, %0" : "=r"(self));
    check("ARCH_GET_FS == %fs:0 (thread pointer)", fs != 0 && fs == self);
    check("&tdata_var is below the thread pointer", (uintptr_t)&tdata_var < fs);

    errno = 0;
    write(999, "x", 1);
    check("errno (TLS) set by a failing syscall", errno == EBADF);
    return finish();
}
