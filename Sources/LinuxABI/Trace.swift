// strace-like rendering of one syscall for `apus run --trace`:
//
//   openat(AT_FDCWD, "/etc/passwd", 0x80000, 0) = -1 ENOENT (No such file or directory)
//   write(1, "Hello from Apus!\n", 17) = 17
//
// The kernel calls `SyscallTrace.format` with the decoded arguments, the result register and
// a reader for user memory (it validates the pointers; here any nil answer prints the raw
// pointer): the formatter owns no memory access and is tested on the host.

/// How one argument is shown.
public enum TraceArgument: Sendable, Equatable {
    case int          // signed decimal
    case uint         // unsigned decimal
    case hex          // 0x… (flags, masks, addresses with no better meaning)
    case fd           // decimal, AT_FDCWD by name
    case pointer      // 0x…, NULL for 0
    case string       // a NUL-terminated user string, quoted
    /// A buffer the call reads, its length in argument `length`.
    case bufferIn(length: Int)
    /// A buffer the call fills, as many bytes as the result says.
    case bufferOut
    case signal       // SIGxxx by name
    case clock        // CLOCK_xxx by name
}

public struct SyscallSignature: Sendable {
    public var arguments: [TraceArgument]
    /// The result is an address (mmap, brk): shown in hex.
    public var returnsAddress: Bool

    public init(_ arguments: [TraceArgument], returnsAddress: Bool = false) {
        self.arguments = arguments
        self.returnsAddress = returnsAddress
    }

    /// The signature of a syscall number; unknown ones show six raw hex arguments.
    public static func of(_ number: Int) -> SyscallSignature {
        let packed = PackedSignature.of(number)
        var arguments: [TraceArgument] = []
        for i in 0..<packed.count { arguments.append(packed[i]) }
        return SyscallSignature(arguments, returnsAddress: packed.returnsAddress)
    }
}

/// A SyscallSignature in one word, what the kernel's trace path uses: the table below then
/// compiles to constants (a lookup table) instead of one array object per syscall.
/// Bits 4i…4i+3 hold argument i's `TraceArgument.code` (0: no further arguments), bit 24
/// is `returnsAddress`.
struct PackedSignature {
    var bits: UInt32

    /// Folds to a constant for constant arguments (hence always inlined).
    @inline(__always)
    init(_ a0: TraceArgument? = nil, _ a1: TraceArgument? = nil, _ a2: TraceArgument? = nil,
         _ a3: TraceArgument? = nil, _ a4: TraceArgument? = nil, _ a5: TraceArgument? = nil,
         returnsAddress: Bool = false) {
        func code(_ argument: TraceArgument?) -> UInt32 { argument?.code ?? 0 }
        bits = code(a0) | code(a1) << 4 | code(a2) << 8 | code(a3) << 12 | code(a4) << 16
            | code(a5) << 20 | (returnsAddress ? 1 << 24 : 0)
    }

    var returnsAddress: Bool { bits & (1 << 24) != 0 }

    /// The number of arguments shown.
    var count: Int {
        var n = 0
        while n < 6 && (bits >> (4 * UInt32(n))) & 0xf != 0 { n += 1 }
        return n
    }

    /// Argument `i`, 0 ..< count.
    subscript(i: Int) -> TraceArgument {
        TraceArgument(code: (bits >> (4 * UInt32(i))) & 0xf)
    }

