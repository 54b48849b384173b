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
        switch number {
        case SyscallNumber.read: return .init([.fd, .bufferOut, .uint])
        case SyscallNumber.pread64: return .init([.fd, .bufferOut, .uint, .int])
        case SyscallNumber.write: return .init([.fd, .bufferIn(length: 2), .uint])
        case SyscallNumber.pwrite64: return .init([.fd, .bufferIn(length: 2), .uint, .int])
        case SyscallNumber.readv, SyscallNumber.writev: return .init([.fd, .pointer, .int])
        case SyscallNumber.open: return .init([.string, .hex, .hex])
        case SyscallNumber.openat: return .init([.fd, .string, .hex, .hex])
        case SyscallNumber.close, SyscallNumber.fsync, SyscallNumber.fdatasync, SyscallNumber.dup:
            return .init([.fd])
        case SyscallNumber.fstat: return .init([.fd, .pointer])
        case SyscallNumber.stat, SyscallNumber.lstat: return .init([.string, .pointer])
        case SyscallNumber.newfstatat: return .init([.fd, .string, .pointer, .hex])
        case SyscallNumber.statx: return .init([.fd, .string, .hex, .hex, .pointer])
        case SyscallNumber.lseek: return .init([.fd, .int, .int])
        case SyscallNumber.mmap: return .init([.pointer, .uint, .hex, .hex, .fd, .hex], returnsAddress: true)
        case SyscallNumber.mprotect: return .init([.pointer, .uint, .hex])
        case SyscallNumber.munmap: return .init([.pointer, .uint])
        case SyscallNumber.mremap: return .init([.pointer, .uint, .uint, .hex, .pointer], returnsAddress: true)
        case SyscallNumber.madvise: return .init([.pointer, .uint, .int])
        case SyscallNumber.brk: return .init([.pointer], returnsAddress: true)
        case SyscallNumber.rt_sigaction: return .init([.signal, .pointer, .pointer, .uint])
        case SyscallNumber.rt_sigprocmask: return .init([.int, .pointer, .pointer, .uint])
        case SyscallNumber.ioctl: return .init([.fd, .hex, .pointer])
        case SyscallNumber.access: return .init([.string, .int])
        case SyscallNumber.faccessat, SyscallNumber.faccessat2: return .init([.fd, .string, .int, .hex])
        case SyscallNumber.readlink: return .init([.string, .bufferOut, .uint])
        case SyscallNumber.readlinkat: return .init([.fd, .string, .bufferOut, .uint])
        case SyscallNumber.getdents64: return .init([.fd, .pointer, .uint])
        case SyscallNumber.fcntl: return .init([.fd, .int, .hex])
        case SyscallNumber.exit, SyscallNumber.exit_group: return .init([.int])
        case SyscallNumber.kill: return .init([.int, .signal])
        case SyscallNumber.tkill: return .init([.int, .signal])
        case SyscallNumber.tgkill: return .init([.int, .int, .signal])
        case SyscallNumber.uname, SyscallNumber.sysinfo, SyscallNumber.set_tid_address: return .init([.pointer])
        case SyscallNumber.arch_prctl: return .init([.hex, .pointer])
        case SyscallNumber.set_robust_list: return .init([.pointer, .uint])
        case SyscallNumber.rseq: return .init([.pointer, .uint, .hex, .hex])
        case SyscallNumber.prlimit64: return .init([.int, .int, .pointer, .pointer])
        case SyscallNumber.getrlimit: return .init([.int, .pointer])
        case SyscallNumber.sched_getaffinity: return .init([.int, .uint, .pointer])
        case SyscallNumber.getrandom: return .init([.pointer, .uint, .hex])
        case SyscallNumber.clock_gettime, SyscallNumber.clock_getres: return .init([.clock, .pointer])
        case SyscallNumber.clock_nanosleep: return .init([.clock, .hex, .pointer, .pointer])
        case SyscallNumber.nanosleep: return .init([.pointer, .pointer])
        case SyscallNumber.gettimeofday: return .init([.pointer, .pointer])
        case SyscallNumber.time: return .init([.pointer])
        case SyscallNumber.sigaltstack: return .init([.pointer, .pointer])
        case SyscallNumber.getpid, SyscallNumber.gettid, SyscallNumber.getppid, SyscallNumber.getuid,
             SyscallNumber.geteuid, SyscallNumber.getgid, SyscallNumber.getegid, SyscallNumber.sched_yield:
            return .init([])
        case SyscallNumber.futex: return .init([.pointer, .hex, .uint, .pointer, .pointer, .uint])
        case SyscallNumber.clone: return .init([.hex, .pointer, .pointer, .pointer, .hex])
        case SyscallNumber.pipe2: return .init([.pointer, .hex])
        case SyscallNumber.dup2: return .init([.fd, .fd])
        case SyscallNumber.dup3: return .init([.fd, .fd, .hex])
        case SyscallNumber.chdir, SyscallNumber.rmdir, SyscallNumber.unlink: return .init([.string])
        case SyscallNumber.getcwd: return .init([.bufferOut, .uint])
        case SyscallNumber.mkdirat: return .init([.fd, .string, .hex])
        case SyscallNumber.unlinkat: return .init([.fd, .string, .hex])
        default: return .init([.hex, .hex, .hex, .hex, .hex, .hex])
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
        let signature = SyscallSignature.of(call.number)
        let succeeded = result.map { Errno(syscallReturn: $0) == nil } ?? false
        for (i, kind) in signature.arguments.enumerated() {
            if i > 0 { append(", ", to: &out) }
            let value = call[i]
            switch kind {
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
        var digits: [UInt8] = []
        var v = value
        repeat {
            digits.append(UInt8(ascii: "0") + UInt8(v % 10))
            v /= 10
        } while v != 0
        out.append(contentsOf: digits.reversed())
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
        for b in bytes.prefix(limit) {
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
