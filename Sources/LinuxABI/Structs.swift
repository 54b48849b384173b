// Linux x86-64 kernel structures as they appear in user memory (little-endian, LP64), with
// encoders that write them into a buffer the kernel has already mapped from a user address and
// decoders that read them back. A buffer shorter than the structure is EFAULT (the same answer
// as Linux's failing copy_to_user/copy_from_user); nothing here traps on its input. Encoders
// zero the whole structure first, so padding and reserved fields never leak kernel memory.
// Offsets are written out per field and checked against Glibc's structs in LinuxABITests.

/// Bounds-checked little-endian stores into a byte buffer. A store that does not fit is
/// dropped and remembered in `overflowed` (encoders check the size up front, so this is a
/// second line of defence, not the error path).
public struct StructWriter {
    public let buffer: UnsafeMutableRawBufferPointer
    /// Set when a store was dropped because it did not fit.
    public var overflowed = false

    @inlinable public init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    @inlinable public mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        let size = MemoryLayout<T>.size
        guard offset >= 0, offset <= buffer.count - size else { overflowed = true; return }
        buffer.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    /// Copies `bytes` to `offset`, truncated to `capacity - 1` bytes, then a NUL: a C string in
    /// a fixed `char[capacity]` field (the rest of the field stays as it was, zero after zero()).
    @inlinable public mutating func putCString(_ bytes: UnsafeRawBufferPointer, at offset: Int,
                                               capacity: Int) {
        guard capacity > 0, offset >= 0, offset <= buffer.count - capacity else {
            overflowed = true; return
        }
        let count = min(bytes.count, capacity - 1)
        for i in 0..<count { buffer[offset + i] = bytes[i] }
        buffer[offset + count] = 0
    }

    /// Zeroes bytes [offset, offset + count).
    @inlinable public mutating func zero(_ offset: Int = 0, count: Int) {
        guard offset >= 0, count >= 0, offset <= buffer.count - count else {
            overflowed = true; return
        }
        for i in offset..<(offset + count) { buffer[i] = 0 }
    }
}

/// Bounds-checked little-endian loads; nil when the value does not fit in the buffer.
public struct StructReader {
    public let buffer: UnsafeRawBufferPointer