    /// The signature of a syscall number; unknown ones show six raw hex arguments.
    static func of(_ number: Int) -> PackedSignature {
        switch number {
        case SyscallNumber.read: return PackedSignature(.fd, .bufferOut, .uint)
        case SyscallNumber.pread64: return PackedSignature(.fd, .bufferOut, .uint, .int)
        case SyscallNumber.write: return PackedSignature(.fd, .bufferIn(length: 2), .uint)
        case SyscallNumber.pwrite64: return PackedSignature(.fd, .bufferIn(length: 2), .uint, .int)
        case SyscallNumber.readv, SyscallNumber.writev: return PackedSignature(.fd, .pointer, .int)
        case SyscallNumber.open: return PackedSignature(.string, .hex, .hex)
        case SyscallNumber.openat: return PackedSignature(.fd, .string, .hex, .hex)
        case SyscallNumber.close, SyscallNumber.fsync, SyscallNumber.fdatasync, SyscallNumber.dup:
            return PackedSignature(.fd)
        case SyscallNumber.fstat: return PackedSignature(.fd, .pointer)
        case SyscallNumber.stat, SyscallNumber.lstat: return PackedSignature(.string, .pointer)
        case SyscallNumber.newfstatat: return PackedSignature(.fd, .string, .pointer, .hex)
        case SyscallNumber.statx: return PackedSignature(.fd, .string, .hex, .hex, .pointer)
        case SyscallNumber.lseek: return PackedSignature(.fd, .int, .int)
        case SyscallNumber.mmap: return PackedSignature(.pointer, .uint, .hex, .hex, .fd, .hex, returnsAddress: true)
        case SyscallNumber.mprotect: return PackedSignature(.pointer, .uint, .hex)
        case SyscallNumber.munmap: return PackedSignature(.pointer, .uint)
        case SyscallNumber.mremap: return PackedSignature(.pointer, .uint, .uint, .hex, .pointer, returnsAddress: true)
        case SyscallNumber.madvise: return PackedSignature(.pointer, .uint, .int)
        case SyscallNumber.brk: return PackedSignature(.pointer, returnsAddress: true)
        case SyscallNumber.rt_sigaction: return PackedSignature(.signal, .pointer, .pointer, .uint)
        case SyscallNumber.rt_sigprocmask: return PackedSignature(.int, .pointer, .pointer, .uint)
        case SyscallNumber.ioctl: return PackedSignature(.fd, .hex, .pointer)
        case SyscallNumber.access: return PackedSignature(.string, .int)
        case SyscallNumber.faccessat, SyscallNumber.faccessat2: return PackedSignature(.fd, .string, .int, .hex)
        case SyscallNumber.readlink: return PackedSignature(.string, .bufferOut, .uint)
        case SyscallNumber.readlinkat: return PackedSignature(.fd, .string, .bufferOut, .uint)
        case SyscallNumber.getdents64: return PackedSignature(.fd, .pointer, .uint)
        case SyscallNumber.fcntl: return PackedSignature(.fd, .int, .hex)
        case SyscallNumber.exit, SyscallNumber.exit_group: return PackedSignature(.int)
        case SyscallNumber.kill: return PackedSignature(.int, .signal)
        case SyscallNumber.tkill: return PackedSignature(.int, .signal)
        case SyscallNumber.tgkill: return PackedSignature(.int, .int, .signal)
        case SyscallNumber.uname, SyscallNumber.sysinfo, SyscallNumber.set_tid_address: return PackedSignature(.pointer)
        case SyscallNumber.arch_prctl: return PackedSignature(.hex, .pointer)
        case SyscallNumber.set_robust_list: return PackedSignature(.pointer, .uint)
        case SyscallNumber.rseq: return PackedSignature(.pointer, .uint, .hex, .hex)
        case SyscallNumber.prlimit64: return PackedSignature(.int, .int, .pointer, .pointer)
        case SyscallNumber.getrlimit: return PackedSignature(.int, .pointer)
        case SyscallNumber.sched_getaffinity: return PackedSignature(.int, .uint, .pointer)
        case SyscallNumber.getrandom: return PackedSignature(.pointer, .uint, .hex)
        case SyscallNumber.clock_gettime, SyscallNumber.clock_getres: return PackedSignature(.clock, .pointer)
        case SyscallNumber.clock_nanosleep: return PackedSignature(.clock, .hex, .pointer, .pointer)
        case SyscallNumber.nanosleep: return PackedSignature(.pointer, .pointer)
        case SyscallNumber.gettimeofday: return PackedSignature(.pointer, .pointer)
        case SyscallNumber.time: return PackedSignature(.pointer)
        case SyscallNumber.sigaltstack: return PackedSignature(.pointer, .pointer)
        case SyscallNumber.getpid, SyscallNumber.gettid, SyscallNumber.getppid, SyscallNumber.getuid,
             SyscallNumber.geteuid, SyscallNumber.getgid, SyscallNumber.getegid, SyscallNumber.sched_yield:
            return PackedSignature()
        case SyscallNumber.futex: return PackedSignature(.pointer, .hex, .uint, .pointer, .pointer, .uint)
        case SyscallNumber.clone: return PackedSignature(.hex, .pointer, .pointer, .pointer, .hex)
        case SyscallNumber.fork, SyscallNumber.vfork, SyscallNumber.getpgrp, SyscallNumber.setsid: return PackedSignature()
        case SyscallNumber.execve: return PackedSignature(.string, .pointer, .pointer)
        case SyscallNumber.execveat: return PackedSignature(.fd, .string, .pointer, .pointer, .hex)
        case SyscallNumber.wait4: return PackedSignature(.int, .pointer, .hex, .pointer)
        case SyscallNumber.waitid: return PackedSignature(.int, .int, .pointer, .hex, .pointer)
        case SyscallNumber.setpgid: return PackedSignature(.int, .int)
        case SyscallNumber.getpgid, SyscallNumber.getsid: return PackedSignature(.int)
        case SyscallNumber.pipe2: return PackedSignature(.pointer, .hex)
        case SyscallNumber.dup2: return PackedSignature(.fd, .fd)
        case SyscallNumber.dup3: return PackedSignature(.fd, .fd, .hex)
        case SyscallNumber.chdir, SyscallNumber.rmdir, SyscallNumber.unlink: return PackedSignature(.string)
        case SyscallNumber.getcwd: return PackedSignature(.bufferOut, .uint)
        case SyscallNumber.mkdirat: return PackedSignature(.fd, .string, .hex)
        case SyscallNumber.unlinkat: return PackedSignature(.fd, .string, .hex)
        default: return PackedSignature(.hex, .hex, .hex, .hex, .hex, .hex)
        }
    }
}

