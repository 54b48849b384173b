// The only assembly of the kernel: entry points, the syscall and trap gates, the jump to user
// mode, and the mem* routines the Swift runtime calls. Everything else is Swift.
//
// Virtual layout (GuestABI.swift): the kernel runs at KERNEL_VBASE + physical address and all
// physical memory is mapped at DIRECT_MAP, both in PML4 slot 255 (the top of the lower half).
// The code is position independent (RIP-relative), built with the small PIC code model.
// Boot protocols:
//   _start64  — apus VMM: 64-bit mode with the VMM's page tables, rdi = boot protocol
//               (1 pvm, 2 native), rsi = boot info physical address, rdx = the direct map's
//               base (KernelLayout, chosen by the VMM for this boot). On pvm the vCPU starts
//               in emulated mode, where every instruction is interpreted: the first thing
//               done is switching to flat native mode (MSR write + iretq, see below).
//   _start32  — PVH (QEMU -M microvm -kernel): 32-bit protected mode, paging off,
//               ebx = physical address of hvm_start_info. Builds page tables, enters long mode.

// The link address (GuestABI.kernelLinkBase): the kernel never runs there. Each boot maps it
// at K + physical instead, K = KERNEL_WINDOW + g GiB + c * 2 MiB (KernelLayout), and
// apply_relocations fixes its absolute addresses for K before any Swift code runs.
#define KERNEL_VBASE 0x7fff00000000
#define KERNEL_PBASE 0x100000
#define KERNEL_WINDOW 0x7fe000000000
#define KERNEL_WINDOW_FIRST_GIB 384
#define KERNEL_SLOTS 63116
#define KERNEL_SLOTS_PER_GIB 509
// GuestABI.directMapWindowStart and KernelLayout.directMapSlots (a host test keeps them equal):
// the direct map starts at DIRECT_MAP_WINDOW + slot GiB, slot < DIRECT_MAP_SLOTS.
#define DIRECT_MAP_WINDOW 0x7f8040000000
#define DIRECT_MAP_SLOTS 248
#define PVM_NATIVE_MSR 0x4b564d10
#define BOOT_PROTOCOL_PVH 3

.section .note.Xen, "a"
.p2align 2
    .long 4                 // name size ("Xen\0")
    .long 4                 // descriptor size
    .long 18                // XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long _start32_phys

// ---------------------------------------------------------------------------------------------
.section .text.boot, "ax"
.code64
.global _start64
_start64:
    lea boot_stack_top(%rip), %rsp
    mov %rdx, %r12                  // the direct map's base, kept across the wrmsr
    cmp $1, %edi
    jne 1f
    // pvm: arm flat native mode, then enter it. The write alone leaves the vCPU interpreting
    // (found by experiment on this host); the switch happens at the next transition to the
    // user code selector, so iretq to the next instruction with CS 0x33 / SS 0x2b. From
    // there on the kernel runs natively at hardware CPL3 and privileged instructions trap.
    mov $PVM_NATIVE_MSR, %ecx
    mov $1, %eax
    xor %edx, %edx
    wrmsr
    lea boot_stack_top(%rip), %rax
    push $0x2b                      // ss
    push %rax                       // rsp
    push $0x2                       // rflags
    push $0x33                      // cs
    lea 1f(%rip), %rax
    push %rax                       // rip
    iretq
1:
    lea boot_stack_top(%rip), %rsp
    call apply_relocations
    xor %ebp, %ebp
    // kernel_main(protocol: rdi, info: rsi, direct map base: rdx)
    mov %r12, %rdx
    call kernel_main
2:  hlt
    jmp 2b

// apply_relocations: every absolute address in the kernel's data is an R_X86_64_RELATIVE entry
// of .rela.dyn (Kernel/build.sh refuses any other kind): write addend + delta at offset +
// delta, delta = where the image runs - where it was linked. Position independent; clobbers
// rax, rcx, r8-r11 only (the entries' arguments stay in rdi, rsi, r12, ebp).
apply_relocations:
    lea kernel_image_start(%rip), %r8
    movabs $(KERNEL_VBASE + KERNEL_PBASE), %rax
    sub %rax, %r8
    lea __rela_dyn_start(%rip), %r9
    lea __rela_dyn_end(%rip), %r10
1:  cmp %r10, %r9
    jae 3f
    cmpl $8, 8(%r9)                 // r_info's type: R_X86_64_RELATIVE
    jne 2f
    mov (%r9), %rcx                 // r_offset
    add %r8, %rcx
    mov 16(%r9), %r11               // r_addend
    add %r8, %r11
    mov %r11, (%rcx)
    add $24, %r9
    jmp 1b