    @inlinable public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    @inlinable public func get<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T? {
        let size = MemoryLayout<T>.size
        guard offset >= 0, offset <= buffer.count - size else { return nil }
        return T(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

func checkFits(_ buffer: UnsafeMutableRawBufferPointer, _ size: Int) throws(Errno) {
    guard buffer.count >= size else { throw Errno.EFAULT }
}

func checkFits(_ buffer: UnsafeRawBufferPointer, _ size: Int) throws(Errno) {
    guard buffer.count >= size else { throw Errno.EFAULT }
}

// MARK: - Time

/// `struct timespec` (16 bytes): tv_sec (time_t, i64) @0, tv_nsec (long) @8.
public struct Timespec: Equatable, Sendable {
    public static let size = 16
    public static let nanosecondsPerSecond: Int64 = 1_000_000_000
    public var seconds: Int64
    public var nanoseconds: Int64

    @inlinable public init(seconds: Int64, nanoseconds: Int64) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    /// From a count of nanoseconds (e.g. a monotonic clock reading); negative counts give a
    /// negative `seconds` and nanoseconds in [0, 1e9), as Linux normalises.
    @inlinable public init(totalNanoseconds ns: Int64) {
        var s = ns / Timespec.nanosecondsPerSecond
        var n = ns % Timespec.nanosecondsPerSecond
        if n < 0 { s -= 1; n += Timespec.nanosecondsPerSecond }
        self.init(seconds: s, nanoseconds: n)
    }

    /// Linux accepts a timespec argument only with 0 ≤ tv_nsec < 1e9 (else EINVAL); nanosleep
    /// also requires tv_sec ≥ 0.
    @inlinable public var isValid: Bool {
        nanoseconds >= 0 && nanoseconds < Timespec.nanosecondsPerSecond
    }

    /// A duration or timeout argument (ppoll, pselect6, epoll_pwait2, rt_sigtimedwait,
    /// futex, nanosleep, timer values) in nanoseconds, as Linux takes one: nil (EINVAL) when
    /// tv_sec < 0 or tv_nsec is outside [0, 1e9) (`timespec64_valid`); a total beyond
    /// Int64.max saturates there (Linux clamps to KTIME_MAX, about 292 years), so every
    /// result also fits an Int64 and adding it to a clock reading cannot wrap a UInt64.
    @inlinable public var durationNanoseconds: UInt64? {
        guard isValid, seconds >= 0 else { return nil }
        return UInt64(totalNanoseconds ?? Int64.max)
    }

    /// The total in nanoseconds, or nil if it overflows Int64 (about 292 years).
    @inlinable public var totalNanoseconds: Int64? {
        let (a, o1) = seconds.multipliedReportingOverflow(by: Timespec.nanosecondsPerSecond)
        let (b, o2) = a.addingReportingOverflow(nanoseconds)
        return o1 || o2 ? nil : b
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.put(seconds, at: 0)
        w.put(nanoseconds, at: 8)
    }

    /// Reads the raw fields; callers decide whether `isValid` must hold.
    public static func decode(from buffer: UnsafeRawBufferPointer) throws(Errno) -> Timespec {
        try checkFits(buffer, size)
        let r = StructReader(buffer)
        return Timespec(seconds: r.get(Int64.self, at: 0) ?? 0, nanoseconds: r.get(Int64.self, at: 8) ?? 0)
    }
}

/// `struct timeval` (16 bytes): tv_sec (i64) @0, tv_usec (suseconds_t, i64) @8.
public struct Timeval: Equatable, Sendable {
    public static let size = 16
    public var seconds: Int64
    public var microseconds: Int64

    @inlinable public init(seconds: Int64, microseconds: Int64) {
        self.seconds = seconds
        self.microseconds = microseconds
    }

    /// Truncates the nanoseconds to microseconds, as gettimeofday does.
    @inlinable public init(_ ts: Timespec) {
        self.init(seconds: ts.seconds, microseconds: ts.nanoseconds / 1000)
    }

    /// 0 ≤ tv_usec < 1e6, as Linux requires of timeval arguments (else EINVAL).
    @inlinable public var isValid: Bool { microseconds >= 0 && microseconds < 1_000_000 }

    /// A duration argument (setitimer's values) in nanoseconds: nil (EINVAL) unless valid with
    /// tv_sec ≥ 0; beyond Int64.max it saturates, as `Timespec.durationNanoseconds`.
    @inlinable public var durationNanoseconds: UInt64? {
        guard isValid else { return nil }  // the timespec checks tv_sec ≥ 0
        return Timespec(seconds: seconds, nanoseconds: microseconds * 1000).durationNanoseconds
    }

    /// select's timeout in nanoseconds, as Linux's kern_select reads it: tv_usec beyond a
    /// second carries into the seconds (tv_usec ≥ 1e6 is accepted there), then the sum must
    /// be a valid timespec (a negative part is EINVAL: nil); saturating as above.
    @inlinable public var selectTimeoutNanoseconds: UInt64? {
        let (carried, overflow) = seconds.addingReportingOverflow(microseconds / 1_000_000)
        guard !overflow else { return nil }
        return Timespec(seconds: carried, nanoseconds: (microseconds % 1_000_000) * 1000).durationNanoseconds
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.put(seconds, at: 0)
        w.put(microseconds, at: 8)
    }

    public static func decode(from buffer: UnsafeRawBufferPointer) throws(Errno) -> Timeval {
        try checkFits(buffer, size)
        let r = StructReader(buffer)
        return Timeval(seconds: r.get(Int64.self, at: 0) ?? 0, microseconds: r.get(Int64.self, at: 8) ?? 0)
    }
}

/// `struct itimerval` (32 bytes): it_interval (timeval) @0, it_value (timeval) @16.
public struct Itimerval: Equatable, Sendable {
    public static let size = 32
    public var interval: Timeval
    public var value: Timeval

    @inlinable public init(interval: Timeval, value: Timeval) {
        self.interval = interval
        self.value = value
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        try interval.encode(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<16]))
        try value.encode(into: UnsafeMutableRawBufferPointer(rebasing: buffer[16..<32]))
    }

    public static func decode(from buffer: UnsafeRawBufferPointer) throws(Errno) -> Itimerval {
        try checkFits(buffer, size)
        return Itimerval(interval: try Timeval.decode(from: UnsafeRawBufferPointer(rebasing: buffer[0..<16])),
                         value: try Timeval.decode(from: UnsafeRawBufferPointer(rebasing: buffer[16..<32])))
    }
}

/// `struct tms` (32 bytes, for times()): tms_utime @0, tms_stime @8, tms_cutime @16,
/// tms_cstime @24, each a clock_t (i64) in clock ticks (USER_HZ = 100, AT_CLKTCK).
public struct Tms: Equatable, Sendable {
    public static let size = 32
    public static let clockTicksPerSecond: Int64 = 100
    public var userTime: Int64 = 0
    public var systemTime: Int64 = 0
    public var childrenUserTime: Int64 = 0
    public var childrenSystemTime: Int64 = 0