extension TraceArgument {
    /// The 4-bit code in a PackedSignature: 1…9 the plain kinds, 10 + length index for
    /// `bufferIn` (the table's length indices are 0…5), never 0.
    var code: UInt32 {
        switch self {
        case .int: return 1
        case .uint: return 2
        case .hex: return 3
        case .fd: return 4
        case .pointer: return 5
        case .string: return 6
        case .bufferOut: return 7
        case .signal: return 8
        case .clock: return 9
        case .bufferIn(let length): return 10 + UInt32(length)
        }
    }

    init(code: UInt32) {
        switch code {
        case 1: self = .int
        case 2: self = .uint
        case 3: self = .hex
        case 4: self = .fd
        case 5: self = .pointer
        case 6: self = .string
        case 7: self = .bufferOut
        case 8: self = .signal
        case 9: self = .clock
        default: self = .bufferIn(length: Int(code) - 10)
        }
    }
}

public enum SyscallTrace {
    /// Bytes of a buffer argument shown before "...".
    public static let bufferPreview = 32

    /// One trace line without the newline. `readMemory(address, count)` returns the user
    /// bytes or nil when they are not readable; `readString(address)` a NUL-terminated string
    /// (without the NUL) or nil. `result` is nil for a call that does not return (exit).
    public static func format(_ call: SyscallArguments, result: UInt64?,
                              readMemory: (UInt64, Int) -> [UInt8]?,
                              readString: (UInt64) -> [UInt8]?) -> [UInt8] {
        var out: [UInt8] = []
        if let name = syscallName(call.number) {
            name.withUTF8Buffer { out.append(contentsOf: $0) }
        } else {
            append("syscall_", to: &out)
            appendDecimal(Int64(call.number), to: &out)
        }
        out.append(UInt8(ascii: "("))
        let signature = PackedSignature.of(call.number)
        let succeeded = result.map { Errno(syscallReturn: $0) == nil } ?? false
        for i in 0..<signature.count {
            if i > 0 { append(", ", to: &out) }
            let value = call[i]
            switch signature[i] {
            case .int: appendDecimal(Int64(bitPattern: value), to: &out)
            case .uint: appendDecimal(value, to: &out)
            case .hex: appendHex(value, to: &out)
            case .pointer:
                if value == 0 { append("NULL", to: &out) } else { appendHex(value, to: &out) }
            case .fd:
                let fd = Int32(truncatingIfNeeded: value)
                if fd == AtFlags.AT_FDCWD { append("AT_FDCWD", to: &out) } else { appendDecimal(Int64(fd), to: &out) }
            case .string:
                if let s = readString(value) { appendQuoted(s, limit: 4096, to: &out) } else { appendPointer(value, to: &out) }
            case .bufferIn(let lengthIndex):
                let count = Int(min(call[lengthIndex], UInt64(bufferPreview + 1)))
                if let bytes = readMemory(value, min(count, bufferPreview)) {
                    appendQuoted(bytes, limit: bufferPreview, to: &out)
                    if count > bufferPreview { append("...", to: &out) }
                } else {
                    appendPointer(value, to: &out)
                }
            case .bufferOut:
                let filled = succeeded ? Int(min(result ?? 0, UInt64(bufferPreview + 1))) : 0
                if filled > 0, let bytes = readMemory(value, min(filled, bufferPreview)) {
                    appendQuoted(bytes, limit: bufferPreview, to: &out)
                    if filled > bufferPreview { append("...", to: &out) }
                } else {
                    appendPointer(value, to: &out)
                }
            case .signal:
                if let s = Signal(rawValue: Int32(truncatingIfNeeded: value)) {
                    s.name.withUTF8Buffer { out.append(contentsOf: $0) }
                } else {
                    appendDecimal(Int64(Int32(truncatingIfNeeded: value)), to: &out)
                }
            case .clock:
                appendClock(Int32(truncatingIfNeeded: value), to: &out)
            }
        }
        append(") = ", to: &out)
        guard let result else {
            out.append(UInt8(ascii: "?"))
            return out
        }
        if let error = Errno(syscallReturn: result) {
            append("-1 ", to: &out)
            error.name.withUTF8Buffer { out.append(contentsOf: $0) }
        } else if signature.returnsAddress {
            appendHex(result, to: &out)
        } else {
            appendDecimal(Int64(bitPattern: result), to: &out)
        }
        return out
    }

