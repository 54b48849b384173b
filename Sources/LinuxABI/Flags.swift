// Typed decodings of syscall argument values: flag sets, clock ids, codes and keys of the
// Linux x86-64 user ABI. Every constant is spelled exactly as in Linux's UAPI headers
// (`MmapFlags.MAP_PRIVATE`, `ClockID.CLOCK_MONOTONIC`), so the kernel reads like the man pages.
// Decoding never traps: an unknown value is nil or an Errno.

// MARK: - Memory mapping

/// The `prot` argument of mmap/mprotect (<asm-generic/mman-common.h>).
public struct MmapProtection: OptionSet, Hashable, Sendable {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let PROT_NONE: MmapProtection = []
    public static let PROT_READ = MmapProtection(rawValue: 0x1)
    public static let PROT_WRITE = MmapProtection(rawValue: 0x2)
    public static let PROT_EXEC = MmapProtection(rawValue: 0x4)
    public static let PROT_SEM = MmapProtection(rawValue: 0x8)
    public static let PROT_GROWSDOWN = MmapProtection(rawValue: 0x0100_0000)
    public static let PROT_GROWSUP = MmapProtection(rawValue: 0x0200_0000)

    /// The bits mprotect accepts; any other bit is EINVAL there (mmap ignores unknown bits).
    public static let known: MmapProtection = [.PROT_READ, .PROT_WRITE, .PROT_EXEC, .PROT_SEM,
                                               .PROT_GROWSDOWN, .PROT_GROWSUP]

    /// mprotect's checks: no unknown bits, not both GROWSDOWN and GROWSUP (EINVAL).
    @inlinable public func validateForMprotect() throws(Errno) {
        guard isSubset(of: .known) else { throw .EINVAL }
        guard !contains([.PROT_GROWSDOWN, .PROT_GROWSUP]) else { throw .EINVAL }
    }
}