    @inlinable public init(userTime: Int64 = 0, systemTime: Int64 = 0,
                           childrenUserTime: Int64 = 0, childrenSystemTime: Int64 = 0) {
        self.userTime = userTime
        self.systemTime = systemTime
        self.childrenUserTime = childrenUserTime
        self.childrenSystemTime = childrenSystemTime
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.put(userTime, at: 0)
        w.put(systemTime, at: 8)
        w.put(childrenUserTime, at: 16)
        w.put(childrenSystemTime, at: 24)
    }
}

/// `struct rusage` (144 bytes): ru_utime (timeval) @0, ru_stime (timeval) @16, then 14 longs
/// @32…@136: maxrss (KiB), ixrss, idrss, isrss, minflt, majflt, nswap, inblock, oublock,
/// msgsnd, msgrcv, nsignals, nvcsw, nivcsw. Only the fields Apus can know are settable; the
/// others are written as 0, which Linux also reports for the unmaintained ones.
public struct Rusage: Equatable, Sendable {
    public static let size = 144
    public var userTime = Timeval(seconds: 0, microseconds: 0)
    public var systemTime = Timeval(seconds: 0, microseconds: 0)
    /// ru_maxrss @32, in KiB.
    public var maxResidentSetKiB: Int64 = 0
    /// ru_minflt @64.
    public var minorFaults: Int64 = 0
    /// ru_majflt @72.
    public var majorFaults: Int64 = 0
    /// ru_nvcsw @128.
    public var voluntaryContextSwitches: Int64 = 0
    /// ru_nivcsw @136.
    public var involuntaryContextSwitches: Int64 = 0

    @inlinable public init() {}

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.zero(count: Self.size)
        w.put(userTime.seconds, at: 0)
        w.put(userTime.microseconds, at: 8)
        w.put(systemTime.seconds, at: 16)
        w.put(systemTime.microseconds, at: 24)
        w.put(maxResidentSetKiB, at: 32)
        w.put(minorFaults, at: 64)
        w.put(majorFaults, at: 72)
        w.put(voluntaryContextSwitches, at: 128)
        w.put(involuntaryContextSwitches, at: 136)
    }
}

// MARK: - System information

/// `struct new_utsname` (390 bytes, for uname()): six `char[65]` fields, each a NUL-terminated
/// string: sysname @0, nodename @65, release @130, version @195, machine @260,
/// domainname @325. Longer strings are truncated to 64 bytes.
public struct Utsname {
    public static let fieldLength = 65
    public static let size = 6 * 65
    public var sysname: StaticString = "Linux"
    public var nodename: StaticString = "apus"
    /// A modern release: glibc and other programs parse it and refuse to run on "too old"
    /// kernels, so it must read as a real Linux version.
    public var release: StaticString = "6.1.0-apus"
    public var version: StaticString = "#1 SMP PREEMPT_DYNAMIC Apus"
    public var machine: StaticString = "x86_64"
    public var domainname: StaticString = "(none)"