2:  ud2
3:  ret

// --- PVH entry --------------------------------------------------------------------------------
.code32
.global _start32
_start32:
    cli
    mov %ebx, %esi                  // keep the start_info pointer in esi

    // The direct map's slot for this boot (KernelLayout.directMapSlot): random bits from
    // rdrand when CPUID has it (retried: it may fail transiently), else the TSC's low bits.
    mov $1, %eax
    cpuid
    bt $30, %ecx
    jnc 6f
    mov $32, %edi
5:  rdrand %eax
    jc 7f
    dec %edi
    jnz 5b
6:  rdtsc
7:  xor %edx, %edx
    mov $DIRECT_MAP_SLOTS, %ecx
    div %ecx
    mov %edx, %ebp                  // ebp = slot, until kernel_main gets the base
    // The kernel's place (KernelLayout): k = (random / DIRECT_MAP_SLOTS) mod KERNEL_SLOTS,
    // g = k / KERNEL_SLOTS_PER_GIB, c = k mod KERNEL_SLOTS_PER_GIB. pvh_pd_kernel maps
    // physical 0..8 MiB at entries c..c+3, and pvh_pdpt_high[KERNEL_WINDOW_FIRST_GIB + g] -> it.
    xor %edx, %edx
    mov $KERNEL_SLOTS, %ecx
    div %ecx
    mov %edx, %eax
    xor %edx, %edx
    mov $KERNEL_SLOTS_PER_GIB, %ecx
    div %ecx
    mov %eax, pvh_kernel_place_phys      // g and c, for the jump to the kernel's place below
    mov %edx, pvh_kernel_place_phys + 4
    mov $pvh_pdpt_high_phys, %edi
    movl $(pvh_pd_kernel_phys + 0x3), (KERNEL_WINDOW_FIRST_GIB*8)(%edi,%eax,8)
    mov $pvh_pd_kernel_phys, %edi
    lea (%edi,%edx,8), %edi
    movl $0x83, 0(%edi)
    movl $(0x200000 + 0x83), 8(%edi)
    movl $(0x400000 + 0x83), 16(%edi)
    movl $(0x600000 + 0x83), 24(%edi)

    // Boot page tables (physical addresses: paging is off). 2 MiB pages.
    //   pvh_pd[0..3]:  physical 0..4 GiB, never executable (the direct map)
    //   pvh_pd_exec:   physical 0..1 GiB, executable: the identity mapping this code runs
    //                  on until the jump to the kernel's place (the kernel drops it)
    //   pvh_pd_kernel: the kernel (above)
    //   pvh_pml4[0]   -> pvh_pdpt_low:  entry 0 -> pvh_pd_exec (identity 0..1 GiB)
    //   pvh_pml4[255] -> pvh_pdpt_high: entries 1+slot..4+slot -> pvh_pd[0..3] (direct map,
    //                    4 GiB at DIRECT_MAP_WINDOW + slot GiB), the kernel's entry (above)
    mov $pvh_pd_phys, %edi
    xor %ecx, %ecx
3:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                  // present, writable, 2 MiB page
    mov %eax, (%edi,%ecx,8)
    mov %ecx, %eax
    shr $11, %eax                   // high dword: bits 32+ of the physical address
    or $0x80000000, %eax            // NX
    mov %eax, 4(%edi,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 3b

    mov $pvh_pd_exec_phys, %edi
    xor %ecx, %ecx
8:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%edi,%ecx,8)
    inc %ecx
    cmp $512, %ecx
    jne 8b

    mov $pvh_pdpt_low_phys, %edi
    movl $(pvh_pd_exec_phys + 0x3), 0(%edi)

    mov $pvh_pdpt_high_phys, %edi
    lea 8(%edi,%ebp,8), %edi        // entry 1 + slot
    mov $(pvh_pd_phys + 0x3), %eax
    mov %eax, 0(%edi)
    add $0x1000, %eax
    mov %eax, 8(%edi)
    add $0x1000, %eax
    mov %eax, 16(%edi)
    add $0x1000, %eax
    mov %eax, 24(%edi)

    mov $pvh_pml4_phys, %edi
    movl $(pvh_pdpt_low_phys + 0x3), 0(%edi)
    movl $(pvh_pdpt_high_phys + 0x3), 255*8(%edi)

    mov %cr4, %eax
    or $0x620, %eax                 // PAE | OSFXSR | OSXMMEXCPT
    mov %eax, %cr4
    mov $pvh_pml4_phys, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx           // EFER |= LME | NXE | SCE
    rdmsr
    or $0x901, %eax
    wrmsr
    mov %cr0, %eax
    and $~0x4, %eax                 // clear EM
    or $0x80010002, %eax            // PG | WP | MP
    mov %eax, %cr0

    lgdt pvh_gdt_pointer_phys
    ljmp $0x10, $pvh_long_mode_phys