/// The `flags` argument of mmap (<asm-generic/mman-common.h>, <asm/mman.h> for x86).
public struct MmapFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    // The mapping type occupies the low four bits (MAP_TYPE); it is a value, not a flag set.
    public static let MAP_SHARED = MmapFlags(rawValue: 0x01)
    public static let MAP_PRIVATE = MmapFlags(rawValue: 0x02)
    public static let MAP_SHARED_VALIDATE = MmapFlags(rawValue: 0x03)
    public static let MAP_DROPPABLE = MmapFlags(rawValue: 0x08)
    public static let MAP_TYPE = MmapFlags(rawValue: 0x0f)

    public static let MAP_FIXED = MmapFlags(rawValue: 0x10)
    public static let MAP_ANONYMOUS = MmapFlags(rawValue: 0x20)
    /// x86-64 only: place the mapping in the first 2 GiB.
    public static let MAP_32BIT = MmapFlags(rawValue: 0x40)
    public static let MAP_GROWSDOWN = MmapFlags(rawValue: 0x100)
    public static let MAP_DENYWRITE = MmapFlags(rawValue: 0x800)
    public static let MAP_EXECUTABLE = MmapFlags(rawValue: 0x1000)
    public static let MAP_LOCKED = MmapFlags(rawValue: 0x2000)
    public static let MAP_NORESERVE = MmapFlags(rawValue: 0x4000)
    public static let MAP_POPULATE = MmapFlags(rawValue: 0x8000)
    public static let MAP_NONBLOCK = MmapFlags(rawValue: 0x1_0000)
    public static let MAP_STACK = MmapFlags(rawValue: 0x2_0000)
    public static let MAP_HUGETLB = MmapFlags(rawValue: 0x4_0000)
    public static let MAP_SYNC = MmapFlags(rawValue: 0x8_0000)
    public static let MAP_FIXED_NOREPLACE = MmapFlags(rawValue: 0x10_0000)
    public static let MAP_UNINITIALIZED = MmapFlags(rawValue: 0x400_0000)
    /// MAP_HUGETLB page-size selector: log2(size) in bits 26…31 (MAP_HUGE_SHIFT, MAP_HUGE_MASK).
    public static let MAP_HUGE_SHIFT = 26
    public static let MAP_HUGE_MASK: UInt64 = 0x3f

    /// LEGACY_MAP_MASK: the flags MAP_SHARED_VALIDATE accepts on a file mapping (Linux also
    /// accepts MAP_SYNC on DAX files, which Apus has none of).
    public static let legacyMask = MmapFlags(rawValue:
        0x03 | 0x10 | 0x20 | 0x40 | 0x100 | 0x800 | 0x1000 | 0x2000 | 0x4000 | 0x8000
            | 0x1_0000 | 0x2_0000 | 0x4_0000 | 0x400_0000 | (0x3f << 26))

    public enum MappingType: Sendable {
        case shared, sharedValidate, `private`
    }

    /// The mapping type in MAP_TYPE, or nil when it is none Apus supports (0, MAP_DROPPABLE
    /// or an undefined value).
    @inlinable public var mappingType: MappingType? {
        switch rawValue & MmapFlags.MAP_TYPE.rawValue {
        case MmapFlags.MAP_SHARED.rawValue: return .shared
        case MmapFlags.MAP_SHARED_VALIDATE.rawValue: return .sharedValidate
        case MmapFlags.MAP_PRIVATE.rawValue: return .private
        default: return nil
        }
    }

    @inlinable public var isAnonymous: Bool { contains(.MAP_ANONYMOUS) }
    /// MAP_FIXED_NOREPLACE implies MAP_FIXED (Linux sets MAP_FIXED itself).
    @inlinable public var isFixed: Bool { !isDisjoint(with: [.MAP_FIXED, .MAP_FIXED_NOREPLACE]) }

    /// Linux's do_mmap checks of the flags alone: the type must be exactly one of MAP_SHARED,
    /// MAP_PRIVATE or MAP_SHARED_VALIDATE (else EINVAL). MAP_SHARED silently ignores unknown
    /// flags; MAP_SHARED_VALIDATE rejects them with EOPNOTSUPP on a file and is EINVAL on an
    /// anonymous mapping; a shared anonymous mapping cannot be MAP_GROWSDOWN (EINVAL).
    /// MAP_DROPPABLE (Linux 6.11) is treated like the older kernels that do not know it.
    @inlinable public func validate() throws(Errno) {
        guard let type = mappingType else { throw .EINVAL }
        switch type {
        case .private:
            return
        case .shared:
            if isAnonymous && contains(.MAP_GROWSDOWN) { throw .EINVAL }
        case .sharedValidate:
            if isAnonymous { throw .EINVAL }
            if !isSubset(of: .legacyMask) { throw .EOPNOTSUPP }
        }
    }
}

/// The `advice` argument of madvise (a value, not flags).
public enum MadviseAdvice {
    public static let MADV_NORMAL: Int32 = 0
    public static let MADV_RANDOM: Int32 = 1
    public static let MADV_SEQUENTIAL: Int32 = 2
    public static let MADV_WILLNEED: Int32 = 3
    public static let MADV_DONTNEED: Int32 = 4
    public static let MADV_FREE: Int32 = 8
    public static let MADV_REMOVE: Int32 = 9
    public static let MADV_DONTFORK: Int32 = 10
    public static let MADV_DOFORK: Int32 = 11
    public static let MADV_HUGEPAGE: Int32 = 14
    public static let MADV_NOHUGEPAGE: Int32 = 15
    public static let MADV_DONTDUMP: Int32 = 16
}

/// The `flags` argument of mremap.
public struct MremapFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let MREMAP_MAYMOVE = MremapFlags(rawValue: 1)
    public static let MREMAP_FIXED = MremapFlags(rawValue: 2)
    public static let MREMAP_DONTUNMAP = MremapFlags(rawValue: 4)
}

// MARK: - Time