    @inlinable public init() {}

    /// Writes the six fields. `nodename`, when given, replaces the static one (the hostname
    /// set by sethostname or the run configuration).
    public func encode(into buffer: UnsafeMutableRawBufferPointer,
                       nodename runtimeNodename: UnsafeRawBufferPointer? = nil) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.zero(count: Self.size)
        let n = Self.fieldLength
        Self.put(sysname, &w, at: 0)
        if let runtimeNodename {
            w.putCString(runtimeNodename, at: n, capacity: n)
        } else {
            Self.put(nodename, &w, at: n)
        }
        Self.put(release, &w, at: 2 * n)
        Self.put(version, &w, at: 3 * n)
        Self.put(machine, &w, at: 4 * n)
        Self.put(domainname, &w, at: 5 * n)
    }

    static func put(_ s: StaticString, _ w: inout StructWriter, at offset: Int) {
        s.withUTF8Buffer { utf8 in
            w.putCString(UnsafeRawBufferPointer(utf8), at: offset, capacity: Utsname.fieldLength)
        }
    }
}

/// `struct sysinfo` (112 bytes): uptime (long) @0, loads[3] (unsigned long, fixed point
/// ×65536) @8, totalram @32, freeram @40, sharedram @48, bufferram @56, totalswap @64,
/// freeswap @72 (unsigned long, in mem_unit bytes), procs (u16) @80, padding, totalhigh @88,
/// freehigh @96, mem_unit (u32) @104, then padding to 112.
public struct Sysinfo: Equatable, Sendable {
    public static let size = 112
    /// loads[] are fixed point with 16 fractional bits (SI_LOAD_SHIFT).
    public static let loadShift = 16
    public var uptimeSeconds: Int64 = 0
    public var loads: (UInt64, UInt64, UInt64) = (0, 0, 0)
    public var totalRAM: UInt64 = 0
    public var freeRAM: UInt64 = 0
    public var sharedRAM: UInt64 = 0
    public var bufferRAM: UInt64 = 0
    public var totalSwap: UInt64 = 0
    public var freeSwap: UInt64 = 0
    public var processes: UInt16 = 1
    public var totalHigh: UInt64 = 0
    public var freeHigh: UInt64 = 0
    /// The unit of the memory fields, in bytes; 1 on 64-bit Linux.
    public var memoryUnit: UInt32 = 1

    @inlinable public init() {}

    public static func == (a: Self, b: Self) -> Bool {
        a.uptimeSeconds == b.uptimeSeconds && a.loads == b.loads && a.totalRAM == b.totalRAM
            && a.freeRAM == b.freeRAM && a.sharedRAM == b.sharedRAM && a.bufferRAM == b.bufferRAM
            && a.totalSwap == b.totalSwap && a.freeSwap == b.freeSwap && a.processes == b.processes
            && a.totalHigh == b.totalHigh && a.freeHigh == b.freeHigh && a.memoryUnit == b.memoryUnit
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.zero(count: Self.size)
        w.put(uptimeSeconds, at: 0)
        w.put(loads.0, at: 8)
        w.put(loads.1, at: 16)
        w.put(loads.2, at: 24)
        w.put(totalRAM, at: 32)
        w.put(freeRAM, at: 40)
        w.put(sharedRAM, at: 48)
        w.put(bufferRAM, at: 56)
        w.put(totalSwap, at: 64)
        w.put(freeSwap, at: 72)
        w.put(processes, at: 80)
        w.put(totalHigh, at: 88)
        w.put(freeHigh, at: 96)
        w.put(memoryUnit, at: 104)
    }
}

/// `struct rlimit` (16 bytes, also prlimit64's `struct rlimit64`): rlim_cur @0, rlim_max @8.
public struct Rlimit: Equatable, Sendable {
    public static let size = 16
    /// RLIM_INFINITY = ~0UL.
    public static let infinity = UInt64.max
    public var current: UInt64
    public var maximum: UInt64

