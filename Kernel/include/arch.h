// Privileged x86-64 instructions for the Swift kernel, as static inline functions (Swift has
// no inline assembly), and the symbols defined by arch/entry.S and the linker script.
// On pvm every privileged instruction here traps to the hypervisor and is emulated: correct,
// but ~µs each, so callers keep them off hot paths.
#ifndef APUS_ARCH_H
#define APUS_ARCH_H

#include <stdint.h>

static inline uint64_t arch_rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t arch_rdmsr(uint32_t msr) {
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void arch_wrmsr(uint32_t msr, uint64_t value) {
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)) : "memory");
}
static inline uint64_t arch_read_cr2(void) {
    uint64_t v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v;
}
static inline uint64_t arch_read_cr3(void) {
    uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v;
}
static inline void arch_write_cr3(uint64_t v) {
    __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory");
}
static inline uint64_t arch_read_cr4(void) {
    uint64_t v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v;
}
static inline void arch_write_cr4(uint64_t v) {
    __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory");
}
static inline void arch_invlpg(uint64_t address) {
    __asm__ volatile("invlpg (%0)" : : "r"(address) : "memory");
}
static inline void arch_outb(uint16_t port, uint8_t value) {
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}
static inline uint8_t arch_inb(uint16_t port) {
    uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v;
}
static inline void arch_outl(uint16_t port, uint32_t value) {
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}
struct arch_table_pointer { uint16_t limit; uint64_t base; } __attribute__((packed));
static inline void arch_lidt(uint64_t base, uint16_t limit) {
    struct arch_table_pointer p = { limit, base };
    __asm__ volatile("lidt %0" : : "m"(p));
}
static inline void arch_lgdt(uint64_t base, uint16_t limit) {
    struct arch_table_pointer p = { limit, base };
    __asm__ volatile("lgdt %0" : : "m"(p));
}
static inline void arch_ltr(uint16_t selector) {
    __asm__ volatile("ltr %0" : : "r"(selector));
}
static inline void arch_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(subleaf));
}
static inline void arch_pause(void) { __asm__ volatile("pause"); }
static inline void arch_store64(uint64_t address, uint64_t value) {
    // One 8-byte store: an MMIO doorbell write must not be split or merged.
    __asm__ volatile("movq %1, (%0)" : : "r"(address), "r"(value) : "memory");
}
// Device registers and shared rings (virtio): each access happens exactly once, in program
// order, with the width asked for ("memory" clobbers: the compiler neither caches nor moves
// memory accesses across them).
static inline uint32_t arch_load32(uint64_t address) {
    uint32_t v; __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(address) : "memory"); return v;
}
static inline void arch_store32(uint64_t address, uint32_t value) {
    __asm__ volatile("movl %1, (%0)" : : "r"(address), "r"(value) : "memory");
}
static inline uint16_t arch_load16(uint64_t address) {
    uint16_t v; __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(address) : "memory"); return v;
}
static inline void arch_store16(uint64_t address, uint16_t value) {
    __asm__ volatile("movw %1, (%0)" : : "r"(address), "r"(value) : "memory");
}
// A full fence: a store (a ring index) becomes visible before a later load (the other
// side's event index) — the one reordering x86 allows.
static inline void arch_fence(void) { __asm__ volatile("mfence" : : : "memory"); }
// Atomic exchange of a word another agent (the VMM) writes while the guest runs.
static inline uint64_t arch_exchange64(uint64_t address, uint64_t value) {
    __asm__ volatile("xchgq %0, (%1)" : "+r"(value) : "r"(address) : "memory"); return value;
}
// Atomic compare-and-exchange: returns the value found (equal to `expected` on success).
static inline uint64_t arch_compare_exchange64(uint64_t address, uint64_t expected, uint64_t desired) {
    __asm__ volatile("lock cmpxchgq %2, (%1)" : "+a"(expected) : "r"(address), "r"(desired) : "memory"); return expected;
}
static inline uint64_t arch_load64(uint64_t address) {
    uint64_t v; __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(address) : "memory"); return v;
}
static inline uint64_t arch_read_rbp(void) {
    uint64_t v; __asm__ volatile("mov %%rbp, %0" : "=r"(v)); return v;
}

// Symbols of arch/entry.S and linker.ld, as addresses (Swift cannot import C arrays of
// unknown size).
extern char syscall_entry[];
extern char kernel_image_start[];
extern char kernel_text_end[];
extern char kernel_data_start[];
extern char kernel_image_end[];
extern uint64_t trap_vector_table[22];
extern uint64_t trap_timer_stub;
extern uint64_t kernel_stack_top;
extern uint64_t preempt_save_area;
extern char kernel_active[];
extern char preempt_entry[];
void halt_until_interrupt(void);
_Noreturn void enter_user(uint64_t frame);
_Noreturn void enter_user_with_fpu(uint64_t frame);
void pvm_write_cr3(uint64_t root);

static inline uint64_t arch_syscall_entry_address(void) { return (uint64_t)syscall_entry; }
static inline uint64_t arch_kernel_image_end(void) { return (uint64_t)kernel_image_end; }
static inline uint64_t arch_kernel_image_start(void) { return (uint64_t)kernel_image_start; }
static inline uint64_t arch_kernel_text_end(void) { return (uint64_t)kernel_text_end; }
static inline uint64_t arch_kernel_data_start(void) { return (uint64_t)kernel_data_start; }
static inline uint64_t arch_trap_handler(int vector) { return trap_vector_table[vector]; }
static inline uint64_t arch_timer_handler(void) { return trap_timer_stub; }
static inline uint64_t arch_kernel_stack_top(void) { return kernel_stack_top; }
static inline uint64_t arch_kernel_active_address(void) { return (uint64_t)kernel_active; }
static inline uint64_t arch_preempt_entry_address(void) { return (uint64_t)preempt_entry; }
static inline void arch_set_preempt_save_area(uint64_t address) { preempt_save_area = address; }
static inline uint64_t arch_kernel_text_start(void) { return (uint64_t)kernel_image_start; }
extern char vdso_image_start[];
extern char vdso_image_end[];
static inline uint64_t arch_vdso_start(void) { return (uint64_t)vdso_image_start; }
static inline uint64_t arch_vdso_size(void) { return (uint64_t)(vdso_image_end - vdso_image_start); }
#endif
