// Timer and signal-information structures of the x86-64 Linux ABI (see Structs.swift for the
// conventions: little-endian, bounds-checked, zero-filled on encode).

/// `struct itimerspec` (32 bytes): it_interval (timespec) @0, it_value (timespec) @16.
public struct Itimerspec: Equatable, Sendable {
    public static let size = 32
    public var interval: Timespec
    public var value: Timespec

    @inlinable public init(interval: Timespec, value: Timespec) {
        self.interval = interval
        self.value = value
    }

    /// From nanosecond counts (interval and time left).
    @inlinable public init(intervalNanos: UInt64, valueNanos: UInt64) {
        self.init(interval: Timespec(totalNanoseconds: Int64(truncatingIfNeeded: intervalNanos)),
                  value: Timespec(totalNanoseconds: Int64(truncatingIfNeeded: valueNanos)))
    }

    /// Both fields valid and not negative, as timer_settime and timerfd_settime require
    /// (else EINVAL).
    @inlinable public var isValid: Bool {
        interval.isValid && value.isValid && interval.seconds >= 0 && value.seconds >= 0
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        try interval.encode(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<16]))
        try value.encode(into: UnsafeMutableRawBufferPointer(rebasing: buffer[16..<32]))
    }

    public static func decode(from buffer: UnsafeRawBufferPointer) throws(Errno) -> Itimerspec {
        try checkFits(buffer, size)
        return Itimerspec(interval: try Timespec.decode(from: UnsafeRawBufferPointer(rebasing: buffer[0..<16])),
                          value: try Timespec.decode(from: UnsafeRawBufferPointer(rebasing: buffer[16..<32])))
    }
}

/// `struct sigevent` as timer_create reads it (64 bytes): sigev_value @0 (union sigval, 8),
/// sigev_signo i32 @8, sigev_notify i32 @12, then the union whose first member for
/// SIGEV_THREAD_ID is the target tid (i32 @16).
public struct Sigevent: Equatable, Sendable {
    public static let size = 64
    public static let SIGEV_SIGNAL: Int32 = 0
    public static let SIGEV_NONE: Int32 = 1
    public static let SIGEV_THREAD: Int32 = 2
    public static let SIGEV_THREAD_ID: Int32 = 4

    public var value: UInt64
    public var signal: Int32
    public var notify: Int32
    public var threadID: Int32

    @inlinable public init(value: UInt64, signal: Int32, notify: Int32, threadID: Int32 = 0) {
        self.value = value
        self.signal = signal
        self.notify = notify
        self.threadID = threadID
    }

    public static func decode(from buffer: UnsafeRawBufferPointer) throws(Errno) -> Sigevent {
        // Only the first 20 bytes carry anything timer_create reads.
        guard buffer.count >= 20 else { throw Errno.EFAULT }
        let r = StructReader(buffer)
        return Sigevent(value: r.get(UInt64.self, at: 0) ?? 0, signal: r.get(Int32.self, at: 8) ?? 0,
                        notify: r.get(Int32.self, at: 12) ?? 0, threadID: r.get(Int32.self, at: 16) ?? 0)
    }
}

/// What the kernel knows about one pending signal: si_code and the fields of siginfo's union
/// that go with it. The same facts are written as a `siginfo_t` (handlers, rt_sigtimedwait) or
/// as a `struct signalfd_siginfo` (signalfd reads).
public struct SignalInfo: Equatable, Sendable {
    public static let SI_USER: Int32 = 0
    public static let SI_KERNEL: Int32 = 0x80
    public static let SI_TIMER: Int32 = -2
    public static let SI_TKILL: Int32 = -6

    public var code: Int32
    /// si_pid for kill/tkill; si_timerid for a POSIX timer.
    public var sender: Int32
    /// si_uid for kill/tkill; si_overrun for a POSIX timer.
    public var detail: Int32
    /// si_value (sigval) for a POSIX timer; si_status for SIGCHLD (`isChild`).
    public var value: UInt64
    /// A child's state change (SIGCHLD, waitid): sender = si_pid, detail = si_uid,
    /// value = si_status; code is CLD_EXITED 1, CLD_KILLED 2, CLD_DUMPED 3, CLD_STOPPED 5,
    /// CLD_CONTINUED 6.
    public var isChild = false

    /// The siginfo of a child's state change.
    public static func child(code: Int32, pid: Int32, uid: UInt32, status: Int32) -> SignalInfo {
        var info = SignalInfo(code: code, sender: pid, detail: Int32(bitPattern: uid), value: UInt64(UInt32(bitPattern: status)))
        info.isChild = true
        return info
    }

    @inlinable public init(code: Int32, sender: Int32 = 0, detail: Int32 = 0, value: UInt64 = 0) {
        self.code = code
        self.sender = sender
        self.detail = detail
        self.value = value
    }

    /// `siginfo_t` (128 bytes): si_signo i32 @0, si_errno @4, si_code @8, then the union @16:
    /// kill/tkill {si_pid i32 @16, si_uid u32 @20}; timer {si_timerid i32 @16, si_overrun i32
    /// @20, si_value @24}.
    public static let siginfoSize = 128

    public func encodeSiginfo(signal: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.siginfoSize)
        var w = StructWriter(buffer)
        w.zero(count: Self.siginfoSize)
        w.put(signal, at: 0)
        w.put(code, at: 8)
        w.put(sender, at: 16)
        w.put(detail, at: 20)
        if code == Self.SI_TIMER { w.put(value, at: 24) }
        if isChild { w.put(Int32(bitPattern: UInt32(truncatingIfNeeded: value)), at: 24) }
    }

    /// `struct signalfd_siginfo` (128 bytes): ssi_signo u32 @0, ssi_errno @4, ssi_code @8,
    /// ssi_pid @12, ssi_uid @16, ssi_fd @20, ssi_tid @24 (the timer id), ssi_band @28,
    /// ssi_overrun @32, ssi_trapno @36, ssi_status @40, ssi_int @44, ssi_ptr u64 @48, ….
    public static let signalfdSize = 128

    public func encodeSignalfd(signal: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.signalfdSize)
        var w = StructWriter(buffer)
        w.zero(count: Self.signalfdSize)
        w.put(UInt32(bitPattern: signal), at: 0)
        w.put(code, at: 8)
        if code == Self.SI_TIMER {
            w.put(sender, at: 24)
            w.put(detail, at: 32)
            w.put(Int32(truncatingIfNeeded: value), at: 44)
            w.put(value, at: 48)
        } else {
            w.put(sender, at: 12)
            w.put(detail, at: 16)
            if isChild { w.put(Int32(bitPattern: UInt32(truncatingIfNeeded: value)), at: 40) }
        }
    }
}