    @inlinable public init(current: UInt64, maximum: UInt64) {
        self.current = current
        self.maximum = maximum
    }

    /// setrlimit/prlimit64 reject a soft limit above the hard limit with EINVAL.
    @inlinable public var isValid: Bool { current <= maximum }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.put(current, at: 0)
        w.put(maximum, at: 8)
    }

    public static func decode(from buffer: UnsafeRawBufferPointer) throws(Errno) -> Rlimit {
        try checkFits(buffer, size)
        let r = StructReader(buffer)
        return Rlimit(current: r.get(UInt64.self, at: 0) ?? 0, maximum: r.get(UInt64.self, at: 8) ?? 0)
    }
}

/// `struct winsize` (8 bytes, TIOCGWINSZ/TIOCSWINSZ): ws_row @0, ws_col @2, ws_xpixel @4,
/// ws_ypixel @6, each u16.
public struct Winsize: Equatable, Sendable {
    public static let size = 8
    public var rows: UInt16
    public var columns: UInt16
    public var xPixels: UInt16 = 0
    public var yPixels: UInt16 = 0

    @inlinable public init(rows: UInt16, columns: UInt16, xPixels: UInt16 = 0, yPixels: UInt16 = 0) {
        self.rows = rows
        self.columns = columns
        self.xPixels = xPixels
        self.yPixels = yPixels
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.put(rows, at: 0)
        w.put(columns, at: 2)
        w.put(xPixels, at: 4)
        w.put(yPixels, at: 6)
    }

    public static func decode(from buffer: UnsafeRawBufferPointer) throws(Errno) -> Winsize {
        try checkFits(buffer, size)
        let r = StructReader(buffer)
        return Winsize(rows: r.get(UInt16.self, at: 0) ?? 0, columns: r.get(UInt16.self, at: 2) ?? 0,
                       xPixels: r.get(UInt16.self, at: 4) ?? 0, yPixels: r.get(UInt16.self, at: 6) ?? 0)
    }
}

// MARK: - Files

/// `struct stat` for x86-64 (144 bytes; stat, fstat, lstat, newfstatat): st_dev @0,
/// st_ino @8, st_nlink @16 (u64 — x86-64 puts nlink before mode), st_mode (u32) @24,
/// st_uid @28, st_gid @32, padding @36, st_rdev @40, st_size (i64) @48, st_blksize @56,
/// st_blocks (512-byte units) @64, st_atime @72 + nsec @80, st_mtime @88 + nsec @96,
/// st_ctime @104 + nsec @112, reserved[3] @120…143.
public struct Stat: Equatable, Sendable {
    public static let size = 144
    public var device: UInt64 = 0
    public var inode: UInt64 = 0
    public var linkCount: UInt64 = 1
    /// File type and permission bits (FileMode: S_IFREG | 0o644 …).
    public var mode: UInt32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var specialDevice: UInt64 = 0
    public var size: Int64 = 0
    public var blockSize: Int64 = 4096
    /// Allocated 512-byte blocks.
    public var blocks: Int64 = 0
    public var accessTime = Timespec(seconds: 0, nanoseconds: 0)
    public var modificationTime = Timespec(seconds: 0, nanoseconds: 0)
    public var changeTime = Timespec(seconds: 0, nanoseconds: 0)

    @inlinable public init() {}

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.zero(count: Self.size)
        w.put(device, at: 0)
        w.put(inode, at: 8)
        w.put(linkCount, at: 16)
        w.put(mode, at: 24)
        w.put(uid, at: 28)
        w.put(gid, at: 32)
        w.put(specialDevice, at: 40)
        w.put(size, at: 48)
        w.put(blockSize, at: 56)
        w.put(blocks, at: 64)
        w.put(accessTime.seconds, at: 72)
        w.put(accessTime.nanoseconds, at: 80)
        w.put(modificationTime.seconds, at: 88)
        w.put(modificationTime.nanoseconds, at: 96)
        w.put(changeTime.seconds, at: 104)
        w.put(changeTime.nanoseconds, at: 112)
    }
}