/// The `clockid_t` argument of clock_gettime/clock_getres/clock_nanosleep/timer_create.
/// Negative ids (per-process/per-thread CPU clocks, dynamic fd clocks) are not representable:
/// init?(rawValue:) rejects them, and the handler answers EINVAL.
public enum ClockID: Int32, Sendable {
    case CLOCK_REALTIME = 0
    case CLOCK_MONOTONIC = 1
    case CLOCK_PROCESS_CPUTIME_ID = 2
    case CLOCK_THREAD_CPUTIME_ID = 3
    case CLOCK_MONOTONIC_RAW = 4
    case CLOCK_REALTIME_COARSE = 5
    case CLOCK_MONOTONIC_COARSE = 6
    case CLOCK_BOOTTIME = 7
    case CLOCK_REALTIME_ALARM = 8
    case CLOCK_BOOTTIME_ALARM = 9
    // 10 was CLOCK_SGI_CYCLE, removed; Linux answers EINVAL.
    case CLOCK_TAI = 11

    /// The `flags` of clock_nanosleep: TIMER_ABSTIME = 1 (a deadline, not a duration).
    public static let TIMER_ABSTIME: Int32 = 1
}

/// The `which` argument of getitimer/setitimer.
public enum IntervalTimer: Int32, Sendable {
    case ITIMER_REAL = 0
    case ITIMER_VIRTUAL = 1
    case ITIMER_PROF = 2
}

// MARK: - Process

/// The `code` argument of arch_prctl (<asm/prctl.h>).
public enum ArchPrctlCode: Int32, Sendable {
    case ARCH_SET_GS = 0x1001
    case ARCH_SET_FS = 0x1002
    case ARCH_GET_FS = 0x1003
    case ARCH_GET_GS = 0x1004
    case ARCH_GET_CPUID = 0x1011
    case ARCH_SET_CPUID = 0x1012
}

/// The `resource` argument of getrlimit/setrlimit/prlimit64 (<asm-generic/resource.h>).
public enum RlimitResource: Int32, Sendable, CaseIterable {
    case RLIMIT_CPU = 0
    case RLIMIT_FSIZE = 1
    case RLIMIT_DATA = 2
    case RLIMIT_STACK = 3
    case RLIMIT_CORE = 4
    case RLIMIT_RSS = 5
    case RLIMIT_NPROC = 6
    case RLIMIT_NOFILE = 7
    case RLIMIT_MEMLOCK = 8
    case RLIMIT_AS = 9
    case RLIMIT_LOCKS = 10
    case RLIMIT_SIGPENDING = 11
    case RLIMIT_MSGQUEUE = 12
    case RLIMIT_NICE = 13
    case RLIMIT_RTPRIO = 14
    case RLIMIT_RTTIME = 15
    /// RLIM_NLIMITS.
    public static let count = 16
}

/// The `flags` argument of clone (and the low 32 bits of clone3's flags); the low byte is
/// the exit signal (CSIGNAL).
public struct CloneFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let CSIGNAL: UInt64 = 0xff
    public static let CLONE_VM = CloneFlags(rawValue: 0x100)
    public static let CLONE_FS = CloneFlags(rawValue: 0x200)
    public static let CLONE_FILES = CloneFlags(rawValue: 0x400)
    public static let CLONE_SIGHAND = CloneFlags(rawValue: 0x800)
    public static let CLONE_PIDFD = CloneFlags(rawValue: 0x1000)
    public static let CLONE_PTRACE = CloneFlags(rawValue: 0x2000)
    public static let CLONE_VFORK = CloneFlags(rawValue: 0x4000)
    public static let CLONE_PARENT = CloneFlags(rawValue: 0x8000)
    public static let CLONE_THREAD = CloneFlags(rawValue: 0x1_0000)
    public static let CLONE_NEWNS = CloneFlags(rawValue: 0x2_0000)
    public static let CLONE_SYSVSEM = CloneFlags(rawValue: 0x4_0000)
    public static let CLONE_SETTLS = CloneFlags(rawValue: 0x8_0000)
    public static let CLONE_PARENT_SETTID = CloneFlags(rawValue: 0x10_0000)
    public static let CLONE_CHILD_CLEARTID = CloneFlags(rawValue: 0x20_0000)
    public static let CLONE_DETACHED = CloneFlags(rawValue: 0x40_0000)
    public static let CLONE_UNTRACED = CloneFlags(rawValue: 0x80_0000)
    public static let CLONE_CHILD_SETTID = CloneFlags(rawValue: 0x100_0000)

    /// The signal sent to the parent when the child exits (SIGCHLD for fork-like clones).
    @inlinable public var exitSignal: Int32 { Int32(rawValue & CloneFlags.CSIGNAL) }
}

