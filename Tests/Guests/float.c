/* float: the FPU/SSE/AVX state must survive syscalls, timer interrupts and the kernel's
 * own work. Fills xmm0-15 (and ymm0-15 upper halves when the OS enables AVX) with known
 * patterns, executes raw `syscall` instructions (write, getpid, clock_gettime, nanosleep)
 * and compares; keeps the x87 and MXCSR rounding mode across syscalls; runs a ~100 ms
 * floating-point loop (interrupts happen) with write() calls inside, and prints doubles,
 * long doubles and hex floats with printf. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <fenv.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "common.h"

typedef unsigned char v16[16];
typedef unsigned char v32[32];

static void pattern(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed * 37 + i * 11 + 1);
}

#define LOAD_X(n)  "movdqu " #n "*16(%[in]), %%xmm" #n "\n\t"
#define STORE_X(n) "movdqu %%xmm" #n ", " #n "*16(%[out])\n\t"
#define ALL16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define XCLOB "xmm0","xmm1","xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13","xmm14","xmm15"

__attribute__((noinline)) static int xmm_survive(long nr, long a1, long a2, long a3, unsigned seed) {
    static v16 in[16], out[16];
    for (int i = 0; i < 16; i++) pattern(in[i], 16, seed + (unsigned)i);
    memset(out, 0, sizeof out);
    long rax = nr;
    register long r10 __asm__("r10") = 0;
    __asm__ volatile(ALL16(LOAD_X) "syscall\n\t" ALL16(STORE_X)
                     : "+a"(rax), "+r"(r10)
                     : [in] "r"(in), [out] "r"(out), "D"(a1), "S"(a2), "d"(a3)
                     : "rcx", "r11", "memory", XCLOB);
    return memcmp(in, out, sizeof in) == 0;
}

#define LOAD_Y(n)  "vmovdqu " #n "*32(%[in]), %%ymm" #n "\n\t"
#define STORE_Y(n) "vmovdqu %%ymm" #n ", " #n "*32(%[out])\n\t"

__attribute__((noinline)) static int ymm_survive(long nr, long a1, long a2, long a3, unsigned seed) {
    static v32 in[16], out[16];
    for (int i = 0; i < 16; i++) pattern(in[i], 32, seed + (unsigned)i);
    memset(out, 0, sizeof out);
    long rax = nr;
    register long r10 __asm__("r10") = 0;
    __asm__ volatile(ALL16(LOAD_Y) "syscall\n\t" ALL16(STORE_Y) "vzeroupper\n\t"
                     : "+a"(rax), "+r"(r10)
                     : [in] "r"(in), [out] "r"(out), "D"(a1), "S"(a2), "d"(a3)
                     : "rcx", "r11", "memory", XCLOB);
    return memcmp(in, out, sizeof in) == 0;
}

static int os_avx(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & bit_OSXSAVE) || !(c & bit_AVX)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6;
}

int main(void) {
    struct timespec ts, short_sleep = {0, 1000000L};
    int x_ok = 1;
    for (unsigned round = 0; round < 50; round++) {
        x_ok &= xmm_survive(SYS_getpid, 0, 0, 0, round);
        x_ok &= xmm_survive(SYS_write, 1, (long)"", 0, round + 100);
        x_ok &= xmm_survive(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, round + 200);
        if (round % 10 == 0) x_ok &= xmm_survive(SYS_nanosleep, (long)&short_sleep, 0, 0, round + 300);
    }
    check("xmm0-15 preserved across syscalls", x_ok);
    int y_ok = 1;
    if (os_avx()) {
        for (unsigned round = 0; round < 50; round++) {
            y_ok &= ymm_survive(SYS_getpid, 0, 0, 0, round);
            y_ok &= ymm_survive(SYS_write, 1, (long)"", 0, round + 100);
            if (round % 10 == 0) y_ok &= ymm_survive(SYS_nanosleep, (long)&short_sleep, 0, 0, round + 300);
        }
    }
    check("ymm0-15 preserved across syscalls (or AVX not enabled)", y_ok);

    /* Rounding modes (MXCSR for SSE, the x87 control word for long double). */
    fesetround(FE_UPWARD);
    syscall(SYS_getpid);
    nanosleep(&short_sleep, NULL);
    check("fegetround() == FE_UPWARD after syscalls", fegetround() == FE_UPWARD);
    volatile double one = 1.0, three = 3.0;
    volatile long double lone = 1.0L, lthree = 3.0L;
    double up = one / three;
    long double lup = lone / lthree;
    fesetround(FE_DOWNWARD);
    syscall(SYS_getpid);
    double down = one / three;
    long double ldown = lone / lthree;
    fesetround(FE_TONEAREST);
    check("SSE division honours rounding mode", up > down);
    check("x87 division honours rounding mode", lup > ldown);

    /* A longer computation with syscalls and (on a timer-driven kernel) interrupts. */
    double sum = 0.0, prod = 1.0;
    long double lsum = 0.0L;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long i = 1;
    for (; i <= 400000; i++) {
        double x = (double)i;
        sum += 1.0 / (x * x);
        lsum += 1.0L / ((long double)x * x);
        prod *= 1.0 + 1e-7 / x;
        if (i % 4000 == 0) {
            write(1, ".", 1);
            syscall(SYS_getpid);
        }
    }
    write(1, "\n", 1);
    clock_gettime(CLOCK_MONOTONIC, &now);
    printf("sum 1/n^2 (n<=4e5) = %.17g\n", sum);
    printf("long double sum    = %.21Lg\n", lsum);
    printf("prod               = %.17g\n", prod);
    printf("pi^2/6 - sum       = %.6e\n", M_PI * M_PI / 6 - sum);
    printf("sqrt(2)=%.17g exp(1)=%.17g log(10)=%.17g\n", sqrt(2.0), exp(1.0), log(10.0));
    printf("sin(1)=%.17g atan2(1,2)=%.17g pow(1.5,40)=%.17g\n", sin(1.0), atan2(1.0, 2.0), pow(1.5, 40));
    printf("hex: %a %a\n", 0.1, -1e300);
    printf("formats: %f %e %g %.3f %10.4f\n", 3.14159265358979, 6.02214076e23, 1e-10, 2.0 / 3.0, -0.5);
    printf("special: %f %f %f\n", INFINITY, -INFINITY, NAN);
    volatile float f = 16777216.0f;
    f += 1.0f;
    printf("float 2^24+1 = %.1f\n", (double)f);
    return finish();
}