/// `struct statx` (256 bytes): stx_mask (u32) @0, stx_blksize (u32) @4, stx_attributes @8,
/// stx_nlink (u32) @16, stx_uid @20, stx_gid @24, stx_mode (u16) @28, stx_ino @32, stx_size
/// @40, stx_blocks @48, stx_attributes_mask @56, timestamps of 16 bytes each (tv_sec i64,
/// tv_nsec u32, reserved) atime @64, btime @80, ctime @96, mtime @112, stx_rdev_major @128,
/// stx_rdev_minor @132, stx_dev_major @136, stx_dev_minor @140, then fields Apus leaves 0.
public struct Statx: Equatable, Sendable {
    public static let size = 256
    /// STATX_BASIC_STATS (0x7ff): type, mode, nlink, uid, gid, atime, mtime, ctime, ino,
    /// size, blocks. STATX_BTIME = 0x800.
    public static let basicStats: UInt32 = 0x7ff
    public static let birthTimeMask: UInt32 = 0x800
    /// Which fields are filled in (reply mask).
    public var mask: UInt32 = Statx.basicStats
    public var blockSize: UInt32 = 4096
    public var attributes: UInt64 = 0
    public var linkCount: UInt32 = 1
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var mode: UInt16 = 0
    public var inode: UInt64 = 0
    public var size: UInt64 = 0
    public var blocks: UInt64 = 0
    public var attributesMask: UInt64 = 0
    public var accessTime = Timespec(seconds: 0, nanoseconds: 0)
    public var birthTime = Timespec(seconds: 0, nanoseconds: 0)
    public var changeTime = Timespec(seconds: 0, nanoseconds: 0)
    public var modificationTime = Timespec(seconds: 0, nanoseconds: 0)
    public var specialDeviceMajor: UInt32 = 0
    public var specialDeviceMinor: UInt32 = 0
    public var deviceMajor: UInt32 = 0
    public var deviceMinor: UInt32 = 0

    @inlinable public init() {}

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.zero(count: Self.size)
        w.put(mask, at: 0)
        w.put(blockSize, at: 4)
        w.put(attributes, at: 8)
        w.put(linkCount, at: 16)
        w.put(uid, at: 20)
        w.put(gid, at: 24)
        w.put(mode, at: 28)
        w.put(inode, at: 32)
        w.put(size, at: 40)
        w.put(blocks, at: 48)
        w.put(attributesMask, at: 56)
        // struct statx_timestamp: tv_sec (i64) @0, tv_nsec (u32) @8, reserved @12.
        func putTime(_ time: Timespec, at offset: Int) {
            w.put(time.seconds, at: offset)
            w.put(UInt32(truncatingIfNeeded: time.nanoseconds), at: offset + 8)
        }
        putTime(accessTime, at: 64)
        putTime(birthTime, at: 80)
        putTime(changeTime, at: 96)
        putTime(modificationTime, at: 112)
        w.put(specialDeviceMajor, at: 128)
        w.put(specialDeviceMinor, at: 132)
        w.put(deviceMajor, at: 136)
        w.put(deviceMinor, at: 140)
    }
}

/// `struct iovec` (16 bytes, readv/writev): iov_base @0, iov_len @8.
public struct Iovec: Equatable, Sendable {
    public static let size = 16
    /// IOV_MAX (UIO_MAXIOV): readv/writev with more vectors fail with EINVAL.
    public static let maxCount = 1024
    public var base: UserAddress
    public var length: UInt64

    @inlinable public init(base: UserAddress, length: UInt64) {
        self.base = base
        self.length = length
    }

    /// Element `index` of an iovec array.
    public static func decode(from buffer: UnsafeRawBufferPointer, index: Int = 0) throws(Errno) -> Iovec {
        guard index >= 0, index <= (buffer.count / size) - 1 else { throw Errno.EFAULT }
        let r = StructReader(buffer)
        return Iovec(base: UserAddress(r.get(UInt64.self, at: index * size) ?? 0),
                     length: r.get(UInt64.self, at: index * size + 8) ?? 0)
    }
}