/// The `options` of wait4/waitid.
public struct WaitOptions: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let WNOHANG = WaitOptions(rawValue: 1)
    public static let WUNTRACED = WaitOptions(rawValue: 2)
    public static let WEXITED = WaitOptions(rawValue: 4)
    public static let WCONTINUED = WaitOptions(rawValue: 8)
    public static let WNOWAIT = WaitOptions(rawValue: 0x0100_0000)
}

/// The `int *wstatus` word of wait4: exit code in bits 8…15 for a normal exit; the signal in
/// bits 0…6 (plus 0x80 when it dumped core) for a death by signal.
public enum WaitStatus {
    @inlinable public static func exited(code: Int32) -> Int32 { (code & 0xff) << 8 }
    @inlinable public static func signaled(_ signal: Signal, coreDumped: Bool = false) -> Int32 {
        (signal.rawValue & 0x7f) | (coreDumped ? 0x80 : 0)
    }
}

/// The `op` argument of futex: a command in the low bits plus option bits.
public enum FutexOp {
    public static let FUTEX_WAIT: Int32 = 0
    public static let FUTEX_WAKE: Int32 = 1
    public static let FUTEX_FD: Int32 = 2
    public static let FUTEX_REQUEUE: Int32 = 3
    public static let FUTEX_CMP_REQUEUE: Int32 = 4
    public static let FUTEX_WAKE_OP: Int32 = 5
    public static let FUTEX_LOCK_PI: Int32 = 6
    public static let FUTEX_UNLOCK_PI: Int32 = 7
    public static let FUTEX_TRYLOCK_PI: Int32 = 8
    public static let FUTEX_WAIT_BITSET: Int32 = 9
    public static let FUTEX_WAKE_BITSET: Int32 = 10
    public static let FUTEX_WAIT_REQUEUE_PI: Int32 = 11
    public static let FUTEX_CMP_REQUEUE_PI: Int32 = 12
    public static let FUTEX_LOCK_PI2: Int32 = 13
    public static let FUTEX_PRIVATE_FLAG: Int32 = 128
    public static let FUTEX_CLOCK_REALTIME: Int32 = 256
    /// FUTEX_CMD_MASK: the command without the option bits.
    @inlinable public static func command(_ op: Int32) -> Int32 {
        op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    }
    /// FUTEX_BITSET_MATCH_ANY: the bitset that FUTEX_WAIT/FUTEX_WAKE use implicitly.
    public static let FUTEX_BITSET_MATCH_ANY = UInt32.max
}

/// The `flags` of getrandom.
public struct GetrandomFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let GRND_NONBLOCK = GetrandomFlags(rawValue: 1)
    public static let GRND_RANDOM = GetrandomFlags(rawValue: 2)
    public static let GRND_INSECURE = GetrandomFlags(rawValue: 4)
}

// MARK: - Signals

/// A Linux signal number, 1…64: the 31 classic signals, then the real-time ones from
/// SIGRTMIN (32, the kernel's value; glibc reserves 32 and 33 and reports SIGRTMIN as 34).
public struct Signal: RawRepresentable, Hashable, Sendable {
    public var rawValue: Int32

    /// Nil unless 1…64 (signal 0 is "check only" in kill, not a signal).
    @inlinable public init?(rawValue: Int32) {
        guard rawValue >= 1, rawValue <= Signal.SIGRTMAX.rawValue else { return nil }
        self.rawValue = rawValue
    }

    @inlinable init(_ value: Int32) { rawValue = value }

