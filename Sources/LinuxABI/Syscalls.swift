// Linux x86-64 syscall numbers. The constants and the name table are generated from the Linux
// UAPI header <asm/unistd_64.h> into SyscallTable.swift by scripts/gen-syscall-table.sh.
//
// Calling convention (x86-64 `syscall` instruction): number in rax; arguments in rdi, rsi,
// rdx, r10, r8, r9 (r10 replaces rcx, which the CPU overwrites with the return rip, as it does
// r11 with rflags); result in rax, a value in [-4095, -1] meaning -errno (SyscallResult).

/// Namespace of the x86-64 syscall numbers, named exactly as Linux names them:
/// `SyscallNumber.openat == 257`.
public enum SyscallNumber {}
