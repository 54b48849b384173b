// The vDSO: clock_gettime, gettimeofday, time and getcpu without a syscall (a syscall is a
// VM exit on pvm). Time is computed from the TSC with the parameters the kernel writes into
// the data page (vvar), the same 32.32 fixed-point scale as Kernel/Sources/Clock.swift:
//   ns = base_ns + ((rdtsc - base_tsc) * scale) >> 64-32
// vvar layout (u64): 0 monotonic base TSC, 8 scale (ns per tick << 32), 16 realtime base TSC,
// 24 realtime base ns. Clocks it cannot compute fall back to the real syscall.

.section .vvar, "a"
.p2align 12
.global vvar
vvar:
    .skip 4096

.text
// rax = nanoseconds on the clock whose (base tsc, base ns) are at vvar+%rcx, vvar+%rcx+8
// (scale at vvar+8). Clobbers rdx.
.type vdso_nanos, @function
vdso_nanos:
    push %rcx
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    lea vvar(%rip), %rdx
    pop %rcx
    sub (%rdx,%rcx), %rax               // delta ticks
    push %r8
    mov %rdx, %r8
    mulq 8(%r8)                         // rdx:rax = delta * scale
    shrd $32, %rdx, %rax                // >> 32
    test %rcx, %rcx
    jz 1f
    add 24(%r8), %rax                   // realtime: + base ns
1:  pop %r8
    ret

// int clock_gettime(clockid_t, struct timespec *)
.global __vdso_clock_gettime
.type __vdso_clock_gettime, @function
__vdso_clock_gettime:
    cmp $0, %edi                        // CLOCK_REALTIME
    je 2f
    cmp $5, %edi                        // CLOCK_REALTIME_COARSE
    je 2f
    cmp $1, %edi                        // CLOCK_MONOTONIC
    je 3f
    cmp $4, %edi                        // CLOCK_MONOTONIC_RAW
    je 3f
    cmp $6, %edi                        // CLOCK_MONOTONIC_COARSE
    je 3f
    cmp $7, %edi                        // CLOCK_BOOTTIME
    je 3f
    mov $228, %eax                      // anything else: the real clock_gettime
    syscall
    ret
2:  mov $16, %ecx
    jmp 4f
3:  xor %ecx, %ecx
4:  call vdso_nanos
    xor %edx, %edx
    mov $1000000000, %ecx
    div %rcx
    mov %rax, (%rsi)
    mov %rdx, 8(%rsi)
    xor %eax, %eax
    ret

// int gettimeofday(struct timeval *, struct timezone *)
.global __vdso_gettimeofday
.type __vdso_gettimeofday, @function
__vdso_gettimeofday:
    test %rsi, %rsi
    jz 5f
    movq $0, (%rsi)                     // UTC, no DST
5:  test %rdi, %rdi
    jz 6f
    mov $16, %ecx
    call vdso_nanos
    xor %edx, %edx
    mov $1000000000, %ecx
    div %rcx
    mov %rax, (%rdi)
    mov %rdx, %rax
    xor %edx, %edx
    mov $1000, %ecx
    div %rcx
    mov %rax, 8(%rdi)
6:  xor %eax, %eax
    ret

// time_t time(time_t *)
.global __vdso_time
.type __vdso_time, @function
__vdso_time:
    mov $16, %ecx
    call vdso_nanos
    xor %edx, %edx
    mov $1000000000, %ecx
    div %rcx
    test %rdi, %rdi
    jz 7f
    mov %rax, (%rdi)
7:  ret

// int getcpu(unsigned *cpu, unsigned *node, void *cache): one CPU, one node.
.global __vdso_getcpu
.type __vdso_getcpu, @function
__vdso_getcpu:
    test %rdi, %rdi
    jz 8f
    movl $0, (%rdi)
8:  test %rsi, %rsi
    jz 9f
    movl $0, (%rsi)
9:  xor %eax, %eax
    ret

.weak clock_gettime, gettimeofday, time, getcpu
.set clock_gettime, __vdso_clock_gettime
.set gettimeofday, __vdso_gettimeofday
.set time, __vdso_time
.set getcpu, __vdso_getcpu