    public static let SIGHUP = Signal(1)
    public static let SIGINT = Signal(2)
    public static let SIGQUIT = Signal(3)
    public static let SIGILL = Signal(4)
    public static let SIGTRAP = Signal(5)
    public static let SIGABRT = Signal(6)
    public static let SIGIOT = SIGABRT
    public static let SIGBUS = Signal(7)
    public static let SIGFPE = Signal(8)
    public static let SIGKILL = Signal(9)
    public static let SIGUSR1 = Signal(10)
    public static let SIGSEGV = Signal(11)
    public static let SIGUSR2 = Signal(12)
    public static let SIGPIPE = Signal(13)
    public static let SIGALRM = Signal(14)
    public static let SIGTERM = Signal(15)
    public static let SIGSTKFLT = Signal(16)
    public static let SIGCHLD = Signal(17)
    public static let SIGCONT = Signal(18)
    public static let SIGSTOP = Signal(19)
    public static let SIGTSTP = Signal(20)
    public static let SIGTTIN = Signal(21)
    public static let SIGTTOU = Signal(22)
    public static let SIGURG = Signal(23)
    public static let SIGXCPU = Signal(24)
    public static let SIGXFSZ = Signal(25)
    public static let SIGVTALRM = Signal(26)
    public static let SIGPROF = Signal(27)
    public static let SIGWINCH = Signal(28)
    public static let SIGIO = Signal(29)
    public static let SIGPOLL = SIGIO
    public static let SIGPWR = Signal(30)
    public static let SIGSYS = Signal(31)
    public static let SIGRTMIN = Signal(32)
    public static let SIGRTMAX = Signal(64)

    @inlinable public var isRealtime: Bool { rawValue >= Signal.SIGRTMIN.rawValue }

    /// "SIGSEGV"; every real-time signal is "SIGRT" (print the number alongside).
    public var name: StaticString {
        switch rawValue {
        case 1: return "SIGHUP"
        case 2: return "SIGINT"
        case 3: return "SIGQUIT"
        case 4: return "SIGILL"
        case 5: return "SIGTRAP"
        case 6: return "SIGABRT"
        case 7: return "SIGBUS"
        case 8: return "SIGFPE"
        case 9: return "SIGKILL"
        case 10: return "SIGUSR1"
        case 11: return "SIGSEGV"
        case 12: return "SIGUSR2"
        case 13: return "SIGPIPE"
        case 14: return "SIGALRM"
        case 15: return "SIGTERM"
        case 16: return "SIGSTKFLT"
        case 17: return "SIGCHLD"
        case 18: return "SIGCONT"
        case 19: return "SIGSTOP"
        case 20: return "SIGTSTP"
        case 21: return "SIGTTIN"
        case 22: return "SIGTTOU"
        case 23: return "SIGURG"
        case 24: return "SIGXCPU"
        case 25: return "SIGXFSZ"
        case 26: return "SIGVTALRM"
        case 27: return "SIGPROF"
        case 28: return "SIGWINCH"
        case 29: return "SIGIO"
        case 30: return "SIGPWR"
        case 31: return "SIGSYS"
        default: return "SIGRT"
        }
    }

    /// What happens when the signal arrives with SIG_DFL (signal(7)).
    public enum DefaultAction: Sendable { case terminate, coreDump, ignore, stop, `continue` }

    public var defaultAction: DefaultAction {
        switch rawValue {
        case 3, 4, 5, 6, 7, 8, 11, 24, 25, 31: return .coreDump
        case 17, 23, 28: return .ignore
        case 19, 20, 21, 22: return .stop
        case 18: return .continue
        default: return .terminate
        }
    }

    /// SIGKILL and SIGSTOP cannot be caught, blocked or ignored.
    @inlinable public var isCatchable: Bool {
        self != .SIGKILL && self != .SIGSTOP
    }
}