.code64
.global pvh_long_mode
pvh_long_mode:
    mov $0x18, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    // Continue at the kernel's place: K + the physical address of pvh_high (this code runs
    // on the identity map, so rip-relative addresses are physical here).
    mov pvh_kernel_place(%rip), %eax     // g (upper half zeroed)
    mov pvh_kernel_place+4(%rip), %edx   // c
    shl $30, %rax
    shl $21, %rdx
    add %rdx, %rax
    movabs $KERNEL_WINDOW, %rdx
    add %rdx, %rax
    lea pvh_high(%rip), %rdx
    add %rdx, %rax
    jmp *%rax
pvh_high:
    lea boot_stack_top(%rip), %rsp
    call apply_relocations
    mov %ebp, %edx                  // the slot, zero-extended
    shl $30, %rdx
    movabs $DIRECT_MAP_WINDOW, %rax
    add %rax, %rdx                  // rdx = the direct map's base
    xor %ebp, %ebp
    mov $BOOT_PROTOCOL_PVH, %edi
    mov %esi, %esi                  // zero-extend the start_info pointer
    call kernel_main
4:  hlt
    jmp 4b

// ---------------------------------------------------------------------------------------------
.text
// syscall_entry: LSTAR. On entry rcx = user rip, r11 = user rflags, rsp = user rsp (no stack
// switch on either platform), interrupts masked by SFMASK. Builds a SyscallFrame on the
// kernel stack, saves the FPU/SSE state (the kernel's Swift code uses SSE registers, and Linux
// preserves them across syscalls), calls syscall_dispatch(frame), and returns with iretq
// (sysretq is trapped and emulated on pvm; iretq also never touches the user's red zone).
//
// SyscallFrame layout (offsets from the frame pointer passed to Swift), see Kernel/Sources:
//   0 r15  8 r14  16 r13  24 r12  32 rbp  40 rbx  48 r9  56 r8  64 r10  72 rdx  80 rsi
//   88 rdi  96 rax (syscall number in, result out)  104 rcx  112 r11  (rcx = rip and r11 =
//   rflags after a syscall, as on Linux; rt_sigreturn restores the interrupted values)
//   120 rip  128 cs  136 rflags  144 rsp  152 ss
.global syscall_entry
syscall_entry:
    movb $1, kernel_active(%rip)
    mov %rsp, scratch_user_rsp(%rip)
    mov kernel_stack_top(%rip), %rsp
    push $0x2b                      // ss
    push scratch_user_rsp(%rip)     // rsp
    push %r11                       // rflags
    push $0x33                      // cs
    push %rcx                       // rip
    push %r11                       // r11 slot (= rflags)
    push %rcx                       // rcx slot (= rip)
    push %rax
    push %rdi
    push %rsi
    push %rdx
    push %r10
    push %r8
    push %r9
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rbx                  // rbx = frame (callee-saved)
    sub $512, %rsp
    and $~0xf, %rsp
    fxsave64 (%rsp)
    cld
    mov %rbx, %rdi
    call syscall_dispatch
    fxrstor64 (%rsp)
    mov %rbx, %rsp
    // fall through: return to user from a frame
.global return_to_user_frame
return_to_user_frame:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    pop %r9
    pop %r8
    pop %r10
    pop %rdx
    pop %rsi
    pop %rdi
    pop %rax
    pop %rcx
    pop %r11
    movb $0, kernel_active(%rip)    // from here on a trap is the app's
    iretq

// preempt_entry: where the apus VMM points a pvm vCPU it stopped in app code (HostChannel in
// GuestABI.swift). The VMM saved every app register, rip/rflags/rsp included, in the save
// area (SyscallFrame layout, rcx and r11 as they were) and changed only rip (and rflags to
// 0x2): the app's stack and memory are untouched, and its FPU/SSE state is still in the
// registers. The save area becomes a frame at the top of the kernel stack, exactly where a
// syscall's frame is, so the Swift side (preempt_dispatch) can deliver signals and switch
// threads with the syscall machinery, and the return restores every register.
.global preempt_entry
preempt_entry:
    movb $1, kernel_active(%rip)
    mov kernel_stack_top(%rip), %rsp
    sub $160, %rsp
    mov preempt_save_area(%rip), %rsi
    mov %rsp, %rdi
    mov $160, %ecx
    cld
    rep movsb
    movq $0x33, 128(%rsp)           // cs and ss are the app's selectors whatever the save said
    movq $0x2b, 152(%rsp)
    mov %rsp, %rbx
    sub $512, %rsp
    and $~0xf, %rsp
    fxsave64 (%rsp)
    mov %rbx, %rdi
    call preempt_dispatch
    fxrstor64 (%rsp)
    mov %rbx, %rsp
    jmp return_to_user_frame

