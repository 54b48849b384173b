import LinuxABI

/// Clocks and sleeping, from the TSC (Clock.swift).
enum SysTime {
    static func now(_ clock: Int32) throws(Errno) -> UInt64 {
        guard let id = ClockID(rawValue: clock) else { throw .EINVAL }
        switch id {
        case .CLOCK_REALTIME, .CLOCK_REALTIME_COARSE, .CLOCK_TAI, .CLOCK_REALTIME_ALARM:
            return Clock.realtimeNanos
        case .CLOCK_MONOTONIC, .CLOCK_MONOTONIC_RAW, .CLOCK_MONOTONIC_COARSE, .CLOCK_BOOTTIME,
             .CLOCK_BOOTTIME_ALARM:
            return Clock.monotonicNanos
        case .CLOCK_PROCESS_CPUTIME_ID:
            return SysProcess.processCPUNanos(Process.current)
        case .CLOCK_THREAD_CPUTIME_ID:
            return Scheduler.cpuNanos(of: Scheduler.current)
        }
    }

    static func clockGettime(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let ns = try now(a.int32(0))
        try Timespec(totalNanoseconds: Int64(ns)).encode(into: UserMemory.writable(a[1], Timespec.size))
        return 0
    }

    static func clockGetres(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        _ = try now(a.int32(0))
        if a[1] != 0 {
            try Timespec(seconds: 0, nanoseconds: 1).encode(into: UserMemory.writable(a[1], Timespec.size))
        }
        return 0
    }

    static func gettimeofday(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        if a[0] != 0 {
            let ts = Timespec(totalNanoseconds: Int64(Clock.realtimeNanos))
            try Timeval(ts).encode(into: UserMemory.writable(a[0], Timeval.size))
        }
        if a[1] != 0 { try UserMemory.store(UInt64(0), a[1]) }  // struct timezone: UTC
        return 0
    }

    static func time(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let seconds = Clock.realtimeNanos / 1_000_000_000
        if a[0] != 0 { try UserMemory.store(seconds, a[0]) }
        return seconds
    }

    /// A `struct timespec *` timeout argument in nanoseconds: nil for NULL (no timeout),
    /// EINVAL for a malformed or negative one (as ppoll, pselect6, epoll_pwait2,
    /// rt_sigtimedwait and futex answer), EFAULT for a bad pointer. Saturates at Int64.max,
    /// so a deadline `now + timeout` never wraps.
    static func timeout(_ address: UInt64) throws(Errno) -> UInt64? {
        guard address != 0 else { return nil }
        let ts = try Timespec.decode(from: UserMemory.readable(address, Timespec.size))
        guard let ns = ts.durationNanoseconds else { throw .EINVAL }
        return ns
    }

    static func nanosleep(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let request = try Timespec.decode(from: UserMemory.readable(a[0], Timespec.size))
        guard let duration = request.durationNanoseconds else { throw .EINVAL }
        if a[1] != 0 { _ = try UserMemory.writable(a[1], Timespec.size) }
        Scheduler.current.remainderAddress = a[1]
        sleep(until: Clock.monotonicNanos &+ duration)
        return 0
    }

    /// The sleeper parks until its deadline; other threads run meanwhile, and with nothing to
    /// run the kernel sleeps (on the host). A signal ends the sleep early with EINTR, writing
    /// the time left to the thread's `remainderAddress` if it set one.
    static func sleep(until deadline: UInt64) {
        Scheduler.blockCurrent(deadline: max(deadline, 1), timeoutResult: 0)
    }

    static func clockNanosleep(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let clock = a.int32(0)
        guard clock != ClockID.CLOCK_THREAD_CPUTIME_ID.rawValue else { throw .EINVAL }
        let start = try now(clock)
        let request = try Timespec.decode(from: UserMemory.readable(a[2], Timespec.size))
        guard let value = request.durationNanoseconds else { throw .EINVAL }
        let absolute = a.int32(1) & ClockID.TIMER_ABSTIME != 0
        let remaining = absolute ? (value > start ? value - start : 0) : value
        if !absolute && a[3] != 0 {
            _ = try UserMemory.writable(a[3], Timespec.size)
            Scheduler.current.remainderAddress = a[3]
        }
        sleep(until: Clock.monotonicNanos &+ remaining)
        return 0
    }
}