/// A kernel `sigset_t` (64 bits, one per signal: signal n is bit n-1). rt_sigprocmask and
/// rt_sigaction require sigsetsize == SignalSet.size (8), else EINVAL.
public struct SignalSet: Hashable, Sendable {
    public static let size = 8
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64 = 0) { self.rawValue = rawValue }

    @inlinable public func contains(_ s: Signal) -> Bool { rawValue & Self.bit(s) != 0 }
    @inlinable public mutating func insert(_ s: Signal) { rawValue |= Self.bit(s) }
    @inlinable public mutating func remove(_ s: Signal) { rawValue &= ~Self.bit(s) }
    @inlinable static func bit(_ s: Signal) -> UInt64 { 1 << UInt64(s.rawValue - 1) }

    /// The set without SIGKILL and SIGSTOP, which Linux silently drops from every mask.
    @inlinable public var blockable: SignalSet {
        SignalSet(rawValue: rawValue & ~(Self.bit(.SIGKILL) | Self.bit(.SIGSTOP)))
    }
}

/// The `how` argument of rt_sigprocmask.
public enum SigprocmaskHow: Int32, Sendable {
    case SIG_BLOCK = 0
    case SIG_UNBLOCK = 1
    case SIG_SETMASK = 2
}

/// `sa_flags` of the kernel sigaction.
public struct SigactionFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let SA_NOCLDSTOP = SigactionFlags(rawValue: 0x1)
    public static let SA_NOCLDWAIT = SigactionFlags(rawValue: 0x2)
    public static let SA_SIGINFO = SigactionFlags(rawValue: 0x4)
    /// x86-64 requires SA_RESTORER: the handler returns to sa_restorer, which calls
    /// rt_sigreturn (there is no vDSO trampoline).
    public static let SA_RESTORER = SigactionFlags(rawValue: 0x0400_0000)
    public static let SA_ONSTACK = SigactionFlags(rawValue: 0x0800_0000)
    public static let SA_RESTART = SigactionFlags(rawValue: 0x1000_0000)
    public static let SA_NODEFER = SigactionFlags(rawValue: 0x4000_0000)
    public static let SA_RESETHAND = SigactionFlags(rawValue: 0x8000_0000)
}

// MARK: - Files

/// The `flags` of open/openat (<asm-generic/fcntl.h>, x86-64 values). The access mode is a
/// two-bit value (O_ACCMODE), read through `accessMode`.
public struct OpenFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    // Computed, not `static let … = []`: that stored empty set is built lazily (a one-time
    // initializer, and a check at every use) instead of being a constant.
    @inlinable public static var O_RDONLY: OpenFlags { OpenFlags(rawValue: 0) }
    public static let O_WRONLY = OpenFlags(rawValue: 0o1)
    public static let O_RDWR = OpenFlags(rawValue: 0o2)
    public static let O_ACCMODE = OpenFlags(rawValue: 0o3)
    public static let O_CREAT = OpenFlags(rawValue: 0o100)
    public static let O_EXCL = OpenFlags(rawValue: 0o200)
    public static let O_NOCTTY = OpenFlags(rawValue: 0o400)
    public static let O_TRUNC = OpenFlags(rawValue: 0o1000)
    public static let O_APPEND = OpenFlags(rawValue: 0o2000)
    public static let O_NONBLOCK = OpenFlags(rawValue: 0o4000)
    public static let O_DSYNC = OpenFlags(rawValue: 0o1_0000)
    public static let O_ASYNC = OpenFlags(rawValue: 0o2_0000)
    public static let O_DIRECT = OpenFlags(rawValue: 0o4_0000)
    /// The kernel's value; glibc defines O_LARGEFILE as 0 on 64-bit and the kernel forces it on.
    public static let O_LARGEFILE = OpenFlags(rawValue: 0o10_0000)
    public static let O_DIRECTORY = OpenFlags(rawValue: 0o20_0000)
    public static let O_NOFOLLOW = OpenFlags(rawValue: 0o40_0000)
    public static let O_NOATIME = OpenFlags(rawValue: 0o100_0000)
    public static let O_CLOEXEC = OpenFlags(rawValue: 0o200_0000)
    /// O_SYNC = __O_SYNC | O_DSYNC.
    public static let O_SYNC = OpenFlags(rawValue: 0o401_0000)
    public static let O_PATH = OpenFlags(rawValue: 0o1000_0000)
    /// O_TMPFILE = __O_TMPFILE | O_DIRECTORY.
    public static let O_TMPFILE = OpenFlags(rawValue: 0o2020_0000)

    public enum AccessMode: Sendable {
        case readOnly, writeOnly, readWrite
        /// O_ACCMODE == 3: Linux opens the file for neither reading nor writing (ioctl only).
        case none
    }

    @inlinable public var accessMode: AccessMode {
        switch rawValue & 0o3 {
        case 0: return .readOnly
        case 1: return .writeOnly
        case 2: return .readWrite
        default: return .none
        }
    }
    @inlinable public var isReadable: Bool { accessMode == .readOnly || accessMode == .readWrite }
    @inlinable public var isWritable: Bool { accessMode == .writeOnly || accessMode == .readWrite }
}