// pvm_write_cr3(root): switches to another address space on pvm. The hypervisor emulates the
// CR3 write and then keeps interpreting guest code instruction by instruction, which cannot
// run SSE, until an iretq; so an iretq to the next instruction (same cs/ss/rsp/rflags)
// follows the write.
.global pvm_write_cr3
pvm_write_cr3:
    mov %rdi, %cr3
    mov %rsp, %rax
    push $0x2b                      // ss
    push %rax                       // rsp
    pushfq
    push $0x33                      // cs
    lea 1f(%rip), %rax
    push %rax
    iretq
1:  ret

// enter_user(frame): first entry to user mode. frame points to a SyscallFrame (all registers,
// iret part filled); the kernel stack is reset below it.
.global enter_user
enter_user:
    mov %rdi, %rsp
    jmp return_to_user_frame

// enter_user_with_fpu(frame): the same, restoring the FPU image kept below the frame as the
// syscall path does (used to run a signal handler for a fault).
.global enter_user_with_fpu
enter_user_with_fpu:
    lea -512(%rdi), %rax
    and $~0xf, %rax
    fxrstor64 (%rax)
    mov %rdi, %rsp
    jmp return_to_user_frame

// --- traps ------------------------------------------------------------------------------------
// Each vector stub pushes a dummy error code where the CPU pushes none, then the vector, then
// jumps to trap_common, which saves the registers (TrapFrame layout below) and calls
// trap_dispatch(frame). On pvm the CPU pushed its frame on the interrupted stack (no stack
// switch, IST unusable). trap_dispatch returns only for traps that resume (the frame's cs/ss
// are then rewritten by Swift as the platform requires).
//
// TrapFrame: 0 r15 .. 112 rax (same 15 registers as SyscallFrame minus none: r15 r14 r13 r12
//   rbp rbx r11 r10 r9 r8 rdx rcx rsi rdi rax), 120 vector, 128 error code, 136 rip, 144 cs,
//   152 rflags, 160 rsp, 168 ss
.macro TRAP_NOERR n
.global trap_\n
trap_\n:
    push $0
    push $\n
    jmp trap_common
.endm
.macro TRAP_ERR n
.global trap_\n
trap_\n:
    push $\n
    jmp trap_common
.endm

TRAP_NOERR 0
TRAP_NOERR 1
TRAP_NOERR 2
TRAP_NOERR 3
TRAP_NOERR 4
TRAP_NOERR 5
TRAP_NOERR 6
TRAP_NOERR 7
TRAP_ERR 8
TRAP_NOERR 9
TRAP_ERR 10
TRAP_ERR 11
TRAP_ERR 12
TRAP_ERR 13
TRAP_ERR 14
TRAP_NOERR 15
TRAP_NOERR 16
TRAP_ERR 17
TRAP_NOERR 18
TRAP_NOERR 19
TRAP_NOERR 20
TRAP_ERR 21
TRAP_NOERR 32

trap_common:
    push %rax
    push %rdi
    push %rsi
    push %rcx
    push %rdx
    push %r8
    push %r9
    push %r10
    push %r11
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rbx
    sub $512, %rsp
    and $~0xf, %rsp
    fxsave64 (%rsp)
    mov %rsp, %r12                  // r12 = the fxsave image (callee-saved)
    cld
    // Whose trap is it? kernel_active says whether the kernel was running, whatever the
    // interrupted rip: an app that jumps into the kernel's part of the address space faults
    // there as the app (on pvm it runs at the same CPL as the kernel, so CS cannot tell).
    // r13 (saved above, callee-saved in the call) keeps the answer: 1 = the kernel.
    movzbl kernel_active(%rip), %r13d
    test %r13d, %r13d
    jnz 1f
    // A trap from the app runs its Swift handler on the (idle) kernel stack, below the frame
    // and FPU areas a syscall uses: on pvm the CPU pushed this trap frame on the app's own
    // stack, where a signal frame for the app's handler has to go.
    movb $1, kernel_active(%rip)
    mov kernel_stack_top(%rip), %rsp
    sub $(160 + 512 + 64), %rsp