/// `struct pollfd` (8 bytes, poll/ppoll): fd (i32) @0, events (i16) @4, revents (i16) @6.
public struct Pollfd: Equatable, Sendable {
    public static let size = 8
    public var fd: Int32
    public var events: Int16
    public var returnedEvents: Int16

    @inlinable public init(fd: Int32, events: Int16, returnedEvents: Int16 = 0) {
        self.fd = fd
        self.events = events
        self.returnedEvents = returnedEvents
    }

    public static func decode(from buffer: UnsafeRawBufferPointer, index: Int = 0) throws(Errno) -> Pollfd {
        guard index >= 0, index <= (buffer.count / size) - 1 else { throw Errno.EFAULT }
        let r = StructReader(buffer)
        let o = index * size
        return Pollfd(fd: r.get(Int32.self, at: o) ?? 0, events: r.get(Int16.self, at: o + 4) ?? 0,
                      returnedEvents: r.get(Int16.self, at: o + 6) ?? 0)
    }

    /// Writes only `revents` of element `index`, as poll does.
    public static func encodeReturnedEvents(_ revents: Int16, into buffer: UnsafeMutableRawBufferPointer,
                                            index: Int = 0) throws(Errno) {
        guard index >= 0, index <= (buffer.count / size) - 1 else { throw Errno.EFAULT }
        var w = StructWriter(buffer)
        w.put(revents, at: index * size + 6)
    }
}

/// One `struct linux_dirent64` record (getdents64): d_ino (u64) @0, d_off (i64) @8,
/// d_reclen (u16) @16, d_type (u8) @18, d_name (NUL-terminated) @19, the record padded to a
/// multiple of 8 bytes.
public enum Dirent64 {
    public static let nameOffset = 19

    /// The record length for a name of `nameLength` bytes.
    @inlinable public static func recordLength(nameLength: Int) -> Int {
        (nameOffset + nameLength + 1 + 7) & ~7
    }

    /// Writes one record at `offset`; returns its length, or nil when it does not fit in the
    /// rest of the buffer (getdents64 then stops, or fails with EINVAL if it wrote nothing).
    public static func encode(into buffer: UnsafeMutableRawBufferPointer, at offset: Int,
                              inode: UInt64, nextOffset: Int64, type: UInt8,
                              name: UnsafeRawBufferPointer) -> Int? {
        DirentRecord.encode(into: buffer, at: offset, length: recordLength(nameLength: name.count),
                            inode: inode, nextOffset: nextOffset, type: type, typeAt: 18,
                            name: name, nameOffset: nameOffset)
    }
}

/// What both directory record layouts share: d_ino @0, d_off @8, d_reclen @16, the name
/// NUL-terminated at `nameOffset`, d_type at `typeAt` (a negative value counts from the
/// record's end), the rest zero.
enum DirentRecord {
    static func encode(into buffer: UnsafeMutableRawBufferPointer, at offset: Int, length: Int,
                       inode: UInt64, nextOffset: Int64, type: UInt8, typeAt: Int,
                       name: UnsafeRawBufferPointer, nameOffset: Int) -> Int? {
        guard name.count <= 255, offset >= 0, offset <= buffer.count - length else { return nil }
        var w = StructWriter(UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + length)]))
        w.zero(count: length)
        w.put(inode, at: 0)
        w.put(nextOffset, at: 8)
        w.put(UInt16(length), at: 16)
        let typeOffset = typeAt >= 0 ? typeAt : length + typeAt
        w.putCString(name, at: nameOffset, capacity: (typeAt >= 0 ? length : typeOffset) - nameOffset)
        w.put(type, at: typeOffset)
        return length
    }
}

/// One `struct linux_dirent` record (the legacy getdents, syscall 78): d_ino (unsigned
/// long) @0, d_off @8, d_reclen (u16) @16, d_name (NUL-terminated) @18, then padding, and
/// d_type in the record's last byte; the record is padded to a multiple of 8 bytes with
/// room for the NUL and the type byte.
public enum LegacyDirent {
    public static let nameOffset = 18