/// The `flags` of the *at syscalls (newfstatat, fstatat, faccessat2, unlinkat, linkat, statx),
/// and the special `dirfd` AT_FDCWD.
public struct AtFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The `dirfd` value (not a flag) meaning "relative to the current directory".
    public static let AT_FDCWD: Int32 = -100
    public static let AT_SYMLINK_NOFOLLOW = AtFlags(rawValue: 0x100)
    /// unlinkat only; the same bit is AT_EACCESS for faccessat.
    public static let AT_REMOVEDIR = AtFlags(rawValue: 0x200)
    public static let AT_EACCESS = AtFlags(rawValue: 0x200)
    public static let AT_SYMLINK_FOLLOW = AtFlags(rawValue: 0x400)
    public static let AT_NO_AUTOMOUNT = AtFlags(rawValue: 0x800)
    public static let AT_EMPTY_PATH = AtFlags(rawValue: 0x1000)
    /// statx's sync-type field (AT_STATX_SYNC_TYPE), ignored by a local file system.
    public static let AT_STATX_SYNC_TYPE = AtFlags(rawValue: 0x6000)
}

/// The `cmd` argument of fcntl, and its FD_CLOEXEC flag.
public enum FcntlCommand {
    public static let F_DUPFD: Int32 = 0
    public static let F_GETFD: Int32 = 1
    public static let F_SETFD: Int32 = 2
    public static let F_GETFL: Int32 = 3
    public static let F_SETFL: Int32 = 4
    public static let F_GETLK: Int32 = 5
    public static let F_SETLK: Int32 = 6
    public static let F_SETLKW: Int32 = 7
    public static let F_SETOWN: Int32 = 8
    public static let F_GETOWN: Int32 = 9
    public static let F_DUPFD_CLOEXEC: Int32 = 1030
    public static let F_GETPIPE_SZ: Int32 = 1032
    public static let FD_CLOEXEC: Int32 = 1
}

/// The `whence` argument of lseek.
public enum SeekWhence: Int32, Sendable {
    case SEEK_SET = 0
    case SEEK_CUR = 1
    case SEEK_END = 2
    case SEEK_DATA = 3
    case SEEK_HOLE = 4
}

/// File type and permission bits of st_mode (<linux/stat.h>).
public enum FileMode {
    public static let S_IFMT: UInt32 = 0o170000
    public static let S_IFSOCK: UInt32 = 0o140000
    public static let S_IFLNK: UInt32 = 0o120000
    public static let S_IFREG: UInt32 = 0o100000
    public static let S_IFBLK: UInt32 = 0o060000
    public static let S_IFDIR: UInt32 = 0o040000
    public static let S_IFCHR: UInt32 = 0o020000
    public static let S_IFIFO: UInt32 = 0o010000
    public static let S_ISUID: UInt32 = 0o4000
    public static let S_ISGID: UInt32 = 0o2000
    public static let S_ISVTX: UInt32 = 0o1000
    /// The permission bits (rwx for user, group, others).
    public static let permissionMask: UInt32 = 0o777
}

