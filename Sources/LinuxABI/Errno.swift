// Linux error numbers, as the kernel returns them (negated) in rax. The constants and the name
// table are generated into ErrnoTable.swift from <asm-generic/errno*.h>, which x86-64 uses
// unchanged.

/// A Linux errno value. Syscall handlers `throw` it (typed throws); SyscallResult turns it into
/// the -errno that the application sees in rax.
public struct Errno: Error, Hashable, Sendable {
    /// The positive Linux value (ENOENT = 2).
    public var rawValue: Int32

    @inlinable public init(_ rawValue: Int32) { self.rawValue = rawValue }
    @inlinable public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The largest errno a syscall can return: rax values in [-4095, -1] are errors (MAX_ERRNO).
    public static let maxErrno: Int32 = 4095

    /// `ENOTSUP` is the C library's name for `EOPNOTSUPP` on Linux (both 95); the kernel
    /// headers do not define it.
    public static let ENOTSUP = EOPNOTSUPP

    /// What the syscall returns in rax: -rawValue as a 64-bit two's-complement pattern.
    @inlinable public var negatedReturn: UInt64 {
        UInt64(bitPattern: -Int64(rawValue))
    }

    /// The errno encoded in a syscall return value, or nil when `rax` is not in [-4095, -1]
    /// (a success: a count, an address, a file descriptor).
    @inlinable public init?(syscallReturn rax: UInt64) {
        let signed = Int64(bitPattern: rax)
        guard signed < 0, signed >= -Int64(Errno.maxErrno) else { return nil }
        self.init(Int32(-signed))
    }
}