    @inlinable public static func recordLength(nameLength: Int) -> Int {
        (nameOffset + nameLength + 2 + 7) & ~7
    }

    /// As `Dirent64.encode`: the record's length, or nil when it does not fit.
    public static func encode(into buffer: UnsafeMutableRawBufferPointer, at offset: Int,
                              inode: UInt64, nextOffset: Int64, type: UInt8,
                              name: UnsafeRawBufferPointer) -> Int? {
        DirentRecord.encode(into: buffer, at: offset, length: recordLength(nameLength: name.count),
                            inode: inode, nextOffset: nextOffset, type: type, typeAt: -1,
                            name: name, nameOffset: nameOffset)
    }
}

// MARK: - Signals

/// The kernel's `struct sigaction` for rt_sigaction on x86-64 (32 bytes; not glibc's larger
/// one): sa_handler @0, sa_flags (unsigned long) @8, sa_restorer @16, sa_mask (64 bits) @24.
/// The sigsetsize argument of rt_sigaction must be 8.
public struct KernelSigaction: Equatable, Sendable {
    public static let size = 32
    /// SIG_DFL = 0, SIG_IGN = 1 as handler values.
    public static let defaultHandler: UInt64 = 0
    public static let ignoreHandler: UInt64 = 1
    public var handler: UInt64
    public var flags: SigactionFlags
    public var restorer: UInt64
    public var mask: SignalSet

    @inlinable public init(handler: UInt64 = 0, flags: SigactionFlags = [], restorer: UInt64 = 0,
                           mask: SignalSet = SignalSet()) {
        self.handler = handler
        self.flags = flags
        self.restorer = restorer
        self.mask = mask
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.put(handler, at: 0)
        w.put(flags.rawValue, at: 8)
        w.put(restorer, at: 16)
        w.put(mask.rawValue, at: 24)
    }

    public static func decode(from buffer: UnsafeRawBufferPointer) throws(Errno) -> KernelSigaction {
        try checkFits(buffer, size)
        let r = StructReader(buffer)
        return KernelSigaction(handler: r.get(UInt64.self, at: 0) ?? 0,
                               flags: SigactionFlags(rawValue: r.get(UInt64.self, at: 8) ?? 0),
                               restorer: r.get(UInt64.self, at: 16) ?? 0,
                               mask: SignalSet(rawValue: r.get(UInt64.self, at: 24) ?? 0))
    }
}

/// `stack_t` (24 bytes, sigaltstack): ss_sp @0, ss_flags (int) @8, padding, ss_size @16.
public struct SignalStack: Equatable, Sendable {
    public static let size = 24
    /// SS_ONSTACK = 1, SS_DISABLE = 2, SS_AUTODISARM = 1 << 31 (flag bits of ss_flags).
    public static let onStack: Int32 = 1
    public static let disable: Int32 = 2
    public static let autoDisarm = Int32(bitPattern: 0x8000_0000)
    /// MINSIGSTKSZ on x86-64 (the legacy constant; AT_MINSIGSTKSZ reports the real need).
    public static let minimumSize: UInt64 = 2048
    public var base: UserAddress
    public var flags: Int32
    public var size: UInt64

    @inlinable public init(base: UserAddress, flags: Int32, size: UInt64) {
        self.base = base
        self.flags = flags
        self.size = size
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.zero(count: Self.size)
        w.put(base.raw, at: 0)
        w.put(flags, at: 8)
        w.put(size, at: 16)
    }

    public static func decode(from buffer: UnsafeRawBufferPointer) throws(Errno) -> SignalStack {
        try checkFits(buffer, Self.size)
        let r = StructReader(buffer)
        return SignalStack(base: UserAddress(r.get(UInt64.self, at: 0) ?? 0),
                           flags: r.get(Int32.self, at: 8) ?? 0, size: r.get(UInt64.self, at: 16) ?? 0)
    }
}