/// `d_type` of a dirent64 record: the file type (S_IF* >> 12).
public enum DirentType {
    public static let DT_UNKNOWN: UInt8 = 0
    public static let DT_FIFO: UInt8 = 1
    public static let DT_CHR: UInt8 = 2
    public static let DT_DIR: UInt8 = 4
    public static let DT_BLK: UInt8 = 6
    public static let DT_REG: UInt8 = 8
    public static let DT_LNK: UInt8 = 10
    public static let DT_SOCK: UInt8 = 12
    /// The d_type for an st_mode.
    @inlinable public static func from(mode: UInt32) -> UInt8 {
        UInt8(truncatingIfNeeded: (mode & FileMode.S_IFMT) >> 12)
    }
}

/// The `mode` argument of access/faccessat (a mask; F_OK = 0 only tests existence).
public enum AccessMode {
    public static let F_OK: Int32 = 0
    public static let X_OK: Int32 = 1
    public static let W_OK: Int32 = 2
    public static let R_OK: Int32 = 4
}

/// `events`/`revents` bits of struct pollfd.
public enum PollEvents {
    public static let POLLIN: Int16 = 0x001
    public static let POLLPRI: Int16 = 0x002
    public static let POLLOUT: Int16 = 0x004
    public static let POLLERR: Int16 = 0x008
    public static let POLLHUP: Int16 = 0x010
    public static let POLLNVAL: Int16 = 0x020
    public static let POLLRDNORM: Int16 = 0x040
    public static let POLLWRNORM: Int16 = 0x100
}

// MARK: - ioctl

/// ioctl request numbers (<asm-generic/ioctls.h>, which x86-64 uses). The request argument is
/// an `unsigned int`: compare against the low 32 bits of the register.
public enum IoctlRequest {
    public static let TCGETS: UInt32 = 0x5401
    public static let TCSETS: UInt32 = 0x5402
    public static let TCSETSW: UInt32 = 0x5403
    public static let TCSETSF: UInt32 = 0x5404
    public static let TIOCSCTTY: UInt32 = 0x540E
    public static let TIOCGPGRP: UInt32 = 0x540F
    public static let TIOCSPGRP: UInt32 = 0x5410
    public static let TIOCOUTQ: UInt32 = 0x5411
    public static let TIOCGWINSZ: UInt32 = 0x5413
    public static let TIOCSWINSZ: UInt32 = 0x5414
    public static let FIONREAD: UInt32 = 0x541B
    public static let TIOCNOTTY: UInt32 = 0x5422
    public static let FIONBIO: UInt32 = 0x5421
    public static let TIOCGPTN: UInt32 = 0x8004_5430
    public static let TIOCSPTLCK: UInt32 = 0x4004_5431
    public static let FIONCLEX: UInt32 = 0x5450
    public static let FIOCLEX: UInt32 = 0x5451
    public static let FIOASYNC: UInt32 = 0x5452
    public static let TIOCGSID: UInt32 = 0x5429
}

// MARK: - Auxiliary vector

/// Keys of the auxiliary vector the kernel puts above envp on the initial stack
/// (<linux/auxvec.h>, <asm/auxvec.h>).
public enum AuxvKey: UInt64, Sendable {
    case AT_NULL = 0
    case AT_IGNORE = 1
    case AT_EXECFD = 2
    case AT_PHDR = 3
    case AT_PHENT = 4
    case AT_PHNUM = 5
    case AT_PAGESZ = 6
    case AT_BASE = 7
    case AT_FLAGS = 8
    case AT_ENTRY = 9
    case AT_NOTELF = 10
    case AT_UID = 11
    case AT_EUID = 12
    case AT_GID = 13
    case AT_EGID = 14
    case AT_PLATFORM = 15
    case AT_HWCAP = 16
    case AT_CLKTCK = 17
    case AT_SECURE = 23
    case AT_BASE_PLATFORM = 24
    case AT_RANDOM = 25
    case AT_HWCAP2 = 26
    case AT_RSEQ_FEATURE_SIZE = 27
    case AT_RSEQ_ALIGN = 28
    case AT_HWCAP3 = 29
    case AT_HWCAP4 = 30
    case AT_EXECFN = 31
    case AT_SYSINFO_EHDR = 33
    case AT_MINSIGSTKSZ = 51
}