1:  mov %rbx, %rdi
    mov %r12, %rsi
    mov %r13d, %edx
    call trap_dispatch
    test %r13d, %r13d
    jnz 2f
    movb $0, kernel_active(%rip)    // resuming the app
2:  mov %r12, %rsp
    fxrstor64 (%rsp)
    mov %rbx, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdx
    pop %rcx
    pop %rsi
    pop %rdi
    pop %rax
    add $16, %rsp                   // vector and error code
    iretq

// Absolute addresses: relocated at boot, so in writable data (read-only data cannot carry
// relocations in this link).
.section .data.rel.ro, "aw"
.p2align 3
.global trap_vector_table
trap_vector_table:
    .quad trap_0, trap_1, trap_2, trap_3, trap_4, trap_5, trap_6, trap_7
    .quad trap_8, trap_9, trap_10, trap_11, trap_12, trap_13, trap_14, trap_15
    .quad trap_16, trap_17, trap_18, trap_19, trap_20, trap_21
.global trap_timer_stub
trap_timer_stub:
    .quad trap_32

// --- idle -------------------------------------------------------------------------------------
.text
// halt_until_interrupt(): sti; hlt; cli — the only place interrupts are enabled. The interrupt
// frame lands on this tiny function's stack, which holds nothing below rsp.
.global halt_until_interrupt
halt_until_interrupt:
    sti
    hlt
    cli
    ret

// --- memory routines for the Swift runtime (ERMS: rep movsb/stosb are fast on every
// current x86-64 CPU) -------------------------------------------------------------------------
.global memcpy
memcpy:
    mov %rdi, %rax
    mov %rdx, %rcx
    rep movsb
    ret

.global memmove
memmove:
    mov %rdi, %rax
    mov %rdx, %rcx
    cmp %rsi, %rdi
    jbe 1f                          // dest below src: forward copy is safe
    lea -1(%rsi,%rdx), %rsi
    lea -1(%rdi,%rdx), %rdi
    std
    rep movsb
    cld
    ret
1:  rep movsb
    ret

.global memset
memset:
    mov %rdi, %r8
    mov %esi, %eax
    mov %rdx, %rcx
    rep stosb
    mov %r8, %rax
    ret

.global memcmp
memcmp:
    xor %eax, %eax
    test %rdx, %rdx
    jz 2f
1:  movzbl (%rdi), %eax
    movzbl (%rsi), %ecx
    sub %ecx, %eax
    jnz 2f
    inc %rdi
    inc %rsi
    dec %rdx
    jnz 1b
2:  ret

.global bzero
bzero:
    mov %rsi, %rcx
    xor %eax, %eax
    rep stosb
    ret

// ---------------------------------------------------------------------------------------------
.data
.p2align 4
.global pvh_gdt, pvh_gdt_pointer
pvh_gdt:
    .quad 0
    .quad 0
    .quad 0x00af9a000000ffff        // 0x10 kernel code, 64-bit
    .quad 0x00cf92000000ffff        // 0x18 kernel data
pvh_gdt_end:
pvh_gdt_pointer:
    .word pvh_gdt_end - pvh_gdt - 1
    .long pvh_gdt_phys

// kernel_active: 1 while the kernel runs (from boot, from each syscall_entry and each trap
// taken in the app, until the iretq back to the app). Traps read it to tell the app's faults
// from the kernel's.
.global kernel_active
kernel_active:
    .byte 1
.p2align 3
.global kernel_stack_top
kernel_stack_top:
    .quad syscall_stack_top
scratch_user_rsp:
    .quad 0
// The direct-map address of the preemption save area (set at boot on pvm).
.global preempt_save_area
preempt_save_area:
    .quad 0

.bss
.p2align 12
.global pvh_pml4, pvh_pdpt_low, pvh_pdpt_high, pvh_pd, pvh_pd_exec, pvh_pd_kernel, pvh_kernel_place
pvh_pml4:      .skip 4096
pvh_pdpt_low:  .skip 4096
pvh_pdpt_high: .skip 4096
pvh_pd:        .skip 4096 * 4
pvh_pd_exec:   .skip 4096
pvh_pd_kernel: .skip 4096
pvh_kernel_place: .skip 8          // the kernel's place this boot: g (GiB), c (2 MiB slot)
.p2align 4                          // the stacks' tops stay 16-byte aligned (SysV ABI)
.global boot_stack_top
boot_stack:    .skip 65536
boot_stack_top:
syscall_stack: .skip 65536
syscall_stack_top:
