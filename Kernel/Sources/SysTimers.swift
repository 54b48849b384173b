import LinuxABI

/// alarm and setitimer. ITIMER_REAL counts real (monotonic) time and sends SIGALRM to the
/// process when it expires; the scheduler's deadline loop and every syscall entry check it,
/// so it fires on time while threads wait or sleep, and at the next syscall of a thread busy
/// in user code (there is no timer interrupt while app code runs on pvm). ITIMER_VIRTUAL and
/// ITIMER_PROF are kept and reported but do not fire yet.
enum SysTimers {
    nonisolated(unsafe) static var realDeadline: UInt64 = 0   // monotonic ns, 0: disarmed
    nonisolated(unsafe) static var realInterval: UInt64 = 0
    nonisolated(unsafe) static var otherTimers: [Itimerval] = [
        Itimerval(interval: Timeval(seconds: 0, microseconds: 0), value: Timeval(seconds: 0, microseconds: 0)),
        Itimerval(interval: Timeval(seconds: 0, microseconds: 0), value: Timeval(seconds: 0, microseconds: 0)),
    ]

    static let SIGALRM: Int32 = 14

    /// Fires ITIMER_REAL if it is due.
    static func check(now: UInt64) {
        guard realDeadline != 0, now >= realDeadline else { return }
        if realInterval > 0 {
            repeat { realDeadline += realInterval } while realDeadline <= now
        } else {
            realDeadline = 0
        }
        SysSignal.raiseOnProcess(SIGALRM)
    }

    private static func nanos(_ tv: Timeval) -> UInt64 { UInt64(tv.seconds) * 1_000_000_000 + UInt64(tv.microseconds) * 1000 }

    private static func timeval(_ ns: UInt64) -> Timeval {
        Timeval(seconds: Int64(ns / 1_000_000_000), microseconds: Int64(ns % 1_000_000_000 / 1000))
    }

    private static func currentReal() -> Itimerval {
        let now = Clock.monotonicNanos
        let left = realDeadline == 0 ? 0 : (realDeadline > now ? realDeadline - now : 1000)
        return Itimerval(interval: timeval(realInterval), value: timeval(left))
    }

    static func getitimer(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let which = a.int32(0)
        guard which >= 0 && which <= 2 else { throw .EINVAL }
        let value = which == 0 ? currentReal() : otherTimers[Int(which) - 1]
        try value.encode(into: UserMemory.writable(a[1], Itimerval.size))
        return 0
    }

    static func setitimer(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let which = a.int32(0)
        guard which >= 0 && which <= 2 else { throw .EINVAL }
        let old = which == 0 ? currentReal() : otherTimers[Int(which) - 1]
        if a[1] != 0 {
            let new = try Itimerval.decode(from: UserMemory.readable(a[1], Itimerval.size))
            guard new.value.isValid, new.interval.isValid, new.value.seconds >= 0, new.interval.seconds >= 0 else { throw .EINVAL }
            if which == 0 {
                let value = nanos(new.value)
                realDeadline = value == 0 ? 0 : Clock.monotonicNanos + value
                realInterval = nanos(new.interval)
            } else {
                otherTimers[Int(which) - 1] = new
            }
        }
        if a[2] != 0 { try old.encode(into: UserMemory.writable(a[2], Itimerval.size)) }
        return 0
    }

    /// alarm(seconds): ITIMER_REAL without interval; returns the seconds left of the old one
    /// (rounded up, as Linux does).
    static func alarm(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let now = Clock.monotonicNanos
        let left = realDeadline > now ? (realDeadline - now + 999_999_999) / 1_000_000_000 : 0
        let seconds = UInt64(a.uint32(0))
        realDeadline = seconds == 0 ? 0 : now + seconds * 1_000_000_000
        realInterval = 0
        return left
    }
}