    static func append(_ text: StaticString, to out: inout [UInt8]) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    static func appendPointer(_ value: UInt64, to out: inout [UInt8]) {
        if value == 0 { append("NULL", to: &out) } else { appendHex(value, to: &out) }
    }

    static func appendDecimal(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        appendDecimal(value.magnitude, to: &out)
    }

    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        // Most significant digit first: no scratch array to reverse.
        var divisor: UInt64 = 1
        while value / divisor >= 10 { divisor *= 10 }
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        } while divisor > 0
    }

    static func appendHex(_ value: UInt64, to out: inout [UInt8]) {
        append("0x", to: &out)
        var shift = 60
        while shift > 0 && (value >> UInt64(shift)) & 0xf == 0 { shift -= 4 }
        while shift >= 0 {
            let nibble = UInt8((value >> UInt64(shift)) & 0xf)
            out.append(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
            shift -= 4
        }
    }

    /// C-style quoting as strace does: \n \t \" \\ and \ooo for other non-printables.
    static func appendQuoted(_ bytes: [UInt8], limit: Int, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for i in 0..<min(bytes.count, limit) {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "\n"): append("\\n", to: &out)
            case UInt8(ascii: "\t"): append("\\t", to: &out)
            case UInt8(ascii: "\r"): append("\\r", to: &out)
            case UInt8(ascii: "\""): append("\\\"", to: &out)
            case UInt8(ascii: "\\"): append("\\\\", to: &out)
            case 0x20..<0x7f: out.append(b)
            default:
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "0") + (b >> 6))
                out.append(UInt8(ascii: "0") + ((b >> 3) & 7))
                out.append(UInt8(ascii: "0") + (b & 7))
            }
        }
        out.append(UInt8(ascii: "\""))
        if bytes.count > limit { append("...", to: &out) }
    }

    static func appendClock(_ id: Int32, to out: inout [UInt8]) {
        switch ClockID(rawValue: id) {
        case .CLOCK_REALTIME: append("CLOCK_REALTIME", to: &out)
        case .CLOCK_MONOTONIC: append("CLOCK_MONOTONIC", to: &out)
        case .CLOCK_PROCESS_CPUTIME_ID: append("CLOCK_PROCESS_CPUTIME_ID", to: &out)
        case .CLOCK_THREAD_CPUTIME_ID: append("CLOCK_THREAD_CPUTIME_ID", to: &out)
        case .CLOCK_MONOTONIC_RAW: append("CLOCK_MONOTONIC_RAW", to: &out)
        case .CLOCK_REALTIME_COARSE: append("CLOCK_REALTIME_COARSE", to: &out)
        case .CLOCK_MONOTONIC_COARSE: append("CLOCK_MONOTONIC_COARSE", to: &out)
        case .CLOCK_BOOTTIME: append("CLOCK_BOOTTIME", to: &out)
        default: appendDecimal(Int64(id), to: &out)
        }
    }
}
