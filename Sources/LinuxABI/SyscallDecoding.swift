// Typed views of the six raw syscall argument registers, following how Linux's
// SYSCALL_DEFINEn wrappers convert them: an `int`/`unsigned int` parameter is the low 32 bits of
// its register (the upper half is ignored, whatever garbage it holds), a `long`/`size_t`/pointer
// parameter is the whole register.

/// A user-space virtual address of the application: a raw register value, not yet checked
/// against the address space. Distinct from kernel and physical addresses on purpose; only the
/// memory manager turns it into accessible memory (EFAULT when it cannot).
public struct UserAddress: Hashable, Comparable, Sendable {
    public var raw: UInt64
    @inlinable public init(_ raw: UInt64) { self.raw = raw }
    @inlinable public var isNull: Bool { raw == 0 }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
    /// `self + offset`, or nil when it wraps past 2^64.
    @inlinable public func adding(_ offset: UInt64) -> UserAddress? {
        let (sum, overflow) = raw.addingReportingOverflow(offset)
        return overflow ? nil : UserAddress(sum)
    }
}

/// One syscall as the application made it: rax and rdi, rsi, rdx, r10, r8, r9.
public struct SyscallArguments {
    /// rax at the `syscall` instruction. Negative or unknown numbers are ENOSYS, as on Linux.
    public var number: Int
    /// (rdi, rsi, rdx, r10, r8, r9).
    public var args: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    @inlinable
    public init(number: Int, args: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)) {
        self.number = number
        self.args = args
    }

    @inlinable
    public init(number: Int, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0,
                _ a3: UInt64 = 0, _ a4: UInt64 = 0, _ a5: UInt64 = 0) {
        self.init(number: number, args: (a0, a1, a2, a3, a4, a5))
    }

    /// The raw register of argument `index` (0…5). Indexes are constants in handler code; any
    /// other value is a kernel bug, so it traps.
    @inlinable public subscript(index: Int) -> UInt64 {
        switch index {
        case 0: return args.0
        case 1: return args.1
        case 2: return args.2
        case 3: return args.3
        case 4: return args.4
        case 5: return args.5
        default: preconditionFailure("syscall argument index out of range")
        }
    }

    /// An `int` parameter: the low 32 bits, sign-extended (0xdead_beef_ffff_ffff → -1).
    @inlinable public func int32(_ index: Int) -> Int32 {
        Int32(truncatingIfNeeded: self[index])
    }

    /// An `unsigned int` parameter (flags, modes): the low 32 bits.
    @inlinable public func uint32(_ index: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: self[index])
    }

    /// A `long` parameter (also off_t, ssize_t): the whole register as a signed value.
    @inlinable public func int(_ index: Int) -> Int {
        Int(Int64(bitPattern: self[index]))
    }

    /// A file descriptor (`int fd`, `unsigned int fd`): the low 32 bits as a signed value, so
    /// that AT_FDCWD (-100) and invalid negative descriptors keep their sign.
    @inlinable public func fd(_ index: Int) -> Int32 {
        int32(index)
    }

    /// A `size_t` parameter: the whole register, unsigned. Values beyond any real buffer are
    /// the handler's to reject (EFAULT/EINVAL) or clamp (read/write clamp to MAX_RW_COUNT).
    @inlinable public func size(_ index: Int) -> UInt64 {
        self[index]
    }

    /// A pointer parameter: the whole register as an unchecked user address.
    @inlinable public func address(_ index: Int) -> UserAddress {
        UserAddress(self[index])
    }
}

/// The rax value a syscall returns.
public enum SyscallResult {
    /// Linux never returns more than MAX_RW_COUNT from one read/write: INT_MAX rounded down to
    /// a page (0x7fff_f000), so counts always stay clear of the error range.
    public static let maxReadWriteCount: UInt64 = 0x7fff_f000

    /// The success value itself, or -errno.
    @inlinable public static func encode(_ result: Result<UInt64, Errno>) -> UInt64 {
        switch result {
        case .success(let value): return value
        case .failure(let error): return error.negatedReturn
        }
    }

    /// A signed success value (e.g. a file descriptor or a count) as its bit pattern, or -errno.
    @inlinable public static func encodeSigned(_ result: Result<Int, Errno>) -> UInt64 {
        switch result {
        case .success(let value): return UInt64(bitPattern: Int64(value))
        case .failure(let error): return error.negatedReturn
        }
    }

    /// Splits an rax value back into success or errno (for tests and tracing): values in
    /// [-4095, -1] are errors, everything else is a success value.
    @inlinable public static func decode(_ rax: UInt64) -> Result<UInt64, Errno> {
        if let error = Errno(syscallReturn: rax) { return .failure(error) }
        return .success(rax)
    }
}
